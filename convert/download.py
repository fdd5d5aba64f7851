"""Fetching checkpoint files over plain HTTP(S) into the user's cache, safely and resumably.

A download lands in ``NAME.part`` and is renamed only once the byte count matches the server's
Content-Length, so a file under its final name is always complete and is reused without a request.
A ``.part`` left by an interrupted run is resumed with a Range request where the server allows it.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vidseg.errors import VidsegError

CHUNK = 1 << 16
TIMEOUT_S = 30


def fetch(url: str, dest: Path, quiet: bool = False) -> Path:
    """Download ``url`` to ``dest`` unless it is already there; raise ``VidsegError`` naming the URL."""
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if have and response.status != 206:  # the server ignored the range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with part.open("ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=quiet,
                leave=False,
            ) as bar:
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                except http.client.IncompleteRead as e:  # the server hung up early: keep what came
                    out.write(e.partial)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part already holds every byte
            part.replace(dest)
            return dest
        raise VidsegError(f"download failed: {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        raise VidsegError(f"download failed: {url}: {reason}") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise VidsegError(f"download failed: {url}: got {size} of {total} bytes (run again to resume)")
    part.replace(dest)
    return dest


def fetch_checkpoint(urls: tuple[str, ...], dest_dir: Path, quiet: bool = False) -> Path:
    """``checkpoint.pth`` and ``variant.yml`` from the first base URL that serves both."""
    errors = []
    for base in urls:
        try:
            fetch(f"{base}/variant.yml", dest_dir / "variant.yml", quiet)
            return fetch(f"{base}/checkpoint.pth", dest_dir / "checkpoint.pth", quiet)
        except VidsegError as e:
            errors.append(str(e))
    raise VidsegError(
        f"{'; '.join(errors)}. Download checkpoint.pth and variant.yml elsewhere and run "
        "'vidseg convert --checkpoint DIR/checkpoint.pth', or point --weights-url at a mirror")
