"""The streaming pipeline: decode -> windows -> OpenVINO -> stitch -> render -> the caller, all overlapped.

    reader thread      decodes frames into a small queue (live sources drop the oldest when it is full)
    submit thread      rescales and cuts windows, submits them to the run's WindowQueue (blocks when busy)
    OpenVINO threads   callbacks copy each window's logits into its frame; a finished frame is posted
    post thread        takes frames strictly in input order, stitches labels, renders the overlay if asked
    caller's thread    iterates the ``Stream``: ``FrameResult`` objects in input order

The command line is one such caller (it writes what it gets); a Python program is another. Memory is
bounded by construction: every queue is small and a semaphore caps the frames between submit and post.
Two events steer shutdown. ``halt`` (end of input, ``stop()``, Ctrl-C in the CLI) stops intake but lets the
frames already in flight finish and be handed over; ``abort`` (a stage failed, ``stop(now=True)``, the
caller closed or abandoned the stream) stops everything. Every blocking call has a timeout so a stage
notices either event, sentinels are sent in ``finally`` blocks, and the first error is re-raised in the
caller's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from vidseg.engine import Engine
from vidseg.errors import VidsegError
from vidseg.protocol import FrameGeometry
from vidseg.render import Palette
from vidseg.result import FrameResult
from vidseg.sources import Frame, Source
from vidseg.stitch import Stitcher
from vidseg.summary import Summary

POLL_S = 0.1
END = object()  # queue sentinel


@dataclass
class _Job:
    seq: int
    frame: Frame
    geo: FrameGeometry | None = None
    logits: np.ndarray | None = None
    remaining: int = 0
    submitted: float = 0.0
    finished: float = 0.0


class Stream:
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
        self._engine, self._source, self._palette = engine, source, palette
        self._class_names = tuple(engine.info.class_names)
        self.max_frames, self.overlay_alpha = max_frames, overlay_alpha
        self._stitcher = Stitcher()
        self.summary = Summary(source=source.kind, device=engine.device,
                               execution_devices=engine.execution_devices, nireq=engine.nireq)
        self._halt = threading.Event()
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._decoded: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._inflight = threading.Semaphore(engine.nireq + 2)
        self._done: dict[int, _Job] = {}
        self._cond = threading.Condition()
        self._total: int | None = None
        self._queue = engine.queue(self._on_window)
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.closed = False

    # --- what the input is ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``video``, ``images``, ``collection`` (videos and images), ``arrays``, ``stream`` or ``camera``."""
        return self._source.kind

    @property
    def live(self) -> bool:
        return self._source.live

    @property
    def fps(self) -> Fraction | None:
        """The input's frame rate as an exact fraction (30000/1001, not 29), if it has one."""
        return self._source.fps

    @property
    def input_count(self) -> int | None:
        """Files in a collection (None for a single input)."""
        return self._source.input_count

    @property
    def frame_count(self) -> int | None:
        """Frames expected (from the container, the file list or ``max_frames``); None when unknown."""
        n = self._source.frame_count
        if self.max_frames is not None:
            n = min(n, self.max_frames) if n is not None else self.max_frames
        return n

    # --- the caller's side ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        """Starts the pipeline. A generator, so that a loop left with ``break`` closes the run at once:
        the threads refer to the stream, never to this generator, which is dropped with the loop."""
        if self._threads or self.closed:
            raise VidsegError("a stream can be iterated only once; make another with Segmenter.stream()")
        self._start()
        completed = False
        try:
            while (item := self._next_result()) is not END:
                self.summary.frames_out += 1
                self.summary.count(item.input, "frames_out")
                yield item
            completed = True
        finally:
            self.close(raise_error=completed)

    def _next_result(self) -> Any:
        while True:
            try:
                return self._results.get(timeout=POLL_S)
            except queue.Empty:
                if self._abort.is_set():
                    return END

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(raise_error=exc[0] is None)

    @property
    def stopping(self) -> bool:
        """``stop()`` was asked for (a second Ctrl-C in the CLI then stops at once)."""
        return self.summary.interrupted

    def stop(self, now: bool = False) -> None:
        """Stop reading input. Frames already in flight are still handed over unless ``now``. Safe to call
        from a signal handler; ``summary.interrupted`` records it."""
        self.summary.interrupted = True
        self._halt.set()
        if now:
            self._abort.set()

    def close(self, raise_error: bool = True) -> None:
        """End the run: stop every stage, wait for OpenVINO, release the input. Idempotent. Re-raises the
        first error a stage met unless ``raise_error`` is false."""
        if not self.closed:
            self.closed = True
            self._abort.set()  # a no-op when the run ended by itself; otherwise nobody will take more results
            self._halt.set()
            try:
                for t in self._threads:
                    if t.name != "post":
                        t.join()
                self._queue.wait_all()  # no callback may run once the run is over
            except BaseException as e:  # noqa: BLE001 - the first error is the one reported
                self._fail(e)
            finally:
                for t in self._threads:
                    t.join()
                self._source.close()
                self._finish_summary()
        if raise_error and self._error is not None:
            error, self._error = self._error, None
            raise error

    def _finish_summary(self) -> None:
        s = self.summary
        s.wall_s = time.perf_counter() - self._started if self._started else 0.0
        s.decode_errors = self._source.decode_errors
        for name, n in self._source.decode_errors_by_input.items():
            s.count(name, "decode_errors", n)
        s.gaps = self._source.gaps
        s.approximate_blocks = self._stitcher.approximate_blocks

    # --- shutdown plumbing -------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = time.perf_counter()
        self._threads = [threading.Thread(target=self._guard(fn), name=name, daemon=True)
                         for name, fn in (("read", self._read), ("submit", self._submit), ("post", self._post))]
        for t in self._threads:
            t.start()

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self._abort.set()
        self._halt.set()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._abort.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return END

    def _put_end(self, q: queue.Queue[Any]) -> None:
        """The sentinel must get through even when the consumer is gone: make room if needed."""
        while True:
            try:
                q.put_nowait(END)
                return
            except queue.Full:
                if self._abort.is_set():
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                else:
                    time.sleep(POLL_S)

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._fail(e)
        return run

    # --- stages ------------------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            frames = self._source.frames()
            while not self._halt.is_set() and (self.max_frames is None or self.summary.frames_in < self.max_frames):
                t0 = time.thread_time()
                frame = next(frames, None)
                if frame is None:
                    break
                self.summary.add_time("decode", time.thread_time() - t0)
                self.summary.frames_in += 1
                self.summary.count(frame.input, "frames_in")
                if self._source.live:
                    self._offer_latest(frame)
                elif not self._put(self._decoded, frame):
                    break
        finally:
            self._put_end(self._decoded)

    def _offer_latest(self, frame: Frame) -> None:
        """Live input must not queue up behind a slow model: drop the oldest waiting frame instead."""
        while True:
            try:
                self._decoded.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._decoded.get_nowait()
                    self.summary.dropped += 1
                except queue.Empty:
                    pass

    def _submit(self) -> None:
        seq = 0
        try:
            while True:
                frame = self._get(self._decoded)
                if frame is END or self._abort.is_set():
                    break
                self._queue.raise_if_failed()
                job = _Job(seq, frame)
                seq += 1
                if frame.image is None:  # unreadable or already done: keeps its place in the order
                    self._post_job(job)
                    continue
                while not self._inflight.acquire(timeout=POLL_S):
                    if self._abort.is_set():
                        return
                t0 = time.thread_time()
                job.geo, windows = self._engine.windows(frame.image)
                self.summary.add_time("preprocess", time.thread_time() - t0)
                job.logits = np.empty((len(windows), self._engine.info.n_classes, self._engine.grid,
                                       self._engine.grid), dtype=np.float32)
                job.remaining = len(windows)
                job.submitted = time.perf_counter()
                for i, w in enumerate(windows):
                    self._queue.submit(w, (job, i))
        finally:
            with self._cond:
                self._total = seq
                self._cond.notify_all()

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
                        self._queue.raise_if_failed()
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

    def _record_unsegmented(self, frame: Frame) -> None:
        if frame.resumed:
            self.summary.resumed += 1
            self.summary.count(frame.input, "resumed")
        else:
            self.summary.fail(str(frame.name or frame.index), frame.error or "unreadable", frame.input)

    def _finish(self, job: _Job) -> FrameResult:
        """Stitch (and render) one frame; the result in the caller's channel order."""
        frame, logits, geo = job.frame, job.logits, job.geo
        source = frame.source or self._source
        assert frame.image is not None and logits is not None and geo is not None  # frames with an image
        self.summary.add_time("inference", job.finished - job.submitted)
        t0 = time.thread_time()
        labels = self._stitcher.labels(logits, geo)
        job.logits = None
        t1 = time.thread_time()
        rendered = None
        if self.overlay_alpha is not None:
            overlay = self._palette.overlay(frame.image, labels, self.overlay_alpha)
            rendered = (self.overlay_alpha, overlay[:, :, ::-1] if source.rgb else overlay)
        self.summary.add_time("stitch", t1 - t0)
        self.summary.add_time("render", time.thread_time() - t1)
        return FrameResult(
            labels=labels, palette=self._palette, class_names=self._class_names, rgb=source.rgb,
            index=frame.index, image=frame.image[:, :, ::-1] if source.rgb else frame.image,
            time=float(frame.pts * source.time_base) if frame.pts is not None else None, name=frame.name,
            pts=frame.pts, rendered=rendered, source=source, audio=frame.packets, input=frame.input)
