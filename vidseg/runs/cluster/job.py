"""The driver of a cluster run: it plans, tracks, retries and joins; the nodes label and write.

    planner     ``units.plan``: videos cut at keyframes (packets read, nothing decoded), images one each
    Ray tasks   ``worker.run_task``: a unit labelled and its outputs written by the node that ran it
    driver      keeps two units per task slot in flight (recounted as nodes come and go), and as soon as
                every segment of the next video is finished, joins its pieces (``pieces.join``), in input
                order

The driver decodes nothing and encodes nothing, so it no longer caps the cluster: its CPU per frame is
in the summary (``cluster.driver_cpu_ms_per_frame``) and docs/cluster.md models what bounds a run next.

Why Ray Core tasks rather than actors or Ray Data: a task asks Ray for CPUs and Ray places it on any node
with room, including nodes that join mid-run; a task whose worker or node died runs again elsewhere
(``max_retries``); the compiled model stays in each worker process between tasks, as an actor would keep
it. The work is an ordered list of segments, which needs none of Ray Data's tables.

``--resume`` keeps every finished video and every finished segment of an unfinished one (its folder has a
``unit.json`` whose fingerprint matches the run's settings); without it, stale segments are cleared.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openvino as ov
from tqdm import tqdm

from vidseg.errors import VidsegError
from vidseg.files import labels_json, write_json
from vidseg.inputs.sources import CollectionSource, Source
from vidseg.model.modeldir import read_model
from vidseg.model.options import EngineOptions
from vidseg.outputs.labels import LABELS_JSON
from vidseg.outputs.stats import StatsSink
from vidseg.outputs.writer import CollectionWriter, Writer
from vidseg.render import Palette
from vidseg.runs.cluster.connect import Cluster, connect, first_line
from vidseg.runs.cluster.pieces import Targets, join, read_unit
from vidseg.runs.cluster.units import DEFAULT_SEGMENT_FRAMES, Unit, plan
from vidseg.runs.cluster.worker import ModelSettings, UnitReport, run_task
from vidseg.runs.reuse import ReusePolicy
from vidseg.summary import Summary

TASK_RETRIES = 3  # a task whose worker process or node died runs again, up to this many times
POLL_S = 1.0  # how long the driver waits for a unit before it looks at a stop request again
RECOUNT_S = 5.0  # how often the driver counts the cluster's CPUs again


@dataclass
class _Input:
    """An input whose units are under way: finished once its last unit is planned and every unit is done."""

    unit: Unit  # its first
    targets: Targets
    parts: int = 1
    planned_all: bool = True
    done: dict[int, UnitReport] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.planned_all and len(self.done) == self.parts


class ClusterJob:
    """One ``vidseg process --ray`` run: the source's units on the cluster, its outputs as ``writer``
    describes them. ``run()`` returns the run's summary; Ctrl-C or SIGTERM (``stop()``) cancels the units
    under way and keeps what is finished."""

    def __init__(self, source: Source, writer: Writer | CollectionWriter, cluster: Cluster,
                 settings: ModelSettings, class_names: list[str], palette: Palette, *,
                 segment_frames: int = DEFAULT_SEGMENT_FRAMES, resume: bool = False, progress: bool = False):
        import ray

        self._ray, self._source, self._writer = ray, source, writer
        self._cluster, self._settings, self._resume = cluster, settings, resume
        self._class_names, self._palette = class_names, palette
        skip = writer.done if resume and source.kind in ("images", "collection") else None
        self._units: Iterator[Unit] = plan(source, segment_frames, settings.start, settings.end, skip)
        self._task = ray.remote(run_task).options(num_cpus=cluster.cpus_per_task, max_retries=TASK_RETRIES,
                                                  retry_exceptions=False)
        self.summary = Summary(source=source.kind, device=cluster.describe(), execution_devices=[settings.device],
                               nireq=cluster.slots)
        if skip is not None and isinstance(source, CollectionSource):
            self.summary.resumed = sum(1 for e in source.entries if skip(e.name))
        stats = self._targets_of(None).stats
        self._stats = StatsSink(stats, resume) if stats is not None else None
        self._bar = tqdm(total=source.frame_count, unit="frame", disable=None if progress else True, leave=False)
        self._stop = threading.Event()
        self._in_flight: dict[Any, Unit] = {}  # ObjectRef -> unit
        self._inputs: deque[_Input] = deque()  # in input order, until finished
        self._input_of: dict[int, _Input] = {}  # unit seq -> its input
        self._by_node: dict[str, int] = {}
        self._labels_json = False
        self._tally = {"units": 0, "units_resumed": 0, "task_s": 0.0, "compile_s": 0.0, "first_s": 0.0,
                       "join_s": 0.0}

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> Summary:
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            self._loop()
        finally:
            for ref in self._in_flight:
                self._ray.cancel(ref)
            self._bar.close()
            if self._stats is not None:
                self._stats.close()
            self._finish_summary(time.perf_counter() - t0, time.process_time() - cpu0)
        return self.summary

    def _loop(self) -> None:
        planned_all = False
        slots, counted = self._cluster.slots, time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - counted > RECOUNT_S:  # nodes come and go: keep every slot fed
                cpus = int(self._ray.cluster_resources().get("CPU", 0))
                slots, counted = max(1, cpus // self._cluster.cpus_per_task), time.monotonic()
            while not planned_all and len(self._in_flight) < 2 * slots:
                unit = next(self._units, None)
                if unit is None:
                    planned_all = True
                else:
                    self._start(unit)
            self._join_ready()
            if planned_all and not self._in_flight and not self._inputs:
                return
            if self._in_flight:
                self._collect()
        self.summary.interrupted = True

    def _targets_of(self, unit: Unit | None) -> Targets:
        w = self._writer
        if isinstance(w, CollectionWriter):
            if unit is None or unit.image:
                return Targets(images=w.videos, labels=w.labels, stats=w.stats, overlay=w.options)
            video, labels = w.video_outputs(Path(unit.key or "video"))
            return Targets(video=video, labels=labels, stats=w.stats, overlay=w.options)
        return Targets(**w.paths, overlay=w.options)

    def _fingerprint(self, unit: Unit, targets: Targets) -> str:
        """What a finished segment was made from: a resumed run reuses it only if nothing differs."""
        facts = (unit.spec, unit.first_pts, unit.end_pts, asdict(self._settings), str(targets))
        return hashlib.sha256(repr(facts).encode()).hexdigest()[:16]

    def _start(self, unit: Unit) -> None:
        targets = self._targets_of(unit)
        if unit.part == 0:
            self._inputs.append(_Input(unit, targets))
            if not unit.image and not self._resume:
                shutil.rmtree(targets.work_dir(unit.key), ignore_errors=True)  # an earlier run's leftovers
        current = self._inputs[-1]
        current.parts, current.planned_all = unit.part + 1, unit.last
        self._input_of[unit.seq] = current
        fingerprint = "" if unit.image else self._fingerprint(unit, targets)
        if self._resume and not unit.image:
            finished = read_unit(targets.unit_dir(unit.key, unit.part))
            if finished is not None and finished.get("fingerprint") == fingerprint:
                report = UnitReport(unit.seq, finished["frames"], decode_errors=finished["decode_errors"],
                                    reuse=finished["reuse"], resumed=True)
                self._record(unit, report)
                return
        self._submit(unit, targets, fingerprint)

    def _submit(self, unit: Unit, targets: Targets, fingerprint: str) -> None:
        self._in_flight[self._task.remote(unit, self._settings, targets, fingerprint)] = unit

    def _collect(self) -> None:
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=POLL_S)
        for ref in ready:
            unit = self._in_flight.pop(ref)
            try:
                report: UnitReport = self._ray.get(ref)
            except self._ray.exceptions.RayError as e:
                raise VidsegError(f"a Ray task failed: {first_line(e)}") from None
            self._record(unit, report)

    def _record(self, unit: Unit, report: UnitReport) -> None:
        if report.missing and Path(unit.spec).exists():
            raise VidsegError(f"{unit.key or unit.spec}: a Ray worker on node {report.node[:12]} cannot read it "
                              f"({report.error}); inputs must be on storage every node sees, at the same path")
        t = self._tally
        t["units"] += 1
        t["units_resumed"] += report.resumed
        t["task_s"] += report.seconds
        t["compile_s"] += report.compile_s
        t["first_s"] += report.first_s
        if report.node:
            self._by_node[report.node] = self._by_node.get(report.node, 0) + 1
        self._bar.update(report.frames)
        self._input_of.pop(unit.seq).done[unit.part] = report

    def _join_ready(self) -> None:
        """Finish the inputs at the head of the line whose units are all done, in input order (the stats
        file is one file in input order)."""
        while self._inputs and self._inputs[0].finished:
            done = self._inputs.popleft()
            if done.unit.image:
                self._finish_image(done.unit, done.done[0])
            else:
                self._finish_video(done)

    def _write_labels_json(self, targets: Targets) -> None:
        top = self._writer.labels if isinstance(self._writer, CollectionWriter) else targets.labels
        if top is not None and not self._labels_json:
            write_json(top / LABELS_JSON, labels_json(self._class_names, self._palette))
            self._labels_json = True

    def _finish_image(self, unit: Unit, report: UnitReport) -> None:
        s, name = self.summary, unit.key if isinstance(self._source, CollectionSource) else None
        s.frames_in += 1
        s.count(name, "frames_in")
        if report.error is not None:
            s.fail(unit.key or unit.spec, report.error, name)
            return
        self._write_labels_json(self._targets_of(unit))
        if self._stats is not None and report.record is not None:
            self._stats.write_record({"frame": unit.index, **report.record})
        s.frames_out += 1
        s.count(name, "frames_out")

    def _finish_video(self, video: _Input) -> None:
        s, unit = self.summary, video.unit
        name = unit.key if isinstance(self._source, CollectionSource) else None
        errors = [r.error for r in video.done.values() if r.error is not None]
        if errors:
            s.fail(unit.key or unit.spec, errors[0], name)
            shutil.rmtree(video.targets.work_dir(unit.key), ignore_errors=True)
            return
        t0 = time.perf_counter()
        if video.targets.labels is not None:
            self._write_labels_json(video.targets)
        joined = join(video.targets, unit.key, video.parts, Path(unit.spec), self._settings.start,
                      self._settings.end, self._stats)
        self._tally["join_s"] += time.perf_counter() - t0
        decode_errors = sum(r.decode_errors for r in video.done.values())
        for what, n in (("frames_in", joined.frames), ("frames_out", joined.frames), ("decode_errors", decode_errors)):
            s.count(name, what, n)
        s.frames_in += joined.frames
        s.frames_out += joined.frames
        s.decode_errors += decode_errors
        if joined.audio_skipped:
            s.audio_skipped = "; ".join(filter(None, [s.audio_skipped, f"{unit.key or unit.spec}: "
                                                                       f"{joined.audio_skipped}"]))
        for r in video.done.values():
            for k, v in r.reuse.items():
                if isinstance(v, int):
                    s.reuse[k] = s.reuse.get(k, 0) + v
                else:
                    s.reuse.setdefault(k, v)

    def _finish_summary(self, wall_s: float, driver_cpu_s: float) -> None:
        s, c, t = self.summary, self._cluster, self._tally
        s.wall_s = wall_s
        if s.frames_out:
            s.add_time("inference", t["task_s"], s.frames_out)
        s.cluster = {"address": c.address, "nodes": c.nodes, "cpus": c.cpus, "cpus_per_task": c.cpus_per_task,
                     "tasks_at_once": c.slots, "nodes_used": len(self._by_node), "units": t["units"],
                     "units_resumed": t["units_resumed"],
                     "units_by_node": dict(self._by_node), "task_s": round(t["task_s"], 3),
                     "compile_s": round(t["compile_s"], 3), "first_frame_s": round(t["first_s"], 3),
                     "join_s": round(t["join_s"], 3), "driver_cpu_s": round(driver_cpu_s, 3),
                     "driver_cpu_ms_per_frame": round(1000 * driver_cpu_s / s.frames_out, 3) if s.frames_out else None}


@contextmanager
def stop_on_signals(job: ClusterJob) -> Iterator[None]:
    """Ctrl-C or SIGTERM on the driver cancels the units under way; finished outputs and segments stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: job.stop()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def cluster_job(source: Source, writer: Writer | CollectionWriter, address: str, model: str | Path,
                options: EngineOptions, *, reuse: ReusePolicy | None = None, cpus_per_task: int | None = None,
                segment_frames: int = DEFAULT_SEGMENT_FRAMES, start: float | None = None,
                end: float | None = None, resume: bool = False, progress: bool = False) -> ClusterJob:
    """``vidseg process --ray``: ``source`` (files, folders, globs, @lists from ``sources.open_source``,
    opened with the same ``start``/``end``) labelled on the cluster at ``address`` and written as
    ``writer`` (from ``outputs.plan.plan_outputs``) describes. The model is read here (class names,
    colours, and a clear error if it is not a model) and compiled by each worker process once."""
    if segment_frames < 1:
        raise VidsegError(f"segment frames must be at least 1, got {segment_frames}")
    if source.live or source.kind == "arrays":
        raise VidsegError(f"a cluster run takes video files, images, folders, globs and @lists, not a {source.kind}")
    _, info = read_model(Path(model), ov.Core())
    cluster = connect(address, cpus_per_task)
    settings = ModelSettings(str(Path(model).resolve()), options.device, options.stride, options.precision,
                             options.cpu_streams, start, end, reuse)
    return ClusterJob(source, writer, cluster, settings, list(info.class_names), Palette(info.class_colors),
                      segment_frames=segment_frames, resume=resume, progress=progress)
