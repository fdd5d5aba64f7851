"""``vidseg serve``: many live streams in one process, on one compiled model, controlled while it runs.

The service owns the compiled model and one ``Scheduler`` that shares it fairly between streams; each
configured stream is a ``ServedStream``: its source (reconnecting for as long as the service runs), its
stream in the scheduler's shared mode, its sinks (segmented recordings, label PNGs, stats, a network
output, and what the dashboard and metrics see) and the run loop that feeds them, in a thread of its own.
Streams come and go without disturbing the others: over HTTP, or from the configuration file again on
SIGHUP, of which only the difference is applied.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections import deque
from typing import Any

import cv2

from vidseg.api import Segmenter
from vidseg.errors import VidsegError, describe
from vidseg.inputs.sources import live_source
from vidseg.outputs.labels import LabelsSink
from vidseg.outputs.network import NetworkSink
from vidseg.outputs.segments import SegmentedVideoSink
from vidseg.outputs.sink import Sink
from vidseg.outputs.stats import StatsSink
from vidseg.result import FrameResult
from vidseg.runs import loop
from vidseg.runs.reuse import ReusePolicy
from vidseg.service import config as service_config
from vidseg.service.config import ServiceConfig, StreamConfig, redact
from vidseg.service.http import ServiceServer
from vidseg.service.metrics import Metrics
from vidseg.web import parse_address, url_of

STOP_WAIT_S = 20.0  # a stream's source may sit in a network read this long before it notices a stop
FPS_WINDOW = 20  # frames the stream's fps is measured over
JPEG_WIDTH = 640


def say(message: str) -> None:
    print(f"vidseg: serve: {message}", file=sys.stderr, flush=True)


class WatchSink(Sink):
    """What the dashboard and the metrics see of a stream: its newest frame, its pace, its latency."""

    def __init__(self, latency: Any):
        self._latency = latency
        self._times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._lock = threading.Lock()
        self.latest: FrameResult | None = None
        self.latency_s = 0.0
        self._jpeg: tuple[int, bytes] | None = None

    def write(self, frame: FrameResult) -> None:
        now = time.perf_counter()
        self.latency_s = now - frame.received if frame.received else 0.0
        self._latency.observe(self.latency_s)
        with self._lock:
            self._times.append(now)
            self.latest = frame

    def fps(self) -> float:
        with self._lock:
            times = list(self._times)
        if len(times) < 2 or time.perf_counter() - times[-1] > 5.0:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def jpeg(self) -> bytes | None:
        """The newest overlay as a JPEG, made when asked for (only watched streams cost anything)."""
        with self._lock:
            frame = self.latest
        if frame is None:
            return None
        if self._jpeg is not None and self._jpeg[0] == frame.index:
            return self._jpeg[1]
        image = frame.overlay(alpha=0.5)
        if frame.rgb:
            image = image[:, :, ::-1]
        h, w = image.shape[:2]
        if w > JPEG_WIDTH:
            image = cv2.resize(image, (JPEG_WIDTH, round(h * JPEG_WIDTH / w)), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        self._jpeg = (frame.index, data.tobytes()) if ok else None
        return self._jpeg[1] if self._jpeg else None


class ServedStream:
    """One stream of the service, from its source to its sinks."""

    def __init__(self, name: str, config: StreamConfig, seg: Segmenter, scheduler: Any, metrics: Metrics):
        self.name, self.config = name, config
        self.url = redact(config.url)
        self.error: str | None = None
        self.source = live_source(config.url, on_change=self._on_change)
        reuse = ReusePolicy() if config.reuse else None
        self.watch = WatchSink(metrics.latency.labels(stream=name))
        self.sinks: list[Sink] = []
        overlay = config.overlay
        if config.record is not None:
            self.sinks.append(SegmentedVideoSink(config.record, overlay, config.segment_minutes * 60))
        if config.labels is not None:
            self.sinks.append(LabelsSink(config.labels))
        if config.stats is not None:
            self.sinks.append(StatsSink(config.stats, append=True))
        if config.output is not None:
            self.sinks.append(NetworkSink(config.output, overlay))
        self.sinks.append(self.watch)
        self.stream = seg.stream(self.source, reuse=reuse, fps=config.fps, scheduler=scheduler,
                                 overlay_alpha=loop.overlay_alpha(self.sinks))
        self._thread = threading.Thread(target=self._run, name=f"serve-{name}", daemon=True)
        self._thread.start()

    def _on_change(self, state: str, reason: str | None) -> None:
        """The source's word on itself, said once per change."""
        if state == "live":
            self.error = None
            say(f"{self.name}: receiving from {self.url}")
        elif state == "reconnecting":
            self.error = reason
            say(f"{self.name}: lost {self.url} ({reason}); reconnecting with backoff, the others go on")
        elif state == "unreachable":
            self.error = reason
            say(f"{self.name}: cannot open {self.url} ({reason}); retrying with backoff")

    def _run(self) -> None:
        try:
            loop.run(self.stream, self.sinks)
        except BaseException as e:  # noqa: BLE001 - one stream's failure is its own, never the service's
            self.error = describe(e)
            say(f"{self.name}: stopped: {self.error}")

    @property
    def state(self) -> str:
        if not self._thread.is_alive():
            return "stopped"
        return self.source.state

    def status(self) -> dict[str, Any]:
        s = self.stream.summary
        record = next((x for x in self.sinks if isinstance(x, SegmentedVideoSink)), None)
        return {
            "name": self.name, "url": self.url, "state": self.state, "error": self.error,
            "target_fps": self.config.fps, "fps": round(self.watch.fps(), 3), "received": s.frames_in,
            "frames": s.frames_out,
            "dropped": s.dropped, "sampled_out": s.sampled_out, "reconnects": self.source.gaps,
            "windows": self.stream.windows_admitted, "latency_ms": round(1000 * self.watch.latency_s, 1),
            "up": int(self.state == "live"), "reuse": self.config.reuse,
            "segments": len(record.segments) if record is not None else 0,
        }

    def jpeg(self) -> bytes | None:
        return self.watch.jpeg()

    def stop(self) -> None:
        """Stop taking frames; the frames in flight are written and every sink closed (recordings playable)."""
        self.stream.stop()
        self.source.interrupt()

    def join(self, timeout: float = STOP_WAIT_S) -> None:
        self._thread.join(timeout)


