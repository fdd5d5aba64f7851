"""vidseg from Python: a compiled model you call on images, batches and streams.

The command line is a user of this module (``cli.process`` builds a ``Segmenter``, iterates a ``Stream`` and
hands each frame to a ``Writer``), so results here are the ones ``vidseg process`` writes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import VidsegError
from vidseg.home import default_model_dir
from vidseg.inputs.images import image_array
from vidseg.inputs.sources import ArraySource, Source, open_source
from vidseg.model.engine import Engine
from vidseg.model.modeldir import ModelInfo
from vidseg.model.options import EngineOptions
from vidseg.outputs.sink import Sink
from vidseg.render import Palette
from vidseg.result import FrameResult, Result
from vidseg.runs import loop
from vidseg.runs.local import LocalStream
from vidseg.runs.multi import Scheduler, merged
from vidseg.runs.reuse import ReusePolicy
from vidseg.runs.stream import Stream
from vidseg.summary import Summary


class Segmenter:
    """A Segmenter model compiled for one OpenVINO device, ready for images, batches and streams.

    >>> seg = Segmenter(model_dir, device="CPU")
    >>> result = seg(image)                       # one BGR uint8 image, as OpenCV reads it
    >>> result.labels.shape == image.shape[:2]
    True
    >>> len(seg.class_names)
    150
    >>> seg.close()

    ``model`` is a directory written by ``vidseg convert`` (default: ``vidseg.home.default_model_dir()``);
    the other arguments are those of ``vidseg.model.options.EngineOptions``.

    Thread safety: one ``Segmenter`` may be shared by threads. Calls run concurrently, each thread on
    its own infer request, and each ``stream()`` or ``segment_batch()`` has its own request pool. A single
    ``Stream`` is iterated by one thread.
    """

    def __init__(self, model: str | Path | None = None, device: str = "AUTO", *,
                 performance: str = "THROUGHPUT", nireq: int = 0, stride: int | None = None,
                 precision: str = "f32", cpu_streams: int = 0, cpu_threads: int = 0):
        options = EngineOptions(device, performance, nireq, stride, precision, cpu_streams, cpu_threads)
        engine = Engine(Path(model) if model is not None else default_model_dir(), options.device,
                        options.performance, options.nireq, options.stride, options.precision,
                        options.cpu_streams, options.cpu_threads)
        if engine.stride > engine.info.window_size:
            raise VidsegError(f"stride {engine.stride} is larger than the window ({engine.info.window_size})")
        self._engine: Engine | None = engine
        self.model_info: ModelInfo = engine.info
        self.palette = Palette(engine.info.class_colors)

    # --- what was compiled ---------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model_info.class_names)

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        """Class colours as (R, G, B), in class-id order."""
        return list(self.model_info.class_colors)

    @property
    def device(self) -> str:
        return self._live().device

    @property
    def execution_devices(self) -> list[str]:
        """The devices OpenVINO actually runs on (what AUTO chose)."""
        return self._live().execution_devices

    @property
    def nireq(self) -> int:
        return self._live().nireq

    @property
    def cpu_streams(self) -> int:
        """CPU streams the model runs on (0: not on the CPU alone)."""
        return self._live().cpu_streams

    @property
    def stream_note(self) -> str | None:
        """Why the model runs on one CPU stream where OpenVINO chose more, if it does: known once it has
        run its first window, on which the streams are checked."""
        return self._live().stream_note

    def _live(self) -> Engine:
        if self._engine is None:
            raise VidsegError("this Segmenter is closed")
        return self._engine

    # --- segmenting --------------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, *, rgb: bool = False) -> Result:
        """Labels for one image: (H, W) BGR (or RGB with ``rgb=True``) uint8, gray (H, W) or with alpha
        (H, W, 4, composited over black as the CLI does for files)."""
        engine = self._live()
        labels = engine.segment(image_array(image, rgb))
        return Result(labels=labels, palette=self.palette, class_names=self.class_names, rgb=rgb)

    def segment_batch(self, images: Iterable[np.ndarray], *, rgb: bool = False) -> list[Result]:
        """Labels for many images, in order, with every infer request busy (faster than calling one by
        one when the device runs several windows at once).

        >>> results = seg.segment_batch([image, image[:200]])
        >>> [r.labels.shape for r in results] == [image.shape[:2], image[:200].shape[:2]]
        True
        """
        with self.stream(images, rgb=rgb) as frames:
            return [Result(labels=f.labels, palette=f.palette, class_names=f.class_names, rgb=rgb)
                    for f in frames]

    def stream(self, source: str | Path | int | Iterable[np.ndarray] | Source, *, rgb: bool = False,
               recursive: bool = False, start: float | None = None, end: float | None = None,
               max_frames: int | None = None, overlay_alpha: float | None = None, reconnect_attempts: int = 5,
               skip: Callable[[Path], bool] | None = None, reuse: ReusePolicy | None = None,
               fps: float | None = None, scheduler: Scheduler | None = None) -> Stream:
        """Segmented frames of any input the command line takes, in order, pipelined.

        ``source``: a video file, an image, a folder (``recursive`` for subfolders), a glob, a camera index,
        a stream URL, or an iterable of arrays (``rgb`` gives their channel order). ``start``/``end`` cut a
        video (seconds); ``max_frames`` stops early. ``overlay_alpha`` renders overlays in the pipeline's
        own thread (``frame.overlay()`` is then free). ``skip(name)`` true for an image in a folder means
        its outputs exist: it is not read (``--resume``). ``reuse`` turns on reuse between frames (an
        approximation, see ``vidseg.runs.reuse``; uses the token-reuse IR ``vidseg convert`` writes).
        ``fps`` samples the input: frames closer in time than 1/fps to the last one kept are left out
        (counted in ``summary.sampled_out``). ``scheduler`` (from ``scheduler()``) shares the model with
        other streams fairly, as ``streams()`` and ``vidseg serve`` do. Unreadable images in a folder are
        skipped and listed in ``stream.summary.failures``; a stage's error is raised in the loop.

        >>> for frame in seg.stream(video_path, max_frames=3):
        ...     share = frame.fractions()
        >>> frame.index
        2
        """
        engine = self._live()
        if max_frames is not None and max_frames < 1:
            raise VidsegError(f"max_frames must be at least 1, got {max_frames}")
        if overlay_alpha is not None and not 0.0 <= overlay_alpha <= 1.0:
            raise VidsegError(f"overlay_alpha must be between 0 and 1, got {overlay_alpha}")
        src = _open(source, rgb, recursive, start, end, reconnect_attempts)
        if skip is not None:
            src.skip = skip
        shared = {"sample_fps": fps, "scheduler": scheduler}
        if reuse is not None:
            from vidseg.runs.reuse.stream import ReuseStream

            return ReuseStream(engine, src, self.palette, reuse, max_frames, overlay_alpha, **shared)
        return LocalStream(engine, src, self.palette, max_frames, overlay_alpha, **shared)

    def scheduler(self) -> Scheduler:
        """A scheduler that shares this model's requests fairly between the streams given it (``stream(...,
        scheduler=...)``); ``close()`` it when they are done."""
        return Scheduler(self._live())

    def streams(self, sources: Mapping[str, str | int | Source], *, fps: float | None = None,
                reuse: ReusePolicy | None = None, overlay_alpha: float | None = None
                ) -> Iterator[tuple[str, FrameResult]]:
        """Many live sources at once on this one model: ``(name, FrameResult)`` as frames are ready, each
        source's frames in their own order. Each source keeps only its newest waiting frame (older ones are
        dropped, counted in its summary) and the model is shared fairly between them. Sources are opened
        first, so a wrong address is an error before anything runs; leaving the loop stops them all.

        >>> for name, frame in seg.streams({"a": video_path, "b": video_path}, fps=5):
        ...     if frame.index == 2:
        ...         break
        >>> name in ("a", "b")
        True
        """
        scheduler = self.scheduler()
        opened: dict[str, Stream] = {}
        try:
            for name, source in sources.items():
                opened[name] = self.stream(source, fps=fps, reuse=reuse, overlay_alpha=overlay_alpha,
                                           scheduler=scheduler)
            yield from merged(opened)
        finally:
            for stream in opened.values():
                stream.close(raise_error=False)
            scheduler.close()

    def process(self, source: str | Path | int | Iterable[np.ndarray] | Source, *sinks: Sink,
                progress: bool = False, **stream_options: Any) -> Summary:
        """Every frame of ``source`` to every sink (``Writer``, ``NetworkSink``, ``Preview``...) as ``vidseg
        process`` does it: sinks opened with the stream's facts and closed as complete or interrupted.
        ``stream_options`` are ``stream()``'s. Returns the run's summary.

        >>> summary = seg.process(video_path, Writer(labels=out_dir / "run"), max_frames=2)
        >>> summary.frames_out, sorted(p.name for p in (out_dir / "run").iterdir())[-2:]
        (2, ['frames.json', 'labels.json'])
        """
        stream_options.setdefault("overlay_alpha", loop.overlay_alpha(sinks))
        return loop.run(self.stream(source, **stream_options), sinks, progress=progress)

    # --- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the compiled model. Streams still running keep it until they end."""
        self._engine = None

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"on {self.device}" if self._engine is not None else "closed"
        return f"Segmenter({self.model_info.name}, {self.model_info.precision}, {state})"


def _open(source: Any, rgb: bool, recursive: bool, start: float | None, end: float | None,
          reconnect_attempts: int) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, np.ndarray):
        raise VidsegError("stream() takes an iterable of images; call the Segmenter on a single image")
    if isinstance(source, int):
        source = str(source)
    if isinstance(source, (str, Path)):
        return open_source(str(source), recursive, start, end, reconnect_attempts)
    if isinstance(source, Iterable):
        return ArraySource(source, rgb)
    raise VidsegError(f"cannot stream from a {type(source).__name__}: give a path, URL, camera index or "
                      "an iterable of images")
