"""The output protocol: every place results go (video file, label folder, stats, network, preview) is a
``Sink``, so one run loop can feed any set of them, for a single run or for many streams at once.

A sink is opened once with the stream's ``VideoFacts``, given every frame in order, and closed either as
complete (the input was read to its end: trailing audio, ``frames.json`` and the like are written) or as
interrupted (what was written stays valid, nothing claims to be whole).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vidseg.result import FrameResult


@dataclass(frozen=True)
class VideoFacts:
    """What a sink needs to know about a stream before its first frame is written."""

    width: int  # as displayed: after rotation
    height: int
    time_base: Fraction  # of the frames' ``pts``
    fps: Fraction | None  # exact (30000/1001, never 29), None when the source has no rate
    rotation: int = 0  # degrees the frames were turned to be displayed upright (already applied)
    live: bool = False  # a camera or network stream: stamped by the wall clock, no end
    audio: Any = field(default=None, repr=False)  # the PyAV audio stream to copy, if any
    trailing_audio: Callable[[], Sequence[Any]] = field(default=tuple, repr=False)  # packets after the last frame

    @classmethod
    def of(cls, frame: FrameResult) -> VideoFacts:
        """The facts of the stream ``frame`` belongs to (for a collection: of its own input)."""
        source = frame.source
        height, width = frame.labels.shape
        if source is None:  # a FrameResult made by hand
            return cls(width, height, Fraction(1, 1000), None)
        return cls(width, height, source.time_base, source.fps, source.rotation, source.live, source.audio,
                   lambda: source.trailing_packets)


class Sink:
    """One output of a run. ``open`` comes before the first ``write``; ``close`` always comes, once."""

    audio_skipped: str | None = None  # why the input's audio could not be copied, for sinks that copy it
    overlay_alpha: float | None = None  # the overlay opacity the sink shows every frame at, if it shows one

    def open(self, facts: VideoFacts) -> None:
        """Prepare for a stream with these facts (most sinks create their files lazily or here)."""

    def write(self, frame: FrameResult) -> None:
        raise NotImplementedError

    def close(self, complete: bool = True) -> None:
        """Finish. ``complete``: the input was read to its end, not stopped or failed."""

    def report(self) -> dict[str, Any] | None:
        """What the sink did, for the run's summary (live outputs say what they sent and dropped)."""
        return None

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(complete=exc[0] is None)


def close_all(sinks: list[Sink], complete: bool) -> None:
    """Close every sink even when one fails; the first failure is raised after the others are closed."""
    error: BaseException | None = None
    for sink in sinks:
        try:
            sink.close(complete)
        except BaseException as e:  # noqa: BLE001 - re-raised below, once every sink had its turn
            error = error or e
    if error is not None:
        raise error
