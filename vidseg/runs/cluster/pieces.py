"""Where a cluster run's outputs go, and how a video's pieces become the files a local run writes.

Each segment of a video is written by the worker that labelled it into the segment's own folder
(``<work>/<part>/``): its overlay piece (an H.264 video that starts with a keyframe), its label PNGs
numbered from 0, and last ``unit.json`` (each frame's timestamp and stats record, and a fingerprint of
what made them): a folder without ``unit.json`` is unfinished. The work folder is hidden, inside the
video's label folder or beside its overlay, so the pieces are on the same storage as the final files and
a collection never reads them back as inputs.

Once every segment of a video is finished, the driver joins them (``join``): the overlay pieces are
copied packet by packet into one file, with the source's audio copied once; the label PNGs are renamed to
their numbers in the whole video; the stats lines get their frame numbers; ``frames.json`` comes last.
Nothing is decoded or encoded, and every file appears under its final name only when it is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidseg.errors import VidsegError
from vidseg.files import write_json
from vidseg.outputs.labels import FRAMES_JSON
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.stats import StatsSink
from vidseg.outputs.video import VIDEO_SUFFIXES, audio_copyable

UNIT_JSON = "unit.json"


@dataclass(frozen=True)
class Targets:
    """What a local run would write for one input, as the paths of the final files (sent to workers).
    ``video``/``labels`` for a video; ``images`` (a folder) or ``image`` (a file) plus ``labels`` (the
    labels folder) for an image; ``stats``: whether stats lines are wanted (the driver writes the file)."""

    video: Path | None = None
    labels: Path | None = None
    images: Path | None = None
    image: Path | None = None
    stats: Path | None = None
    overlay: OverlayOptions = OverlayOptions()

    def work_dir(self, key: str | None) -> Path:
        """Where the segments of this video wait to be joined: on the storage of its outputs."""
        if self.labels is not None:
            return self.labels / ".pieces"
        if self.video is not None:
            return self.video.with_name(f".{self.video.name}.pieces")
        assert self.stats is not None
        return self.stats.with_name(f".{self.stats.name}.{(key or 'video').replace('/', '__')}.pieces")

    def unit_dir(self, key: str | None, part: int) -> Path:
        return self.work_dir(key) / f"{part:05d}"

    def piece(self, key: str | None, part: int) -> Path:
        """The overlay piece of one segment, in the container of the final video."""
        assert self.video is not None
        return self.unit_dir(key, part) / f"overlay{self.video.suffix}"


def read_unit(unit_dir: Path) -> dict[str, Any] | None:
    """A finished segment's record, or None if it is not finished."""
    try:
        return json.loads((unit_dir / UNIT_JSON).read_text())
    except (OSError, ValueError):
        return None


def _fraction(value: list[int] | None) -> Fraction | None:
    return Fraction(*value) if value is not None else None


@dataclass
class Joined:
    """What a join made: the video's frames, and why its audio could not be copied, if it could not."""

    frames: int
    audio_skipped: str | None = None


def join(targets: Targets, key: str | None, parts: int, source: Path, start: float | None, end: float | None,
         stats: StatsSink | None) -> Joined:
    """Make one video's final outputs from its ``parts`` finished segments (see the module's docstring).
    ``stats`` is the run's ``StatsSink`` (or None); ``source`` and ``start``/``end`` give the audio."""
    units = [read_unit(targets.unit_dir(key, part)) for part in range(parts)]
    if any(u is None for u in units):
        raise VidsegError(f"{key or source}: a segment's record is missing from {targets.work_dir(key)}")
    frames = sum(u["frames"] for u in units)  # type: ignore[index]
    joined = Joined(frames)
    if frames and targets.video is not None:
        pieces = [(targets.piece(key, part), _fraction(u["first_time"]))  # type: ignore[index]
                  for part, u in enumerate(units) if u["frames"]]  # type: ignore[index]
        joined.audio_skipped = join_video(pieces, targets.video, source, start, end)
    times: list[float | None] = []
    for part, u in enumerate(units):
        assert u is not None
        if targets.labels is not None:
            staged = targets.unit_dir(key, part) / "labels"
            for i in range(u["frames"]):
                final = targets.labels / f"{len(times) + i:06d}.png"
                try:
                    os.replace(staged / f"{i:06d}.png", final)
                except FileNotFoundError:
                    if not final.exists():  # else renamed by a join that was cut short: --resume goes on
                        raise
        if stats is not None:
            for i, record in enumerate(u["records"]):
                stats.write_record({"frame": len(times) + i, **record})
        times += u["times"]
    if targets.labels is not None and times:
        write_json(targets.labels / FRAMES_JSON, {"frames": len(times), "times": times})
    shutil.rmtree(targets.work_dir(key), ignore_errors=True)
    return joined


