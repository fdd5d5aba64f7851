"""The overlay as a live H.264 stream to a media server or receiver: ``-o udp://`` (MPEG-TS) and
``-o rtmp://`` (FLV). ``srt://`` is refused with a way round it: the FFmpeg inside PyAV's wheels has no
libsrt.

A network output must never hold the run back and must outlive its receiver. Frames reach it through a
two-frame queue that drops the oldest, and its own thread encodes and sends them. When the receiver goes
away the output says so once, drops frames while it is gone, and reconnects with backoff (0.5 s doubling
to 10 s), as live inputs do; it says so again when it is sending.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import urllib.parse
from fractions import Fraction
from typing import Any

import av
import numpy as np

from vidseg.errors import VidsegError
from vidseg.outputs.encoder import H264Encoder, x264_options
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.sink import Sink
from vidseg.queues import offer_newest
from vidseg.result import FrameResult

STREAM_FORMATS = {"udp": "mpegts", "rtmp": "flv"}
UNSUPPORTED = {"srt": "srt:// needs FFmpeg with libsrt, which PyAV's wheels lack: send udp:// and relay it "
                      "(ffmpeg -i udp://HOST:PORT -c copy -f mpegts srt://...)"}
TIME_BASE = Fraction(1, 1000)
IO_TIMEOUT_S = 5.0  # a receiver that stops reading fails the send instead of hanging it
END = object()


def is_network_url(target: str) -> bool:
    """A URL (``scheme://``) rather than a path: a network output, or a one-line error if unsupported."""
    return "://" in target


def _say(message: str) -> None:
    print(f"vidseg: {message}", file=sys.stderr, flush=True)


class NetworkSink(Sink):
    """One ``-o URL``. ``write(frame)`` never blocks; ``close()`` flushes and ends the stream."""

    @staticmethod
    def check(url: str) -> str:
        """The container format for the URL's scheme; a one-line error for a scheme it cannot send."""
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme in UNSUPPORTED:
            raise VidsegError(UNSUPPORTED[scheme])
        if scheme not in STREAM_FORMATS:
            raise VidsegError(f"network outputs are udp:// or rtmp:// URLs, not {url}")
        return STREAM_FORMATS[scheme]

    def __init__(self, url: str, options: OverlayOptions):
        self.url, self.format, self.options = url, self.check(url), options
        self.overlay_alpha = options.alpha
        self.sent = self.dropped = self.reconnects = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._container: Any = None
        self._encoder: H264Encoder | None = None
        self._t0: float | None = None
        self._down = False
        self._delay, self._retry_at = 0.5, 0.0
        self._thread = threading.Thread(target=self._run, name="stream-output", daemon=True)
        self._thread.start()

    def write(self, frame: FrameResult) -> None:
        self.dropped += offer_newest(self._queue, (self.options.bgr(frame), frame.time))

    def close(self, complete: bool = True) -> None:
        """End the stream after the frames still queued (the oldest gives way if it is full); flush the encoder."""
        self.dropped += offer_newest(self._queue, END)
        self._thread.join(timeout=30)

    def report(self) -> dict[str, Any]:
        return {"url": self.url, "sent": self.sent, "dropped": self.dropped, "reconnects": self.reconnects}

    # --- the output's own thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not END:
                image, t = item
                if self._container is None and not self._connect(image):
                    self.dropped += 1
                    continue
                try:
                    self._send(image, t)
                except (av.error.FFmpegError, OSError) as e:
                    self._lost(e)
        finally:
            self._disconnect(flush=True)

    def _connect(self, image: np.ndarray) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            # flush_packets: each frame leaves when it is muxed, not when a 32 KB buffer fills.
            self._container = av.open(self.url, mode="w", format=self.format, options={"flush_packets": "1"},
                                      timeout=IO_TIMEOUT_S)
            self._encoder = H264Encoder(self._container, image.shape[1], image.shape[0], TIME_BASE, 30,
                                        x264_options(self.options.preset, self.options.crf, live=True))
        except (av.error.FFmpegError, OSError) as e:
            self._lost(e)
            return False
        self._t0 = None
        return True

    def _send(self, image: np.ndarray, t: float | None) -> None:
        now = t if t is not None else time.monotonic()
        if self._t0 is None:
            self._t0 = now
        assert self._encoder is not None  # made by _connect
        self._encoder.encode(image, int(round((now - self._t0) * 1000)))  # ms since the stream began
        self.sent += 1
        if self._down:  # some protocols connect on the first write: only now is the receiver back
            self._down, self._delay = False, 0.5
            self.reconnects += 1
            _say(f"stream output {self.url}: sending again")

    def _lost(self, error: BaseException) -> None:
        if not self._down:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            _say(f"stream output {self.url}: {reason}; still processing, retrying with backoff")
            self._down = True
        self._disconnect(flush=False)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, 10.0)

    def _disconnect(self, flush: bool) -> None:
        if self._container is None:
            return
        try:
            if flush and self._encoder is not None:
                self._encoder.flush()
        except (av.error.FFmpegError, OSError):
            pass
        finally:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass
            self._container, self._encoder = None, None
