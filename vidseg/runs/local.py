"""The local pipeline: decode -> windows -> OpenVINO -> stitch -> render -> the caller, all overlapped.

    reader thread      decodes frames into a small queue (live sources drop the oldest when it is full)
    submit thread      rescales and cuts windows, submits them to the run's WindowQueue (blocks when busy)
    OpenVINO threads   callbacks copy each window's logits into its frame; a finished frame is posted
    post thread        takes frames strictly in input order, stitches labels, renders the overlay if asked
    caller's thread    iterates the ``Stream``: ``FrameResult`` objects in input order

The command line is one such caller (it writes what it gets); a Python program is another. Memory is
bounded by construction: every queue is small and a semaphore caps the frames between submit and post.
Threads, queues and shutdown are ``runs.stream.Stream``'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidseg.errors import ImageError
from vidseg.inputs.sources import Frame, Source
from vidseg.model.engine import Engine
from vidseg.model.protocol import FrameGeometry
from vidseg.model.stitch import Stitcher
from vidseg.render import Palette
from vidseg.result import FrameResult
from vidseg.runs.stream import END, POLL_S, Stream
from vidseg.summary import Summary


@dataclass
class _Job:
    seq: int
    frame: Frame
    geo: FrameGeometry | None = None
    logits: np.ndarray | None = None
    remaining: int = 0
    submitted: float = 0.0
    finished: float = 0.0
    changed: np.ndarray | None = None  # reuse: the grid cells recomputed per window (None: all of them)


class LocalStream(Stream):
    """Segmented frames of one input, in input order, while the next ones are decoded and inferred.

    Made by ``Segmenter.stream()``. Iterate it once, from one thread; the pipeline starts when the loop
    does. Leaving the loop early (``break``), calling ``close()`` or leaving its ``with`` block stops every
    thread it started and releases the input. ``summary`` holds counts,
    failures (unreadable images in a folder are skipped and listed there) and time per stage.

    >>> with seg.stream(video_path) as frames:
    ...     for frame in frames:
    ...         if frame.index == 1:
    ...             break
    >>> frames.summary.frames_out
    2
    """

    def __init__(self, engine: Engine, source: Source, palette: Palette, max_frames: int | None = None,
                 overlay_alpha: float | None = None):
        summary = Summary(source=source.kind, device=engine.device,
                          execution_devices=engine.execution_devices, nireq=engine.nireq,
                          cpu_streams=engine.cpu_streams)
        super().__init__(source, palette, engine.info.class_names, summary, max_frames, overlay_alpha)
        self._engine = engine
        self._stitcher = Stitcher()
        self._inflight = threading.Semaphore(engine.nireq + 2)
        self._done: dict[int, _Job] = {}
        self._cond = threading.Condition()
        self._total: int | None = None
        self._queue = engine.queue(self._on_window)

    def _stages(self) -> list[tuple[str, Callable[[], None]]]:
        return [("submit", self._submit), ("post", self._post)]

    def _drain(self) -> None:
        self._queue.wait_all()  # no callback may run once the run is over

    def _finish_summary(self) -> None:
        super()._finish_summary()
        self.summary.approximate_blocks = self._stitcher.approximate_blocks
        # The engine checks its CPU streams on the first window, so what it settled on is known only now.
        self.summary.cpu_streams, self.summary.stream_note = self._engine.cpu_streams, self._engine.stream_note

    def _submit(self) -> None:
        seq = 0
        try:
            while True:
                frame = self._get(self._decoded)
                if frame is END or self._abort.is_set():
                    break
                self._raise_if_failed()
                job = _Job(seq, frame)
                seq += 1
                if frame.image is None:  # unreadable or already done: keeps its place in the order
                    self._post_job(job)
                    continue
                while not self._inflight.acquire(timeout=POLL_S):
                    if self._abort.is_set():
                        return
                t0 = time.thread_time()
                try:
                    job.geo, windows = self._engine.windows(frame.image)
                except ImageError as e:  # a shape the protocol refuses
                    if frame.name is None:  # a video or an array: every frame has it, so the run stops
                        raise
                    frame.image, frame.error = None, str(e)  # one image of many: skipped like an unreadable one
                    self._inflight.release()
                    self._post_job(job)
                    continue
                self.summary.add_time("preprocess", time.thread_time() - t0)
                job.logits = np.empty((len(windows), self._engine.info.n_classes, self._engine.grid,
                                       self._engine.grid), dtype=np.float32)
                job.remaining = len(windows)
                job.submitted = time.perf_counter()
                self._dispatch(job, windows)
        finally:
            with self._cond:
                self._total = seq
                self._cond.notify_all()

    def _dispatch(self, job: _Job, windows: np.ndarray) -> None:
        """Start inference of a frame's windows; each result comes back to ``_on_window``."""
        for i, w in enumerate(windows):
            self._queue.submit(w, (job, i))

    def _raise_if_failed(self) -> None:
        self._queue.raise_if_failed()

    def _on_window(self, key: tuple[_Job, int], logits: np.ndarray) -> None:
        job, i = key
        assert job.logits is not None  # allocated by _submit before any window is queued
        job.logits[i] = logits
        with self._cond:
            job.remaining -= 1
            if job.remaining == 0:
                job.finished = time.perf_counter()
                self._done[job.seq] = job
                self._cond.notify_all()

    def _post_job(self, job: _Job) -> None:
        with self._cond:
            self._done[job.seq] = job
            self._cond.notify_all()

    def _post(self) -> None:
        try:
            seq = 0
            while True:
                with self._cond:
                    while seq not in self._done and not self._abort.is_set():
                        if self._total is not None and seq >= self._total:
                            return
                        self._cond.wait(POLL_S)
                        self._raise_if_failed()
                    if self._abort.is_set():
                        return
                    job = self._done.pop(seq)
                seq += 1
                if job.frame.image is None:
                    self._record_unsegmented(job.frame)
                    continue
                self._inflight.release()
                if not self._put(self._results, self._finish(job)):
                    return
        finally:
            self._put_end(self._results)

    def _stitch(self, job: _Job) -> np.ndarray:
        assert job.logits is not None and job.geo is not None
        return self._stitcher.labels(job.logits, job.geo)

    def _finish(self, job: _Job) -> FrameResult:
        """Stitch (and render) one frame."""
        frame, logits, geo = job.frame, job.logits, job.geo
        assert logits is not None and geo is not None  # frames with an image
        self.summary.add_time("inference", job.finished - job.submitted)
        t0 = time.thread_time()
        labels = self._stitch(job)
        job.logits = None
        self.summary.add_time("stitch", time.thread_time() - t0)
        return self._result(frame, labels)
