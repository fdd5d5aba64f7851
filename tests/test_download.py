"""Downloading checkpoints, against a real HTTP server on 127.0.0.1 (never the internet), and the only network
access there is: a run of `vidseg process` makes none."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_vidseg

from convert.checkpoint import sha256_of
from convert.download import fetch, fetch_checkpoint
from vidseg.errors import VidsegError


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root`` with Range support; ``truncate`` cuts bodies short once."""

    root: Path
    log: list[str]
    truncate: set[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.log.append(f"{self.path} {self.headers.get('Range', '')}".strip())
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        if (rng := self.headers.get("Range")) and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.truncate:
            self.truncate.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[tuple[str, type[Handler]]]:
    root = tmp_path / "www"
    model = root / "ade20k" / "seg_tiny_mask"
    model.mkdir(parents=True)
    for name in ("checkpoint.pth", "variant.yml"):
        (model / name).write_bytes((tiny_checkpoint.parent / name).read_bytes())
    handler = type("H", (Handler,), {"root": root, "log": [], "truncate": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_convert_downloads_from_a_mirror_then_reuses_the_cache(tmp_path: Path, server, tiny_checkpoint: Path) -> None:
    url, handler = server
    env_cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(env_cache)}
    out = tmp_path / "models" / "tiny"
    result = run_vidseg("convert", "ade20k/seg_tiny_mask", "--weights-url", url, "-o", out, "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    cached = env_cache / "vidseg" / "checkpoints" / "ade20k" / "seg_tiny_mask" / "checkpoint.pth"
    assert sha256_of(cached) == sha256_of(tiny_checkpoint)
    assert (out / "model.xml").exists()
    requests = len(handler.log)
    result = run_vidseg("convert", "--weights-url", url, "-o", tmp_path / "again", "--quiet",
                        env={**env, "VIDSEG_WEIGHTS_URL": url})
    assert result.returncode == 0, result.stderr
    assert len(handler.log) == requests  # complete files are not fetched again


def test_missing_file_names_the_url_and_the_offline_way(tmp_path: Path, server) -> None:
    url, _ = server
    with pytest.raises(VidsegError) as e:
        fetch_checkpoint((f"{url}/ade20k/seg_small_mask",), tmp_path / "c", quiet=True)
    message = str(e.value)
    assert f"{url}/ade20k/seg_small_mask/variant.yml" in message and "HTTP 404" in message
    assert "--checkpoint" in message
    assert not list((tmp_path / "c").glob("*.pth"))


def test_truncated_body_is_not_kept_as_complete_and_resumes(tmp_path: Path, server, tiny_checkpoint: Path) -> None:
    url, handler = server
    path = "/ade20k/seg_tiny_mask/checkpoint.pth"
    handler.truncate.add(path)
    dest = tmp_path / "checkpoint.pth"
    with pytest.raises(VidsegError, match="got .* of .* bytes"):
        fetch(url + path, dest, quiet=True)
    assert not dest.exists()
    part = dest.with_name("checkpoint.pth.part")
    assert 0 < part.stat().st_size < tiny_checkpoint.stat().st_size
    fetch(url + path, dest, quiet=True)
    assert handler.log[-1] == f"{path} bytes={tiny_checkpoint.stat().st_size // 2}-"  # resumed, not restarted
    assert sha256_of(dest) == sha256_of(tiny_checkpoint) and not part.exists()


def test_part_holding_every_byte_is_completed_without_download(tmp_path: Path, server, tiny_checkpoint: Path) -> None:
    url, handler = server
    dest = tmp_path / "checkpoint.pth"
    dest.with_name("checkpoint.pth.part").write_bytes(tiny_checkpoint.read_bytes())
    fetch(f"{url}/ade20k/seg_tiny_mask/checkpoint.pth", dest, quiet=True)
    assert sha256_of(dest) == sha256_of(tiny_checkpoint)


def test_unreachable_host_fails_in_one_line(tmp_path: Path) -> None:
    result = run_vidseg("convert", "--weights-url", "http://127.0.0.1:9", "-o", tmp_path / "m",
                        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "http://127.0.0.1:9/ade20k/seg_tiny_mask" in result.stderr


def test_process_leaves_no_openvino_telemetry(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    """OpenVINO's pip package reports each import to Google Analytics unless opted out, writing a client ID
    under ~/intel first (CI=true turns it off, so it is unset here); vidseg's processes must not do that."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    (tmp_path / "home").mkdir()
    result = run_vidseg("process", media / "fruits.jpg", "--model", tiny_model, "--device", "CPU",
                        "-o", tmp_path / "out.png", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").exists()
    assert not (tmp_path / "home" / "intel").exists()
