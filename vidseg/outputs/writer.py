"""The file outputs of a run as one sink, for the CLI and for Python.

``Writer`` holds every file output of one input (overlay video or images, label PNGs, stats) because they
share decisions: a frame's file name, its timestamp, the audio to copy, and what ``--resume`` counts as
done. ``CollectionWriter`` gives each input of a collection its own ``Writer`` under the output folders.
"""

from __future__ import annotations

from pathlib import Path

from vidseg.files import labels_json, write_json
from vidseg.inputs.images import IMAGE_SUFFIXES
from vidseg.outputs.images import OverlayImagesSink
from vidseg.outputs.labels import FRAMES_JSON, LABELS_JSON, LabelsSink
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.sink import Sink, VideoFacts, close_all
from vidseg.outputs.stats import StatsSink
from vidseg.outputs.video import VIDEO_SUFFIXES, VideoFileSink
from vidseg.result import FrameResult


class Writer(Sink):
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
        options = OverlayOptions(alpha, crf, preset)
        self.options = options
        self.paths = {k: Path(v) if v is not None else None for k, v in
                      (("video", video), ("images", images), ("image", image), ("labels", labels), ("stats", stats))}
        self._video = VideoFileSink(Path(video), options, keep_partial) if video is not None else None
        self._overlays = [OverlayImagesSink(options, folder=Path(images)) if images is not None else None,
                          OverlayImagesSink(options, file=Path(image)) if image is not None else None]
        self._labels = LabelsSink(Path(labels), class_table) if labels is not None else None
        self._sinks: list[Sink] = [s for s in (self._video, *self._overlays, self._labels) if s is not None]
        if stats is not None:
            self._sinks.append(StatsSink(Path(stats), append_stats))
        self._opened = False
        self._closed = False
        self.frames = 0

    @property
    def overlay_alpha(self) -> float | None:  # type: ignore[override]
        return self.options.alpha if self._video is not None or any(self._overlays) else None

    @property
    def audio_skipped(self) -> str | None:  # type: ignore[override]
        return self._video.audio_skipped if self._video is not None else None

    def done(self, name: Path) -> bool:
        """``--resume``: an input image counts as done when every output it would get exists (they are
        written atomically, so existing means complete)."""
        wanted = [s for s in (self._labels, self._overlays[0]) if s is not None]
        return bool(wanted) and all(s.done(name) for s in wanted)

    def open(self, facts: VideoFacts) -> None:
        self._opened = True
        for sink in self._sinks:
            sink.open(facts)

    def write(self, frame: FrameResult) -> None:
        if not self._opened:
            self.open(VideoFacts.of(frame))
        for sink in self._sinks:
            sink.write(frame)
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        """Finish every file. ``complete``: the run was not cut short, so audio after the last frame is
        copied and ``frames.json`` written. A video with no frame is not left behind. Idempotent."""
        if self._closed:
            return
        self._closed = True
        close_all(self._sinks, complete)


class CollectionWriter(Sink):
    """The outputs of a collection: each video to ``<videos>/<relpath>`` (an .mp4 unless its container
    is one vidseg writes) and ``<labels>/<relpath without suffix>/``, each image as an image batch does,
    one ``labels.json`` at the top and one stats file with an ``input`` field.

    Frames arrive in input order, so a video's outputs are finished as soon as the next input's first
    frame arrives. An unfinished video (interrupt, error) leaves nothing under its final name.
    """

    def __init__(self, *, videos: Path | None = None, labels: Path | None = None, stats: Path | None = None,
                 alpha: float = 0.5, crf: int = 20, preset: str = "overlay", append_stats: bool = False):
        self.videos, self.labels, self.stats = videos, labels, stats
        self.options = OverlayOptions(alpha, crf, preset)
        self._images = Writer(images=videos, labels=labels, class_table=False, **vars(self.options))
        self._video: Writer | None = None
        self._video_input: str | None = None
        self._stats = StatsSink(stats, append_stats) if stats is not None else None
        self._started = False
        self._audio_skipped: dict[str, str] = {}

    @property
    def overlay_alpha(self) -> float | None:  # type: ignore[override]
        return self.options.alpha if self.videos is not None else None

    @property
    def audio_skipped(self) -> str | None:  # type: ignore[override]
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
            self._started = True
            if self.labels is not None:
                write_json(self.labels / LABELS_JSON, labels_json(list(frame.class_names), frame.palette))
        if frame.name is not None:
            self._finish_video(complete=True)
            self._images.write(frame)
        else:
            if frame.input != self._video_input:
                self._finish_video(complete=True)
                video, labels = self.video_outputs(Path(frame.input or "video"))
                self._video = Writer(video=video, labels=labels, keep_partial=False, class_table=False,
                                     **vars(self.options))
                self._video_input = frame.input
            assert self._video is not None
            self._video.write(frame)  # opened with this input's own facts
        if self._stats is not None:
            self._stats.write(frame)

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
            close_all([self._images] + ([self._stats] if self._stats is not None else []), complete)
