"""Writing a stream's results to disk exactly as ``vidseg process`` does, for the CLI and for Python.

One ``Writer`` takes every output of one input at once (overlay video, overlay images, label PNGs,
per-frame stats) because they share decisions: a frame's file name, its timestamp, the audio to copy
before it, and what ``--resume`` counts as done. ``CollectionWriter`` gives each input of a collection
its own ``Writer`` under the output folders. The files themselves are made by ``sinks``, atomically.
"""

from __future__ import annotations

import math
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import VidsegError
from vidseg.images import IMAGE_SUFFIXES
from vidseg.result import FrameResult
from vidseg.sinks import VIDEO_SUFFIXES, StatsSink, VideoSink, labels_json, write_image, write_json, write_label_png
from vidseg.x264 import x264_options

FRAMES_JSON = "frames.json"  # beside a video's label PNGs: their timestamps; written once the video is complete


def stats_record(frame: FrameResult) -> dict[str, Any]:
    """A ``--stats`` line's identification of the frame (the class shares are added by the sink)."""
    record: dict[str, Any] = {"frame": frame.index}
    if frame.input is not None and frame.name is None:
        record["input"] = frame.input
    if frame.name is not None:
        record["name"] = str(frame.name)
    if frame.time is not None:
        record["time"] = round(frame.time, 6)
    return record


