"""vidseg from Python: a compiled model you call on images, batches and streams.

The command line is a user of this module (``cli.process`` builds a ``Segmenter``, iterates a ``Stream`` and
hands each frame to a ``Writer``), so results here are the ones ``vidseg process`` writes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.engine import Engine
from vidseg.errors import VidsegError
from vidseg.images import image_array
from vidseg.modeldir import DEFAULT_MODEL_DIR, ModelInfo
from vidseg.pipeline import Stream
from vidseg.render import Palette
from vidseg.result import Result
from vidseg.reuse import ReusePolicy
from vidseg.sources import ArraySource, Source, open_source

PERFORMANCE_HINTS = ("THROUGHPUT", "LATENCY")
PRECISIONS = ("f32", "bf16", "f16")


class Segmenter:
    """A Segmenter model compiled for one OpenVINO device, ready for images, batches and streams.

    >>> seg = Segmenter(model_dir, device="CPU")
    >>> result = seg(image)                       # one BGR uint8 image, as OpenCV reads it
    >>> result.labels.shape == image.shape[:2]
    True
    >>> len(seg.class_names)
    150
    >>> seg.close()

    ``model`` is a directory written by ``vidseg convert``. ``device`` is any OpenVINO device or virtual
    device (CPU, GPU, NPU, AUTO...). ``performance`` is OpenVINO's hint: THROUGHPUT for files and batches,
    LATENCY for a live loop that wants each frame back soonest. ``nireq`` infer requests per stream (0:
    OpenVINO's optimum, at least 2); ``stride`` overlapping windows (default: the model's);
    ``precision`` the CPU arithmetic for non-INT8 layers (f32, upstream's; bf16/f16 faster, labels drift);
    ``cpu_streams`` CPU inference streams (0: OpenVINO's choice, each stream checked; see the README:
    Devices); ``cpu_threads`` the CPU threads inference may use (0: every core).

    Thread safety: one ``Segmenter`` may be shared by threads. Calls run concurrently, each thread on
    its own infer request, and each ``stream()`` or ``segment_batch()`` has its own request pool. A single
    ``Stream`` is iterated by one thread.
    """

    def __init__(self, model: str | Path = DEFAULT_MODEL_DIR, device: str = "AUTO", *,
                 performance: str = "THROUGHPUT", nireq: int = 0, stride: int | None = None,
                 precision: str = "f32", cpu_streams: int = 0, cpu_threads: int = 0):
        if performance not in PERFORMANCE_HINTS:
            raise VidsegError(f"performance must be one of {', '.join(PERFORMANCE_HINTS)}, got {performance!r}")
        if precision not in PRECISIONS:
            raise VidsegError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if stride is not None and stride <= 0:
            raise VidsegError(f"stride must be a positive number of pixels, got {stride}")
        if nireq < 0 or cpu_streams < 0 or cpu_threads < 0:
            raise VidsegError("nireq, cpu_streams and cpu_threads must be 0 (automatic) or more")
        engine = Engine(Path(model), device, performance, nireq, stride, precision, cpu_streams, cpu_threads)
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
               skip: Callable[[Path], bool] | None = None, reuse: ReusePolicy | None = None) -> Stream:
        """Segmented frames of any input the command line takes, in order, pipelined.

        ``source``: a video file, an image, a folder (``recursive`` for subfolders), a glob, a camera index,
        a stream URL, or an iterable of arrays (``rgb`` gives their channel order). ``start``/``end`` cut a
        video (seconds); ``max_frames`` stops early. ``overlay_alpha`` renders overlays in the pipeline's
        own thread (``frame.overlay()`` is then free). ``skip(name)`` true for an image in a folder means
        its outputs exist: it is not read (``--resume``). ``reuse`` turns on reuse between frames (an
        approximation, see ``vidseg.reuse``; uses the token-reuse IR ``vidseg convert`` writes).
        Unreadable images in a folder are skipped and listed in ``stream.summary.failures``; a stage's
        error is raised in the loop.

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
        if reuse is not None:
            from vidseg.reuse.stream import ReuseStream

            return ReuseStream(engine, src, self.palette, reuse, max_frames, overlay_alpha)
        return Stream(engine, src, self.palette, max_frames, overlay_alpha)

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
