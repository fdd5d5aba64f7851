"""``vidseg serve``'s configuration: one YAML file of cameras, checked whole before any work starts.

    model: models/seg_tiny_mask        # optional: the default model otherwise
    device: AUTO
    listen: 127.0.0.1:8765             # the dashboard and control API; --listen overrides it
    token: s3cret                      # or VIDSEG_TOKEN; required when listening beyond loopback
    streams:
      gate:  {url: "rtsp://user:pass@10.0.0.5/stream1", fps: 2, reuse: true, record: recordings/gate}
      lobby: {url: "rtsp://10.0.0.6/live", fps: 5, stats: stats/lobby.jsonl, output: "udp://127.0.0.1:5000"}

Every problem is one line naming the file, the stream and the key, so an operator can fix it without
guessing; the same checks apply to a stream added over HTTP and to a file re-read on SIGHUP.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vidseg.errors import VidsegError
from vidseg.model.options import EngineOptions
from vidseg.outputs.network import NetworkSink, is_network_url
from vidseg.outputs.overlay import OverlayOptions
from vidseg.web import LOOPBACK, parse_address

DEFAULT_LISTEN = "127.0.0.1:8765"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # safe in URLs, file names and metric labels
TOKEN_ENV = "VIDSEG_TOKEN"


@dataclass(frozen=True)
class StreamConfig:
    """One camera or stream of the service, and where its results go."""

    url: str  # rtsp://, http://, udp://... or a camera index
    fps: float | None = None  # frames a second to segment (None: every frame the source sends)
    reuse: bool = False  # recompute only what changed between frames (static cameras)
    record: Path | None = None  # folder of MP4 segments of the overlay
    segment_minutes: float = 10.0  # length of a recording segment
    labels: Path | None = None  # folder of label PNGs
    stats: Path | None = None  # JSON lines of class shares, appended
    output: str | None = None  # udp:// or rtmp:// live overlay
    alpha: float = 0.5
    crf: int = 23

    @property
    def overlay(self) -> OverlayOptions:
        return OverlayOptions(self.alpha, self.crf)


@dataclass(frozen=True)
class ServiceConfig:
    model: Path | None = None
    device: str = "AUTO"
    listen: str = DEFAULT_LISTEN
    token: str | None = None
    streams: dict[str, StreamConfig] = field(default_factory=dict)


STREAM_KEYS = {f.name for f in fields(StreamConfig)}
TOP_KEYS = {f.name for f in fields(ServiceConfig)}


def load(path: Path) -> ServiceConfig:
    """The file, parsed and checked; a ``VidsegError`` naming the key and the stream otherwise."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise VidsegError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise VidsegError(f"{path}: not valid YAML{where}") from None
    return parse(doc, str(path))


def parse(doc: Any, where: str = "config") -> ServiceConfig:
    if not isinstance(doc, dict):
        raise VidsegError(f"{where}: expected a mapping with 'streams:', got {type(doc).__name__}")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise VidsegError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    streams = doc.get("streams") or {}
    if not isinstance(streams, dict):
        raise VidsegError(f"{where}: 'streams' must map names to streams")
    device = str(doc.get("device", "AUTO"))
    EngineOptions(device)  # a device name of the wrong shape fails here; availability when it compiles
    token = doc.get("token") or os.environ.get(TOKEN_ENV)
    config = ServiceConfig(model=Path(doc["model"]) if doc.get("model") else None, device=device,
                           listen=str(doc.get("listen") or DEFAULT_LISTEN), token=str(token) if token else None,
                           streams={str(name): stream(name, spec, where) for name, spec in streams.items()})
    check_outputs(config.streams, where)
    check_listen(config.listen, config.token)
    return config


def check_listen(listen: str, token: str | None) -> None:
    """Beyond loopback the control API needs a token: anyone who reaches the port could change the streams."""
    host, _ = parse_address(listen, "listen")
    if host not in LOOPBACK and not token:
        raise VidsegError(f"listening on {host} reaches beyond this machine: the control API then needs a token "
                          f"(token: in the file, or {TOKEN_ENV})")


def stream(name: Any, spec: Any, where: str = "request") -> StreamConfig:
    """One stream's entry, checked: the same rules for the file and for ``POST /api/streams``."""
    if not isinstance(name, str) or not NAME.match(name):
        raise VidsegError(f"{where}: stream name {name!r} must be letters, digits, '_', '-' or '.' (at most 64)")
    at = f"{where}: streams.{name}"
    if isinstance(spec, (str, int)) and not isinstance(spec, bool):  # the short form: name: URL
        spec = {"url": spec}
    if not isinstance(spec, dict):
        raise VidsegError(f"{at}: expected a mapping with 'url', got {type(spec).__name__}")
    unknown = set(spec) - STREAM_KEYS
    if unknown:
        raise VidsegError(f"{at}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(STREAM_KEYS))})")
    url = spec.get("url")
    if not isinstance(url, (str, int)) or not str(url).strip():
        raise VidsegError(f"{at}: 'url' is required (rtsp://..., a camera index or a file)")
    values: dict[str, Any] = {"url": str(url).strip()}
    if not values["url"].isdigit() and "://" not in values["url"]:
        raise VidsegError(f"{at}.url: a stream URL (rtsp://, http://, udp://...) or a camera index, "
                          f"got {redact(values['url'])!r}")
    for key in ("fps", "segment_minutes", "alpha"):
        if spec.get(key) is not None:
            values[key] = _number(spec[key], f"{at}.{key}")
    if values.get("fps", 1) <= 0 or values.get("segment_minutes", 1) <= 0:
        raise VidsegError(f"{at}: 'fps' and 'segment_minutes' must be positive")
    if "crf" in spec:
        values["crf"] = int(_number(spec["crf"], f"{at}.crf"))
    if "reuse" in spec:
        if not isinstance(spec["reuse"], bool):
            raise VidsegError(f"{at}.reuse: expected true or false, got {spec['reuse']!r}")
        values["reuse"] = spec["reuse"]
    for key in ("record", "labels", "stats"):
        if spec.get(key):
            values[key] = Path(str(spec[key]))
    if spec.get("output"):
        values["output"] = str(spec["output"])
        if not is_network_url(values["output"]):
            raise VidsegError(f"{at}.output: a udp:// or rtmp:// URL, got {spec['output']!r}")
        try:
            NetworkSink.check(values["output"])
        except VidsegError as e:
            raise VidsegError(f"{at}.output: {e}") from None
    config = StreamConfig(**values)
    try:
        config.overlay  # noqa: B018 - alpha and crf checked where they are defined
    except VidsegError as e:
        raise VidsegError(f"{at}: {e}") from None
    return config


def check_outputs(streams: dict[str, StreamConfig], where: str) -> None:
    """Two streams may not write the same folder or file."""
    seen: dict[Path, str] = {}
    for name, s in streams.items():
        for path in (s.record, s.labels, s.stats):
            if path is None:
                continue
            key = path.resolve()
            if key in seen:
                raise VidsegError(f"{where}: streams {seen[key]} and {name} both write {path}")
            seen[key] = name


def _number(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VidsegError(f"{at}: expected a number, got {value!r}")
    return float(value)


def redact(url: str) -> str:
    """A URL fit for logs, pages and metrics: any user name and password replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.username and not parts.password:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