class Writer:
    """Writes ``FrameResult`` objects: overlay video and/or images, label PNGs, stats lines.

    >>> with seg.stream(video_path, max_frames=3) as frames, Writer(video=out_dir / "overlay.mp4",
    ...                                                             labels=out_dir / "labels") as out:
    ...     for frame in frames:
    ...         out.write(frame)
    >>> sorted(p.name for p in (out_dir / "labels").iterdir())
    ['000000.png', '000001.png', '000002.png', 'frames.json', 'labels.json']

    ``video`` keeps each frame's timestamp and copies the input's audio (H.264 yuv420p in .mp4/.mov/.mkv);
    ``images`` is a folder of overlay images named like the inputs, ``image`` one overlay file;
    ``labels`` a folder of 8-bit palette PNGs (pixel = class id) plus ``labels.json`` (the class table)
    and, for a video, ``frames.json`` (each PNG's timestamp, written when the video is complete);
    ``stats`` a JSON lines file of class shares per frame. Leaving the ``with`` block (or ``close()``)
    finishes the video, also after an error: what was written stays playable (``keep_partial=False``
    removes an unfinished video instead, as collections do so that ``--resume`` can tell it apart). After
    ``stream.stop()``, close with ``close(complete=False)``: the input was not read to its end.
    """

    def __init__(self, *, video: str | Path | None = None, images: str | Path | None = None,
                 image: str | Path | None = None, labels: str | Path | None = None,
                 stats: str | Path | None = None, alpha: float = 0.5, crf: int = 20, preset: str = "overlay",
                 append_stats: bool = False, keep_partial: bool = True, class_table: bool = True):
        if not 0.0 <= alpha <= 1.0:
            raise VidsegError(f"alpha must be between 0 and 1, got {alpha}")
        x264_options(preset, crf)  # a bad preset is an error here, not at the first frame
        self.video_path = Path(video) if video is not None else None
        self.image_dir = Path(images) if images is not None else None
        self.image_file = Path(image) if image is not None else None
        self.labels_dir = Path(labels) if labels is not None else None
        self.stats_path = Path(stats) if stats is not None else None
        self.alpha, self.crf, self.preset, self.append_stats = alpha, crf, preset, append_stats
        self.keep_partial, self.class_table = keep_partial, class_table
        self._times = array("d")  # video frames' timestamps for frames.json, 8 bytes a frame (NaN: none)
        self._video: VideoSink | None = None
        self._stats: StatsSink | None = None
        self._source: Any = None
        self._started = False
        self._closed = False
        self.frames = 0

    @property
    def wants_overlay(self) -> bool:
        """Whether any output shows the overlay (the stream can then render it in its own thread)."""
        return any(p is not None for p in (self.video_path, self.image_dir, self.image_file))

    @property
    def audio_skipped(self) -> str | None:
        """Why the input's audio could not be copied into the video, if it could not."""
        return self._video.audio_skipped if self._video is not None else None

    def done(self, name: Path) -> bool:
        """``--resume``: an input image counts as done when every output it would get exists (they are
        written atomically, so existing means complete)."""
        wanted = [d / name.with_suffix(".png") for d in (self.labels_dir, self.image_dir) if d is not None]
        return bool(wanted) and all(p.exists() for p in wanted)

    def write(self, frame: FrameResult) -> None:
        if not self._started:
            self._start(frame)
        if self._video is not None:
            self._video.write(self._overlay_bgr(frame), frame.pts, frame.audio)
        if self.image_file is not None:
            write_image(self.image_file, self._overlay_bgr(frame))
        if self.image_dir is not None:
            if frame.name is None:
                raise VidsegError("overlay images need named frames (image inputs); use video= for videos")
            write_image(self.image_dir / frame.name.with_suffix(".png"), self._overlay_bgr(frame))
        if self.labels_dir is not None:
            write_label_png(self.labels_dir / self._label_name(frame), frame.labels, frame.palette)
        if frame.name is None:
            self._times.append(math.nan if frame.time is None else frame.time)
        if self._stats is not None:
            self._stats.write(stats_record(frame), frame.fractions())
        self.frames += 1

    def _start(self, frame: FrameResult) -> None:
        self._started, self._source = True, frame.source
        if self.labels_dir is not None and self.class_table:
            write_json(self.labels_dir / "labels.json", labels_json(list(frame.class_names), frame.palette))
        if self.stats_path is not None:
            self._stats = StatsSink(self.stats_path, append=self.append_stats)
        if self.video_path is not None:
            s = frame.source
            self._video = VideoSink(self.video_path, s.time_base, s.fps, self.crf, self.preset, s.audio)

    def _overlay_bgr(self, frame: FrameResult) -> np.ndarray:
        overlay = frame.overlay(alpha=self.alpha)
        return np.ascontiguousarray(overlay[:, :, ::-1]) if frame.rgb else overlay

    @staticmethod
    def _label_name(frame: FrameResult) -> Path:
        return frame.name.with_suffix(".png") if frame.name is not None else Path(f"{frame.index:06d}.png")

    def close(self, complete: bool = True) -> None:
        """Finish every file. ``complete``: the run was not cut short, so audio after the last frame is
        copied and ``frames.json`` written. A video with no frame is not left behind. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if complete and self._video is not None and self._video.frames:
                for packet in self._source.trailing_packets:
                    self._video.mux_audio(packet)
            if complete and self.labels_dir is not None and self._times:
                times = [None if math.isnan(t) else t for t in self._times]
                write_json(self.labels_dir / FRAMES_JSON, {"frames": len(times), "times": times})
        finally:
            if self._stats is not None:
                self._stats.close()
            if self._video is not None:
                if self._video.frames and (complete or self.keep_partial):
                    self._video.close()
                else:
                    self._video.abandon()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(complete=exc[0] is None)


class CollectionWriter:
    """The outputs of a collection: each video to ``<videos>/<relpath>`` (an .mp4 unless its container
    is one vidseg writes) and ``<labels>/<relpath without suffix>/``, each image as an image batch does,
    one ``labels.json`` at the top and one stats file with an ``input`` field.

    Frames arrive in input order, so a video's outputs are finished as soon as the next input's first
    frame arrives. An unfinished video (interrupt, error) leaves nothing under its final name.
    """

    def __init__(self, *, videos: Path | None = None, labels: Path | None = None, stats: Path | None = None,
                 alpha: float = 0.5, crf: int = 20, preset: str = "overlay", append_stats: bool = False):
        self.videos, self.labels, self.stats_path = videos, labels, stats
        self._options: dict[str, Any] = {"alpha": alpha, "crf": crf, "preset": preset}
        self.append_stats = append_stats
        self._images = Writer(images=videos, labels=labels, class_table=False, **self._options)
        self._video: Writer | None = None
        self._video_input: str | None = None
        self._stats: StatsSink | None = None
        self._started = False
        self._audio_skipped: dict[str, str] = {}

    @property
    def wants_overlay(self) -> bool:
        return self.videos is not None

    @property
    def audio_skipped(self) -> str | None:
        """Which videos' audio could not be copied, and why."""
        return "; ".join(f"{k}: {v}" for k, v in self._audio_skipped.items()) or None

    def video_outputs(self, name: Path) -> tuple[Path | None, Path | None]:
        """(overlay video, label folder) of the video input ``name``."""
        suffix = name.suffix if name.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
        return (self.videos / name.with_suffix(suffix) if self.videos is not None else None,
                self.labels / name.with_suffix("") if self.labels is not None else None)

    def done(self, name: Path) -> bool:
        """``--resume``: an image as ``Writer.done`` says; a video when its overlay exists (only finished
        videos get their final name) and its labels' ``frames.json`` does (written last)."""
        if name.suffix.lower() in IMAGE_SUFFIXES:
            return self._images.done(name)
        video, labels = self.video_outputs(name)
        return (video is None or video.exists()) and (labels is None or (labels / FRAMES_JSON).exists())

    def write(self, frame: FrameResult) -> None:
        if not self._started:
            self._start(frame)
        if frame.name is not None:
            self._finish_video(complete=True)
            self._images.write(frame)
        else:
            if frame.input != self._video_input:
                self._finish_video(complete=True)
                video, labels = self.video_outputs(Path(frame.input or "video"))
                self._video = Writer(video=video, labels=labels, keep_partial=False, class_table=False,
                                     **self._options)
                self._video_input = frame.input
            assert self._video is not None
            self._video.write(frame)
        if self._stats is not None:
            self._stats.write(stats_record(frame), frame.fractions())

    def _start(self, frame: FrameResult) -> None:
        self._started = True
        if self.labels is not None:
            write_json(self.labels / "labels.json", labels_json(list(frame.class_names), frame.palette))
        if self.stats_path is not None:
            self._stats = StatsSink(self.stats_path, append=self.append_stats)

    def _finish_video(self, complete: bool) -> None:
        if self._video is not None:
            video, self._video = self._video, None
            video.close(complete)
            if video.audio_skipped and self._video_input is not None:
                self._audio_skipped[self._video_input] = video.audio_skipped
        self._video_input = None

    def close(self, complete: bool = True) -> None:
        try:
            self._finish_video(complete)
        finally:
            self._images.close(complete)
            if self._stats is not None:
                self._stats.close()

    def __enter__(self) -> CollectionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(complete=exc[0] is None)
