"""The streaming pipeline: decode -> windows -> OpenVINO -> stitch -> render -> write, all overlapped.

    reader thread      decodes frames into a small queue (live sources drop the oldest when it is full)
    main thread        rescales and cuts windows, submits them to the AsyncInferQueue (blocks when busy)
    OpenVINO threads   callbacks copy each window's logits into its frame; a finished frame is posted
    post thread        takes frames strictly in input order, stitches labels, renders the overlay
    writer thread      writes video / PNGs / stats and drives the progress bar

Memory is bounded by construction: both queues are small and a semaphore caps the frames between submit
and post. Two events steer shutdown. ``halt`` (end of input, Ctrl-C, SIGTERM) stops intake but lets the
frames already in flight finish and be written; ``abort`` (any stage failed) stops everything. Every
blocking call has a timeout so a stage notices either event, sentinels are sent in ``finally`` blocks,
outputs are closed on every path, and the first error is re-raised in the main thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidseg.engine import Engine
from vidseg.protocol import FrameGeometry
from vidseg.render import Palette
from vidseg.sinks import StatsSink, VideoSink, labels_json, write_image, write_json, write_label_png
from vidseg.sources import Frame, Source
from vidseg.stitch import Stitcher
from vidseg.summary import Summary

POLL_S = 0.1
END = object()  # queue sentinel


@dataclass
class Outputs:
    """What the user asked for; paths already validated by the CLI."""

    video: Path | None = None  # overlay video (video and live inputs)
    image_dir: Path | None = None  # overlay images (image inputs)
    image_file: Path | None = None  # overlay of a single image input
    labels_dir: Path | None = None
    stats: Path | None = None
    alpha: float = 0.5
    resume: bool = False
    crf: int = 20
    preset: str = "superfast"


@dataclass
class _Job:
    seq: int
    frame: Frame
    geo: FrameGeometry | None = None
    logits: np.ndarray | None = None
    remaining: int = 0
    submitted: float = 0.0
    finished: float = 0.0


@dataclass
class _Done:
    job: _Job
    labels: np.ndarray | None
    overlay: np.ndarray | None


class Pipeline:
    def __init__(self, engine: Engine, source: Source, outputs: Outputs, max_frames: int | None = None,
                 quiet: bool = False):
        self.engine, self.source, self.out = engine, source, outputs
        self.max_frames = max_frames
        self.quiet = quiet
        self.palette = Palette(engine.info.class_colors)
        self.stitcher = Stitcher()
        self.summary = Summary(source=source.kind, device=engine.device,
                               execution_devices=engine.execution_devices, nireq=engine.nireq)
        self.halt = threading.Event()
        self.abort = threading.Event()
        self._error: BaseException | None = None
        self._decoded: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._to_write: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._inflight = threading.Semaphore(engine.nireq + 2)
        self._done: dict[int, _Job] = {}
        self._cond = threading.Condition()
        self._total: int | None = None
        self.interrupted = False
        engine.on_result(self._on_window)
        if outputs.resume and source.kind == "images":
            source.skip = self._already_done

    # --- shutdown plumbing -------------------------------------------------------------------------
    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self.abort.set()
        self.halt.set()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.abort.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self.abort.is_set():
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
                if self.abort.is_set():
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                else:
                    time.sleep(POLL_S)

    # --- stages ------------------------------------------------------------------------------------
    def run(self) -> Summary:
        started = time.perf_counter()
        threads = [threading.Thread(target=self._guard(fn), name=fn.__name__, daemon=True)
                   for fn in (self._read, self._post, self._write)]
        for t in threads:
            t.start()
        try:
            self._guard(self._submit)()
        finally:
            self._drain_engine()
            for t in threads:
                t.join()
            self.source.close()
            self.summary.wall_s = time.perf_counter() - started
            self.summary.decode_errors = self.source.decode_errors
            self.summary.gaps = self.source.gaps
            self.summary.approximate_blocks = self.stitcher.approximate_blocks
            self.summary.interrupted = self.interrupted
        if self._error is not None:
            raise self._error
        return self.summary

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: stop intake, finish what is in flight, report exit 130."""
        self.interrupted = True
        self.halt.set()

    def _drain_engine(self) -> None:
        """No callback may run once the run is over; wait for OpenVINO whatever state we are in."""
        try:
            self.engine.wait_all()
        except Exception:  # noqa: BLE001 - the first error is the one reported
            if self._error is None:
                raise

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self._fail(e)
        run.__name__ = fn.__name__
        return run

    def _read(self) -> None:
        try:
            frames = self.source.frames()
            while not self.halt.is_set():
                t0 = time.thread_time()
                frame = next(frames, None)
                if frame is None or (self.max_frames is not None and frame.index >= self.max_frames):
                    break
                self.summary.add_time("decode", time.thread_time() - t0)
                self.summary.frames_in += 1
                if self.source.live:
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
                if frame is END or self.abort.is_set():
                    break
                self.engine.raise_if_failed()
                job = _Job(seq, frame)
                seq += 1
                if frame.image is None:
                    self._post_job(job)
                    continue
                while not self._inflight.acquire(timeout=POLL_S):
                    if self.abort.is_set():
                        return
                t0 = time.thread_time()
                job.geo, windows = self.engine.windows(frame.image)
                self.summary.add_time("preprocess", time.thread_time() - t0)
                job.logits = np.empty((len(windows), self.engine.info.n_classes, self.engine.grid,
                                       self.engine.grid), dtype=np.float32)
                job.remaining = len(windows)
                job.submitted = time.perf_counter()
                for i, w in enumerate(windows):
                    self.engine.submit(w, (job, i))
        finally:
            with self._cond:
                self._total = seq
                self._cond.notify_all()

    def _on_window(self, key: tuple[_Job, int], logits: np.ndarray) -> None:
        job, i = key
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
                    while seq not in self._done and not self.abort.is_set():
                        if self._total is not None and seq >= self._total:
                            return
                        self._cond.wait(POLL_S)
                        self.engine.raise_if_failed()
                    if self.abort.is_set():
                        return
                    job = self._done.pop(seq)
                seq += 1
                if job.frame.image is None:
                    self._put(self._to_write, _Done(job, None, None))
                    continue
                self._inflight.release()
                self.summary.add_time("inference", job.finished - job.submitted)
                t0 = time.thread_time()
                labels = self.stitcher.labels(job.logits, job.geo)
                job.logits = None
                t1 = time.thread_time()
                overlay = None
                if self.out.video or self.out.image_dir or self.out.image_file:
                    overlay = self.palette.overlay(job.frame.image, labels, self.out.alpha)
                self.summary.add_time("stitch", t1 - t0)
                self.summary.add_time("render", time.thread_time() - t1)
                if not self._put(self._to_write, _Done(job, labels, overlay)):
                    return
        finally:
            self._put_end(self._to_write)

    def _write(self) -> None:
        video = None
        stats = None
        if self.out.video:
            video = VideoSink(self.out.video, self.source.time_base, self.source.fps, self.out.crf,
                              self.out.preset, self.source.audio)
        progress = tqdm(total=self._expected_frames(), unit="frame", disable=True if self.quiet else None,
                        leave=False)
        try:
            if self.out.labels_dir:
                write_json(self.out.labels_dir / "labels.json",
                           labels_json(self.engine.info.class_names, self.palette))
            if self.out.stats:
                stats = StatsSink(self.out.stats, self.engine.info.class_names, append=self.out.resume)
            while True:
                item = self._get(self._to_write)
                if item is END:
                    break
                t0 = time.thread_time()
                self._write_one(item, video, stats)
                self.summary.add_time("write", time.thread_time() - t0)
                progress.update(1)
            if video is not None and video.frames:
                for packet in self.source.trailing_packets:
                    video.mux_audio(packet)
        finally:
            progress.close()
            if stats is not None:
                stats.close()
            if video is not None:
                if video.frames:
                    video.close()
                else:
                    video.abandon()
                self.summary.audio_skipped = video.audio_skipped

    def _expected_frames(self) -> int | None:
        n = self.source.frame_count
        if self.max_frames is not None:
            n = min(n, self.max_frames) if n is not None else self.max_frames
        return n

    def _write_one(self, done: _Done, video: VideoSink | None, stats: StatsSink | None) -> None:
        frame = done.job.frame
        if frame.image is None:
            if frame.resumed:
                self.summary.resumed += 1
            else:
                self.summary.fail(str(frame.name or frame.index), frame.error or "unreadable")
            return
        if video is not None:
            video.write(done.overlay, frame.pts, frame.packets)
        if self.out.image_file is not None:
            write_image(self.out.image_file, done.overlay)
        if self.out.image_dir is not None:
            write_image(self.out.image_dir / frame.name.with_suffix(".png"), done.overlay)
        if self.out.labels_dir is not None:
            write_label_png(self.out.labels_dir / self._label_name(frame), done.labels, self.palette)
        if stats is not None:
            record: dict[str, Any] = {"frame": frame.index}
            if frame.name is not None:
                record["name"] = str(frame.name)
            if frame.pts is not None:
                record["time"] = round(float(frame.pts * self.source.time_base), 6)
            stats.write(record, done.labels)
        self.summary.frames_out += 1

    @staticmethod
    def _label_name(frame: Frame) -> Path:
        return frame.name.with_suffix(".png") if frame.name is not None else Path(f"{frame.index:06d}.png")

    def _already_done(self, name: Path) -> bool:
        """--resume: an image counts as done when every output it would get exists (they are atomic)."""
        wanted = []
        if self.out.labels_dir:
            wanted.append(self.out.labels_dir / name.with_suffix(".png"))
        if self.out.image_dir:
            wanted.append(self.out.image_dir / name.with_suffix(".png"))
        return bool(wanted) and all(p.exists() for p in wanted)