class Service:
    """The running service. ``listen`` overrides the file's address."""

    def __init__(self, config: ServiceConfig, listen: str | None = None):
        host, port = parse_address(listen or config.listen, "--listen")
        service_config.check_listen(listen or config.listen, config.token)
        self.config = config
        self.seg = Segmenter(config.model, config.device)
        self.scheduler = self.seg.scheduler()
        self.metrics = Metrics(self.statuses)
        self._streams: dict[str, ServedStream] = {}
        self._lock = threading.RLock()
        try:
            self.server = ServiceServer((host, port), self, config.token)
        except OSError as e:
            self.scheduler.close()
            raise VidsegError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.url = url_of(host, self.server.server_address[1])
        self._http = threading.Thread(target=self.server.serve_forever, name="serve-http", daemon=True)
        self._http.start()
        for name, stream in config.streams.items():
            self._start(name, stream)

    # --- streams ---------------------------------------------------------------------------------------
    def get(self, name: str) -> ServedStream | None:
        with self._lock:
            return self._streams.get(name)

    def add(self, name: Any, spec: Any) -> ServedStream:
        """A stream from an API request: checked as the file's entries are, and against the others."""
        config = service_config.stream(name, spec)
        with self._lock:
            if name in self._streams:
                raise VidsegError(f"stream {name!r} already exists: DELETE it first")
            service_config.check_outputs({**{n: s.config for n, s in self._streams.items()}, name: config},
                                         "request")
            return self._start(name, config)

    def _start(self, name: str, config: StreamConfig) -> ServedStream:
        stream = ServedStream(name, config, self.seg, self.scheduler, self.metrics)
        with self._lock:
            self._streams[name] = stream
        say(f"{name}: added ({stream.url}, {f'{config.fps:g} fps' if config.fps else 'every frame'})")
        return stream

    def remove(self, name: str) -> bool:
        with self._lock:
            stream = self._streams.pop(name, None)
        if stream is None:
            return False
        stream.stop()
        stream.join()
        self.metrics.forget(name)
        say(f"{name}: removed")
        return True

    def apply(self, config: ServiceConfig) -> str:
        """A re-read file: what changed between the file as last applied and now is applied (streams gone
        from it are removed, new ones added, changed ones restarted); every other stream, including those
        added or removed over HTTP since, is left as it is. The model, device and address stay those the
        service started with."""
        old = self.config.streams
        gone = [n for n in old if n not in config.streams or config.streams[n] != old[n]]
        new = [n for n in config.streams if n not in old or config.streams[n] != old[n]]
        with self._lock:
            running = {n: s.config for n, s in self._streams.items()}
        service_config.check_outputs({**{n: c for n, c in running.items() if n not in gone},
                                      **{n: config.streams[n] for n in new}}, "the file")
        for name in [*gone, *new]:  # the file's version of a name replaces one added over HTTP
            self.remove(name)
        for name in new:
            self._start(name, config.streams[name])
        if (config.model, config.device, config.listen) != (self.config.model, self.config.device,
                                                             self.config.listen):
            say("model, device and listen take effect on a restart only")
        self.config = dataclasses.replace(self.config, streams=config.streams)
        return f"{len(new)} started, {len(gone)} stopped, {len(self._streams) - len(new)} unchanged"

    def statuses(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            streams = list(self._streams.values())
        return {s.name: s.status() for s in streams}

    def health(self) -> dict[str, Any]:
        statuses = self.statuses()
        return {"status": "ok", "streams": len(statuses), "live": sum(s["up"] for s in statuses.values())}

    # --- lifetime --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every stream stopped at once, then waited for: each recording closed and playable."""
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.stop()
        for stream in streams:
            stream.join()
        self.server.shutdown()
        self.server.server_close()
        self.scheduler.close()
