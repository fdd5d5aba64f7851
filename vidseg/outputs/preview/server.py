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
import threading
import time
from collections import deque
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from vidseg.errors import VidsegError
from vidseg.outputs.sink import Sink
from vidseg.result import FrameResult, class_shares
from vidseg.web import Handler, QuietServer, parse_address, url_of

DEFAULT_ADDRESS = "127.0.0.1:8765"
WAIT_S = 10.0  # a frame request is answered within this, with 204 if nothing new came
VIEWER_IDLE_S = 3.0  # no JPEG is made when nobody asked for a frame for this long


class Preview(Sink):
    """A running preview of one run. ``url`` is where to open it; ``close()`` ends it with the run."""

    def __init__(self, address: str, title: str, alpha: float = 0.5, max_fps: float = 10.0, max_width: int = 960,
                 window_s: float = 60.0):
        host, port = parse_address(address, "--preview")
        self.title = title
        self.alpha, self.max_fps, self.max_width, self.window_s = alpha, max_fps, max_width, window_s
        try:
            self._httpd = _Server((host, port), _Handler)
        except OSError as e:
            raise VidsegError(f"cannot serve the preview on {host}:{port}: {e.strerror or e}") from None
        self._httpd.preview = self
        self.host, self.port = host, self._httpd.server_address[1]
        self.url = url_of(host, self.port)
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


class _Server(QuietServer):
    label = "preview"
    preview: Preview


class _Handler(Handler):
    server: _Server
    server_version = "vidseg-preview"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        preview = self.server.preview
        if not self.host_allowed(preview.host):
            self.send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain")
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, preview.page, "text/html; charset=utf-8")
        elif url.path == "/state.json":
            self.send(HTTPStatus.OK, preview.state_json(), "application/json")
        elif url.path == "/frame.jpg":
            try:
                after = int(parse_qs(url.query).get("after", ["-1"])[0])
            except ValueError:
                self.send(HTTPStatus.BAD_REQUEST, b"after must be a number\n", "text/plain")
                return
            found = preview.next_frame(after)
            if found is None:
                status = HTTPStatus.NO_CONTENT if preview.running else HTTPStatus.GONE
                self.send(status, b"", "text/plain")
            else:
                self.send(HTTPStatus.OK, found[1], "image/jpeg", {"X-Frame-Seq": str(found[0])})
        else:
            self.send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _not_allowed(self) -> None:
        self.send(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET\n", "text/plain", {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815
