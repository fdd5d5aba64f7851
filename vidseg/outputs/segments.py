"""A live stream's overlay as a folder of MP4 segments, each complete and playable once it has its name.

An endless recording cannot be one file: a file is only playable once it is closed. So the recording is
cut every ``segment_s`` seconds of stream time into ``<folder>/<UTC start>.mp4`` (``20261206T194500Z.mp4``),
each written as ``VideoFileSink`` writes a file (hidden while it grows, renamed when finished). A reconnect
of the source or a change of picture size also starts a new segment: a gap between two files, never a
broken one. (Time between two frames is no sign of a gap: a busy service segments a camera every few
seconds.)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.sink import Sink, VideoFacts
from vidseg.outputs.video import VideoFileSink
from vidseg.result import FrameResult


class SegmentedVideoSink(Sink):
    """``segment_s``: the longest segment, in seconds of stream time."""

    def __init__(self, folder: Path, options: OverlayOptions, segment_s: float = 600.0):
        self.folder, self.options, self.segment_s = folder, options, segment_s
        self.overlay_alpha = options.alpha
        self.segments: list[Path] = []  # finished, in order
        self._facts: VideoFacts | None = None
        self._current: VideoFileSink | None = None
        self._first_pts = 0
        self._size: tuple[int, ...] = ()
        self._reconnects = 0  # the source's reconnections when the current segment began
        self._start_t = 0.0

    def open(self, facts: VideoFacts) -> None:
        self._facts = facts

    def write(self, frame: FrameResult) -> None:
        t = frame.time if frame.time is not None else time.monotonic()
        reconnects = getattr(frame.source, "gaps", 0)
        if self._current is not None and (t - self._start_t >= self.segment_s or reconnects != self._reconnects
                                          or frame.labels.shape != self._size):
            self._finish()
        if self._current is None:
            self._begin(frame, t)
            self._reconnects = reconnects
        assert self._current is not None
        pts = frame.pts - self._first_pts if frame.pts is not None else None
        self._current.write(dataclasses.replace(frame, pts=pts, audio=[]))

    def _begin(self, frame: FrameResult, t: float) -> None:
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.folder / f"{name}.mp4"
        n = 1
        while path.exists():
            n += 1
            path = self.folder / f"{name}-{n}.mp4"
        facts = dataclasses.replace(self._facts or VideoFacts.of(frame), width=frame.labels.shape[1],
                                    height=frame.labels.shape[0], audio=None)
        self._size = frame.labels.shape
        self._current = VideoFileSink(path, self.options)
        self._current.open(facts)
        self._first_pts = frame.pts or 0
        self._start_t = t

    def _finish(self) -> None:
        if self._current is None:
            return
        sink, self._current = self._current, None
        sink.close(complete=True)  # every segment is a whole file, also the last one of a stop
        if sink.path.exists():
            self.segments.append(sink.path)

    def close(self, complete: bool = True) -> None:
        self._finish()

    def report(self) -> dict[str, object]:
        return {"record": str(self.folder), "segments": len(self.segments)}