def join_video(pieces: list[tuple[Path, Fraction | None]], out: Path, source: Path, start: float | None,
               end: float | None) -> str | None:
    """Copy the pieces' packets one after another into ``out`` (``pieces``: each piece's file and its
    first frame's time in seconds) and the source's audio (the packets a local run copies: inside
    ``start``..``end``) beside them, interleaved by time. Returns why the audio could not be copied."""
    fmt = VIDEO_SUFFIXES[out.suffix.lower()]
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial{out.suffix}")
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = [av.open(str(p)) for p, _ in pieces]
    audio_in = av.open(str(source), metadata_errors="ignore")
    skipped = None
    try:
        first = inputs[0].streams.video[0]
        for other in inputs[1:]:
            o = other.streams.video[0]
            if (o.codec_context.extradata, o.time_base) != (first.codec_context.extradata, first.time_base):
                raise VidsegError(f"{out}: its pieces were encoded with different settings and cannot be joined")
        with av.open(str(tmp), mode="w", format=fmt, options=options) as container:
            video = container.add_stream_from_template(first)
            audio = None
            if audio_in.streams.audio:
                template = audio_in.streams.audio[0]
                if audio_copyable(template.codec_context.name, fmt):
                    audio = container.add_stream_from_template(template)
                else:
                    skipped = f"audio codec {template.codec_context.name} cannot be copied into {out.suffix}"
            _mux_in_time_order(container, _video_packets(list(zip(inputs, [t for _, t in pieces], strict=True)), video),
                               _audio_packets(audio_in, audio, start, end) if audio is not None else iter(()))
        os.replace(tmp, out)
    except av.error.FFmpegError as e:
        raise VidsegError(f"cannot join the pieces of {out}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
        for c in (*inputs, audio_in):
            c.close()
    return skipped


def _video_packets(pieces: list[tuple[Any, Fraction | None]], stream: Any) -> Iterator[Any]:
    """The pieces' packets in order, each piece at the presentation time of its first frame (``pieces``:
    container, that time in seconds). A muxer may have moved a piece's timestamps (MP4 rounds the
    start of its edit list to milliseconds); they move back by the same amount. Each piece's encoder also
    started decoding before its first frame (B-frames), which can reach back into the piece before: such
    a packet's decoding time moves up, never past its presentation time, which is kept."""
    last_dts: int | None = None
    for c, first_time in pieces:
        time_base, shift = c.streams.video[0].time_base, 0
        for packet in c.demux(c.streams.video[0]):
            if packet.size == 0:
                continue
            if first_time is not None and packet.pts is not None:  # the piece's first packet: its keyframe
                shift, first_time = round(first_time / time_base) - packet.pts, None
            packet.pts = None if packet.pts is None else packet.pts + shift
            packet.dts = None if packet.dts is None else packet.dts + shift
            if last_dts is not None and packet.dts is not None and packet.dts <= last_dts:
                packet.dts = last_dts + 1
                if packet.pts is not None and packet.dts > packet.pts:
                    raise VidsegError(f"{c.name}: its decoding times overlap the piece before it")
            last_dts = packet.dts
            packet.stream = stream
            yield packet


def _audio_packets(container: Any, stream: Any, start: float | None, end: float | None) -> Iterator[Any]:
    for packet in container.demux(container.streams.audio[0]):
        if packet.size == 0 or packet.dts is None:
            continue
        if packet.pts is not None:
            t = packet.pts * packet.time_base
            if (start and t < start) or (end is not None and t > end):
                continue
        packet.stream = stream
        yield packet


def _seconds(packet: Any) -> Fraction:
    return (packet.dts or 0) * packet.time_base


def _mux_in_time_order(container: Any, video: Iterator[Any], audio: Iterator[Any]) -> None:
    """Both are in decoding order: taking the earlier of the two heads keeps the muxer's buffer small."""
    v, a = next(video, None), next(audio, None)
    while v is not None or a is not None:
        if a is None or (v is not None and _seconds(v) <= _seconds(a)):
            container.mux(v)
            v = next(video, None)
        else:
            container.mux(a)
            a = next(audio, None)
