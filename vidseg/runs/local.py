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

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from vidseg.runs.multi import Scheduler


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
                 overlay_alpha: float | None = None, sample_fps: float | None = None,
                 scheduler: Scheduler | None = None):
        summary = Summary(source=source.kind, device=engine.device,
                          execution_devices=engine.execution_devices, nireq=engine.nireq,
                          cpu_streams=engine.cpu_streams)
        super().__init__(source, palette, engine.info.class_names, summary, max_frames, overlay_alpha, sample_fps)
        self._engine = engine
        self._stitcher = Stitcher()
        self._inflight = threading.Semaphore(engine.nireq + 2)
        self._done: dict[int, _Job] = {}
        self._cond = threading.Condition()
        self._total: int | None = None
        self._seq = 0  # frames admitted
        self.windows_admitted = 0
        # Shared mode: the scheduler of many streams admits this stream's frames and runs its windows on
        # the engine's one request queue; ``_outstanding`` counts this stream's windows still out there.
        self._scheduler = scheduler
        self._outstanding = 0
        self._queue = scheduler.queue if scheduler is not None else engine.queue(self._on_window)
        if scheduler is not None:
            self._decoded = queue.Queue(maxsize=1)  # only the newest frame waits for its turn

    def _stages(self) -> list[tuple[str, Callable[[], None]]]:
        if self._scheduler is not None:
            return [("post", self._post)]
        return [("submit", self._submit), ("post", self._post)]

    def _start(self) -> None:
        super()._start()
        if self._scheduler is not None:
            self._scheduler.attach(self)

    def _frame_waiting(self) -> None:
        if self._scheduler is not None:
            self._scheduler.wake()

    def _drain(self) -> None:
        """No callback may run once the run is over."""
        if self._scheduler is None:
            self._queue.wait_all()
            return
        self._scheduler.detach(self)
        with self._cond:
            while self._outstanding:
                self._cond.wait(POLL_S)

    def _finish_summary(self) -> None:
        super()._finish_summary()
        self.summary.approximate_blocks = self._stitcher.approximate_blocks
        # The engine checks its CPU streams on the first window, so what it settled on is known only now.
        self.summary.cpu_streams, self.summary.stream_note = self._engine.cpu_streams, self._engine.stream_note

    def _submit(self) -> None:
        try:
            while True:
                frame = self._get(self._decoded)
                if frame is END or self._abort.is_set():
                    break
                self._raise_if_failed()
                if frame.materialize().image is not None:
                    while not self._inflight.acquire(timeout=POLL_S):
                        if self._abort.is_set():
                            return
                self._admit(frame)
        finally:
            self._end_admission()

    def admit_waiting(self) -> int | None:
        """Shared mode, called by the scheduler: admit the frame waiting here, if there is one and room in
        flight. Returns the windows it will run (0 for the end of input, which is admitted too), or None
        when there is nothing to admit now."""
        if self.closed or self._total is not None or self._decoded.empty():
            return None
        if not self._inflight.acquire(blocking=False):
            return None
        try:
            frame = self._decoded.get_nowait()
        except queue.Empty:
            self._inflight.release()
            return None
        if frame is END or self._abort.is_set():
            self._inflight.release()
            self._end_admission()
            return 0
        if frame.materialize().image is None:
            self._inflight.release()
        try:
            return self._admit(frame)
        except BaseException as e:  # noqa: BLE001 - this stream's failure, raised in its caller's loop
            self._fail(e)
            self._end_admission()
            return 0

    def _admit(self, frame: Frame) -> int:
        """Cut a frame into windows and start them (an in-flight slot is already held for a frame with an
        image). Returns the number of windows."""
        job = _Job(self._seq, frame)
        self._seq += 1
        if frame.image is None:  # unreadable or already done: keeps its place in the order
            self._post_job(job)
            return 0
        t0 = time.thread_time()
        try:
            job.geo, windows = self._engine.windows(frame.image)
        except ImageError as e:  # a shape the protocol refuses
            self._inflight.release()
            if frame.name is None:  # a video or an array: every frame has it, so the run stops
                raise
            frame.image, frame.error = None, str(e)  # one image of many: skipped like an unreadable one
            self._post_job(job)
            return 0
        self.summary.add_time("preprocess", time.thread_time() - t0)
        job.logits = np.empty((len(windows), self._engine.info.n_classes, self._engine.grid,
                               self._engine.grid), dtype=np.float32)
        job.remaining = len(windows)
        job.submitted = time.perf_counter()
        self.windows_admitted += len(windows)
        self._dispatch(job, windows)
        return len(windows)

    def _end_admission(self) -> None:
        with self._cond:
            if self._total is None:
                self._total = self._seq
            self._cond.notify_all()

    def _dispatch(self, job: _Job, windows: np.ndarray) -> None:
        """Start inference of a frame's windows; each result comes back to ``_on_window``."""
        for i, w in enumerate(windows):
            self._send(w, (job, i))

    def _send(self, window: np.ndarray, key: tuple[_Job, int]) -> None:
        if self._scheduler is None:
            self._queue.submit(window, key)
            return
        with self._cond:
            self._outstanding += 1
        self._scheduler.submit(self, window, key)

    def on_shared_window(self, key: tuple[_Job, int], logits: np.ndarray) -> None:
        """Shared mode: a window's logits, routed back by the scheduler."""
        try:
            self._on_window(key, logits)
        finally:
            with self._cond:
                self._outstanding -= 1
                self._cond.notify_all()

    def _raise_if_failed(self) -> None:
        if self._scheduler is not None:
            self._scheduler.raise_if_failed()
        else:
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
                if self._scheduler is not None:
                    self._scheduler.wake()
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
