"""Work units for a cluster: one image, or one segment of a video that starts at a keyframe.

A segment that starts at a keyframe decodes on its own, so one long video spreads over every worker, and
the frames a worker decodes are exactly those a single sequential decode gives for that stretch. Finding
keyframes reads packets only (no decoding), which is fast next to inference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidseg.errors import InputError
from vidseg.inputs.sources import CollectionSource, ImageSource, Source, VideoSource, relative_name

DEFAULT_SEGMENT_FRAMES = 120


@dataclass(frozen=True)
class Unit:
    """What one task labels. ``key`` names the input (its path in a collection; None for a single input).
    A video segment keeps the frames with ``first_pts <= pts < end_pts`` (None: open-ended); it is ``part``
    of its video, ``last`` the final one. An image is frame ``index`` of its input, as a local run counts."""

    seq: int
    spec: str
    key: str | None
    image: bool = False
    first_pts: int | None = None
    end_pts: int | None = None
    part: int = 0
    last: bool = True
    index: int = 0


def keyframe_boundaries(path: Path, segment_frames: int, start: float | None = None,
                        end: float | None = None) -> list[int]:
    """Presentation timestamps of the keyframes to split a video at: segments of at least
    ``segment_frames`` frames. Only keyframes inside ``start``..``end`` qualify, so the first segment
    begins wherever the single-machine run begins."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError:
        return []  # unreadable: the driver's own read reports it
    try:
        if not container.streams.video:
            return []
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 90000)
        cuts: list[int] = []
        since_cut = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream flush
            if packet.is_keyframe and packet.pts is not None and since_cut >= segment_frames:
                t = packet.pts * time_base
                if end is not None and t > end:
                    break
                if not start or t > start:
                    cuts.append(packet.pts)
                    since_cut = 0
            since_cut += 1
        return cuts
    except av.error.FFmpegError:
        return []  # a damaged file is read in one piece, as a local run reads it
    finally:
        container.close()


def plan(source: Source, segment_frames: int = DEFAULT_SEGMENT_FRAMES, start: float | None = None,
         end: float | None = None, skip: Callable[[Path], bool] | None = None) -> Iterator[Unit]:
    """The units of a whole input, in the order its frames come. Inputs ``skip`` says are done (--resume)
    get none: their frames are not read either. Lazy, so a big collection starts at once."""
    seq = 0

    def video(spec: str, name: str | None) -> Iterator[Unit]:
        nonlocal seq
        bounds = [None, *keyframe_boundaries(Path(spec), segment_frames, start, end), None]
        for part, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=False)):
            yield Unit(seq, _absolute(spec), name, first_pts=first, end_pts=last, part=part,
                       last=part == len(bounds) - 2)
            seq += 1

    if isinstance(source, VideoSource):
        yield from video(str(source.path), None)
    elif isinstance(source, ImageSource):
        for index, path in enumerate(source.files):
            name = relative_name(path, source.root)
            if skip is None or not skip(name):
                yield Unit(seq, _absolute(str(path)), str(name), image=True, index=index)
                seq += 1
    elif isinstance(source, CollectionSource):
        for e in source.entries:
            if "://" in e.spec:
                raise InputError(f"{e.spec}: a cluster run takes files only (streams cannot be split)")
            if skip is not None and skip(e.name):
                continue
            if e.is_image:
                yield Unit(seq, _absolute(e.spec), str(e.name), image=True)
                seq += 1
            else:
                yield from video(e.spec, str(e.name))
    else:
        raise InputError(f"a cluster run takes video files, images, folders, globs and @lists, not a {source.kind}")


def _absolute(spec: str) -> str:
    """Workers do not share the driver's working directory: they get the path every node mounts."""
    return str(Path(spec).absolute())
