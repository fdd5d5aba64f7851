"""A stream: the segmented frames of one source, handed to the caller in input order. This module holds what
every stream shares, whoever computes the labels: threads, bounded queues, shutdown.

Two kinds build on it: ``local.LocalStream`` infers on this machine, ``reuse.stream.ReuseStream`` does so
reusing work between frames (a cluster's nodes run them too, one unit each). Both read their input
in a ``read`` thread into a small queue and deliver finished frames through another; a subclass supplies the
stages in between (``_stages``) and whatever must be waited for at the end (``_drain``). Two events steer
shutdown. ``halt`` (end of input, ``stop()``, Ctrl-C in the CLI) stops intake but lets the frames already in
flight finish and be handed over; ``abort`` (a stage failed, ``stop(now=True)``, the caller closed or
abandoned the stream) stops everything. Every blocking call has a timeout so a stage notices either event,
sentinels are sent in ``finally`` blocks, and the first error is re-raised in the caller's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from vidseg.errors import VidsegError
from vidseg.inputs.sources import Frame, Source
from vidseg.queues import offer_newest
from vidseg.render import Palette
from vidseg.result import FrameResult
from vidseg.runs.intake import KeyframeIntake
from vidseg.summary import Summary

POLL_S = 0.1
END = object()  # queue sentinel


class Stream:
    """Segmented frames of one input, in input order, while the next ones are decoded and labelled.

    Iterate it once, from one thread; the stages start when the loop does. Leaving the loop early
    (``break``), calling ``close()`` or leaving its ``with`` block stops every thread it started and
    releases the input. ``summary`` holds counts, failures (unreadable images in a folder are skipped and
    listed there) and time per stage.
    """

    def __init__(self, source: Source, palette: Palette, class_names: Sequence[str], summary: Summary,
                 max_frames: int | None = None, overlay_alpha: float | None = None,
                 sample_fps: float | None = None):
        if sample_fps is not None and sample_fps <= 0:
            raise VidsegError(f"fps must be positive, got {sample_fps:g}")
        self._source, self._palette, self._class_names = source, palette, tuple(class_names)
        self.max_frames, self.overlay_alpha, self.sample_fps = max_frames, overlay_alpha, sample_fps
        self.summary = summary
        self._halt = threading.Event()
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._decoded: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=3)
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
        """Starts the stages. A generator, so that a loop left with ``break`` closes the run at once:
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
        """End the run: stop every stage, wait for the work in flight, release the input. Idempotent.
        Re-raises the first error a stage met unless ``raise_error`` is false."""
        if not self.closed:
            self.closed = True
            self._abort.set()  # a no-op when the run ended by itself; otherwise nobody will take more results
            self._halt.set()
            try:
                for t in self._threads:
                    if t.name != "post":
                        t.join()
                self._drain()
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

    # --- what a kind of stream supplies ----------------------------------------------------------------
    def _stages(self) -> list[tuple[str, Callable[[], None]]]:
        """The threads between ``read`` and the caller, by name; the one named ``post`` is joined last."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Wait for work still running outside the stage threads (nothing may call back after close)."""

    def _finish_summary(self) -> None:
        s = self.summary
        s.wall_s = time.perf_counter() - self._started if self._started else 0.0
        s.decode_errors = self._source.decode_errors
        for name, n in self._source.decode_errors_by_input.items():
            s.count(name, "decode_errors", n)
        s.gaps = self._source.gaps

    # --- shutdown plumbing -------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = time.perf_counter()
        self._threads = [threading.Thread(target=self._guard(fn), name=name, daemon=True)
                         for name, fn in [("read", self._read), *self._stages()]]
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

    # --- the stages every stream has -----------------------------------------------------------------
    def _read(self) -> None:
        try:
            frames = self._source.frames()
            intake = KeyframeIntake(self._source, self.summary) if KeyframeIntake.fits(self._source) else None
            next_at: float | None = None  # sample_fps: the stream time the next frame is due
            while not self._halt.is_set() and (self.max_frames is None or self.summary.frames_in < self.max_frames):
                t0 = time.thread_time()
                frame = next(frames, None)
                if frame is None:
                    break
                frame.received = time.perf_counter()
                self.summary.add_time("decode", time.thread_time() - t0)
                self.summary.frames_in += 1
                self.summary.count(frame.input, "frames_in")
                if self.sample_fps is not None and frame.pts is not None:
                    t = float(frame.pts * (frame.source or self._source).time_base)
                    if next_at is not None and t < next_at:
                        self.summary.sampled_out += 1
                        continue
                    period = 1.0 / self.sample_fps
                    next_at = t + period if next_at is None or t > next_at + period else next_at + period
                if self._source.live:
                    self._offer_latest(frame)
                    if intake is not None:
                        intake.update()
                elif not self._put(self._decoded, frame):
                    break
                self._frame_waiting()
        finally:
            self._put_end(self._decoded)
            self._frame_waiting()

    def _offer_latest(self, frame: Frame) -> None:
        """Live input must not queue up behind a slow model: drop the oldest waiting frame instead."""
        self.summary.dropped += offer_newest(self._decoded, frame)

    def _frame_waiting(self) -> None:
        """A frame (or the end of input) is waiting to be taken: for whoever takes it to hear."""

    def _record_unsegmented(self, frame: Frame) -> None:
        if frame.resumed:
            self.summary.resumed += 1
            self.summary.count(frame.input, "resumed")
        else:
            self.summary.fail(str(frame.name or frame.index), frame.error or "unreadable", frame.input)

    def _result(self, frame: Frame, labels: np.ndarray) -> FrameResult:
        """A labelled frame as the caller gets it: rendered if asked, in the caller's channel order."""
        source = frame.source or self._source
        assert frame.image is not None  # only frames with an image are labelled
        t0 = time.thread_time()
        rendered = None
        if self.overlay_alpha is not None:
            overlay = self._palette.overlay(frame.image, labels, self.overlay_alpha)
            rendered = (self.overlay_alpha, overlay[:, :, ::-1] if source.rgb else overlay)
        self.summary.add_time("render", time.thread_time() - t0)
        return FrameResult(
            labels=labels, palette=self._palette, class_names=self._class_names, rgb=source.rgb,
            index=frame.index, image=frame.image[:, :, ::-1] if source.rgb else frame.image,
            time=float(frame.pts * source.time_base) if frame.pts is not None else None, name=frame.name,
            pts=frame.pts, rendered=rendered, source=source, audio=frame.packets, input=frame.input,
            received=frame.received)
