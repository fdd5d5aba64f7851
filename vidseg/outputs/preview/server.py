"""The preview server: one page, the newest frame as JPEG, the run's state as JSON; nothing else.

The run loop gives it each frame (``write``), which only swaps a reference, so the pipeline never
waits for the preview. A thread of the preview's own turns the newest frame into a JPEG at most
``max_fps`` times a second (only while somebody is watching) and the class shares into the state.
Browsers long-poll for frames one at a time, so a slow viewer gets fewer frames, never older ones, and
holds nothing back. The server answers GET on its three paths, 404 elsewhere, 405 to other methods, 400
to malformed requests (Python's parser), and 403 to a Host header that is not the address it serves (a
web page elsewhere cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from vidseg.errors import VidsegError
from vidseg.outputs.sink import Sink
from vidseg.result import FrameResult, class_shares

DEFAULT_ADDRESS = "127.0.0.1:8765"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WAIT_S = 10.0  # a frame request is answered within this, with 204 if nothing new came
VIEWER_IDLE_S = 3.0  # no JPEG is made when nobody asked for a frame for this long


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port``; the host defaults to 127.0.0.1."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise VidsegError(f"--preview takes host:port or a port, got {address!r}") from None
    if not 0 <= number <= 65535:
        raise VidsegError(f"--preview port must be 0..65535, got {number}")
    return host.strip("[]") or "127.0.0.1", number


class Preview(Sink):
    """A running preview of one run. ``url`` is where to open it; ``close()`` ends it with the run."""

    def __init__(self, address: str, title: str, alpha: float = 0.5, max_fps: float = 10.0, max_width: int = 960,
                 window_s: float = 60.0):
        host, port = parse_address(address)
        self.title = title
        self.alpha, self.max_fps, self.max_width, self.window_s = alpha, max_fps, max_width, window_s
        try:
            self._httpd = _Server((host, port), _Handler)
        except OSError as e:
            raise VidsegError(f"cannot serve the preview on {host}:{port}: {e.strerror or e}") from None
        self._httpd.preview = self
        self.host, self.port = host, self._httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self._page = resources.files("vidseg.outputs.preview").joinpath("page.html").read_bytes()
        self._cond = threading.Condition()
        self._pending: FrameResult | None = None
        self._jpeg: bytes | None = None
        self._seq = -1
        self._state: dict[str, Any] = {"source": title, "running": True, "frame": -1, "fps": 0.0,
                                       "latency_ms": 0.0, "classes": [], "chart_classes": [], "history": [],
                                       "window_s": window_s}
        self._history: deque[tuple[float, dict[int, float]]] = deque()
        self._published: deque[float] = deque(maxlen=30)
        self._last_viewer = 0.0
        self._started = time.perf_counter()
        self.running = True
        self.cpu_s = 0.0  # CPU time of the preview's own thread: what it costs the model
        self._threads = [threading.Thread(target=self._httpd.serve_forever, name="preview-http", daemon=True),
                         threading.Thread(target=self._render, name="preview-render", daemon=True)]
        for t in self._threads:
            t.start()

    # --- the run's side ------------------------------------------------------------------------------
    def write(self, frame: FrameResult) -> None:
        """Offer a frame; the newest one offered is what viewers see next. Never blocks."""
        latency = time.perf_counter() - frame.received if frame.received else 0.0
        with self._cond:
            self._pending = frame
            self._published.append(time.perf_counter())
            self._state["latency_ms"] = round(1000 * latency, 1)
            self._cond.notify_all()

    def close(self, complete: bool = True) -> None:
        """Stop serving (end of input, Ctrl-C, error). Open pages show that the run ended."""
        with self._cond:
            self.running = False
            self._state["running"] = False
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(timeout=WAIT_S)

    # --- the preview's own thread ----------------------------------------------------------------------
    def _render(self) -> None:
        next_at = 0.0
        while True:
            with self._cond:
                while self.running and self._pending is None:
                    self._cond.wait(0.2)
                if not self.running:
                    return
            time.sleep(max(0.0, next_at - time.perf_counter()))  # the rate cap; newer frames replace this one
            with self._cond:
                frame, self._pending = self._pending, None
            if frame is None:
                continue
            next_at = time.perf_counter() + 1.0 / self.max_fps
            t0 = time.thread_time()
            state = self._describe(frame)
            jpeg = self._encode(frame) if time.perf_counter() - self._last_viewer < VIEWER_IDLE_S else None
            self.cpu_s += time.thread_time() - t0
            with self._cond:
                self._state.update(state)
                if jpeg is not None:
                    self._jpeg, self._seq = jpeg, self._seq + 1
                self._cond.notify_all()

    def _describe(self, frame: FrameResult) -> dict[str, Any]:
        """The frame's classes (the class table travels with the frame) and the last minute's shares."""
        names, colors = frame.class_names, frame.palette.rgb.tolist()
        shares = class_shares(frame.labels, len(names))
        now = time.perf_counter() - self._started
        present = {int(i): float(shares[i]) for i in np.flatnonzero(shares >= 0.005)}
        self._history.append((now, present))
        while self._history and self._history[0][0] < now - self.window_s:
            self._history.popleft()
        mean: dict[int, float] = {}
        for _, point in self._history:
            for i, s in point.items():
                mean[i] = mean.get(i, 0.0) + s
        top = sorted(mean, key=mean.__getitem__, reverse=True)[:6]
        stamps = list(self._published)
        fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        return {
            "frame": frame.index, "time": frame.time, "fps": round(fps, 2),
            "classes": [{"id": i, "name": names[i], "color": colors[i], "share": round(s, 4)}
                        for i, s in sorted(present.items(), key=lambda kv: -kv[1])],
            "chart_classes": [{"id": i, "name": names[i], "color": colors[i]} for i in top],
            "history": [{"t": round(t, 2), "shares": {i: round(s, 4) for i, s in p.items() if i in top}}
                        for t, p in self._history],
        }

    def _encode(self, frame: FrameResult) -> bytes:
        image = frame.overlay(alpha=self.alpha)
        if frame.rgb:
            image = image[:, :, ::-1]
        h, w = image.shape[:2]
        if w > self.max_width:
            image = cv2.resize(image, (self.max_width, round(h * self.max_width / w)), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return jpeg.tobytes() if ok else b""

    # --- the server's side -----------------------------------------------------------------------------
    def next_frame(self, after: int) -> tuple[int, bytes] | None:
        """The newest JPEG if it is newer than ``after``, waiting up to ``WAIT_S`` for one."""
        deadline = time.monotonic() + WAIT_S
        with self._cond:
            self._last_viewer = time.perf_counter()
            while self.running and (self._jpeg is None or self._seq <= after) and time.monotonic() < deadline:
                self._cond.wait(0.2)
                self._last_viewer = time.perf_counter()
            if self._jpeg is None or self._seq <= after:
                return None
            return self._seq, self._jpeg

    def state_json(self) -> bytes:
        with self._cond:
            return json.dumps(self._state).encode()

    def report(self) -> dict[str, Any]:
        """For the run's summary: where it was and what it cost the CPU."""
        return {"preview": self.url, "cpu_s": round(self.cpu_s, 3)}

    @property
    def page(self) -> bytes:
        return self._page


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    preview: Preview

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A viewer that went away mid-answer is normal and says nothing; anything else is one line (the
        run goes on: the preview must never stop it)."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            print(f"vidseg: preview: {type(error).__name__}: {error}", file=sys.stderr)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "vidseg-preview"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops talking frees its thread

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        preview = self.server.preview
        if not self._host_allowed(preview):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain")
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, preview.page, "text/html; charset=utf-8")
        elif url.path == "/state.json":
            self._send(HTTPStatus.OK, preview.state_json(), "application/json")
        elif url.path == "/frame.jpg":
            try:
                after = int(parse_qs(url.query).get("after", ["-1"])[0])
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, b"after must be a number\n", "text/plain")
                return
            found = preview.next_frame(after)
            if found is None:
                status = HTTPStatus.NO_CONTENT if preview.running else HTTPStatus.GONE
                self._send(status, b"", "text/plain")
            else:
                self._send(HTTPStatus.OK, found[1], "image/jpeg", {"X-Frame-Seq": str(found[0])})
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _not_allowed(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET\n", "text/plain", {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def _host_allowed(self, preview: Preview) -> bool:
        if preview.host not in LOOPBACK:
            return True  # bound elsewhere on purpose (see the security note in docs/live.md)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in LOOPBACK

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; img-src 'self' blob:; connect-src 'self'; "
                                              "style-src 'unsafe-inline'; script-src 'unsafe-inline'"}
        for k, v in {**headers, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the terminal belongs to the progress bar."""
