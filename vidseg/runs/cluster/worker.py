"""What runs on a cluster node: one unit labelled by a model the worker process compiled once, its outputs
written by the worker itself.

Ray reuses a worker process for task after task, so the compiled ``Engine`` lives in this module for the
life of the process (a restarted process compiles again, from OpenVINO's cache). An image is written to
its final files at once, as a local run writes it. A video segment is written into its own folder
(``pieces``): overlay piece, label PNGs, and last ``unit.json``; a retried segment starts that folder over.
Only a small report travels back to the driver.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidseg.errors import VidsegError
from vidseg.files import write_json
from vidseg.inputs.sources import ImageSource, Source, VideoSource
from vidseg.model.engine import Engine
from vidseg.outputs.sink import VideoFacts
from vidseg.outputs.stats import stats_record
from vidseg.outputs.writer import Writer
from vidseg.render import Palette
from vidseg.runs.cluster.pieces import UNIT_JSON, Targets
from vidseg.runs.cluster.units import Unit
from vidseg.runs.local import LocalStream
from vidseg.runs.reuse import ReusePolicy


@dataclass(frozen=True)
class ModelSettings:
    """How every worker compiles and runs the model: the settings of the local run it must match."""

    model: str
    device: str
    stride: int | None
    precision: str
    cpu_streams: int
    start: float | None = None
    end: float | None = None
    reuse: ReusePolicy | None = None


@dataclass
class UnitReport:
    """What a unit did, for the driver: frames written (or why the input could not be read), by which
    node, in how long. An image's stats record comes along; a segment's stay in its ``unit.json``."""

    seq: int
    frames: int = 0
    error: str | None = None
    missing: bool = False  # the input does not exist on the worker's node
    node: str = ""
    seconds: float = 0.0
    compile_s: float = 0.0  # of those seconds, compiling the model (a worker process's first unit)
    first_s: float = 0.0  # from the compiled model to the first frame written: seek, decode, pipeline fill
    decode_errors: int = 0
    reuse: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    resumed: bool = False  # a segment finished by an earlier run (set by the driver)


_engines: dict[tuple[ModelSettings, int], Engine] = {}


def _engine(settings: ModelSettings, threads: int) -> Engine:
    key = (replace(settings, start=None, end=None, reuse=None), threads)  # neither changes the compiled model
    if key not in _engines:
        _engines.clear()  # one compiled model per process
        _engines[key] = Engine(Path(settings.model), settings.device, "THROUGHPUT", 0, settings.stride,
                               settings.precision, settings.cpu_streams, threads)
    return _engines[key]


def _image_root(unit: Unit) -> Path:
    """The folder the image's name is relative to, so outputs and stats name it as a local run does."""
    root = Path(unit.spec)
    for _ in Path(unit.key or root.name).parts:
        root = root.parent
    return root


def _open(unit: Unit, settings: ModelSettings) -> Source:
    path = Path(unit.spec)
    if unit.image:
        return ImageSource([path], _image_root(unit))
    return VideoSource(path, settings.start, settings.end, first_pts=unit.first_pts, end_pts=unit.end_pts)


def _stream(engine: Engine, source: Source, settings: ModelSettings, alpha: float | None) -> LocalStream:
    palette = Palette(engine.info.class_colors)
    if settings.reuse is not None and not isinstance(source, ImageSource):
        from vidseg.runs.reuse.stream import ReuseStream

        return ReuseStream(engine, source, palette, settings.reuse, overlay_alpha=alpha)
    return LocalStream(engine, source, palette, overlay_alpha=alpha)


def run_unit(unit: Unit, settings: ModelSettings, targets: Targets, fingerprint: str = "",
             threads: int = 0, node: str = "") -> UnitReport:
    """Label the unit and write its outputs (see the module's docstring)."""
    t0 = time.perf_counter()
    report = UnitReport(unit.seq, node=node)
    try:
        source = _open(unit, settings)
    except VidsegError as e:
        report.error, report.missing = str(e), not Path(unit.spec).exists()
        return report
    t_compile = time.perf_counter()
    engine = _engine(settings, threads)
    report.compile_s = time.perf_counter() - t_compile
    if unit.image:
        _write_image(unit, engine, source, settings, targets, report)
    else:
        _write_segment(unit, engine, source, settings, targets, fingerprint, report)
    report.seconds = time.perf_counter() - t0
    return report


def _write_image(unit: Unit, engine: Engine, source: Source, settings: ModelSettings, targets: Targets,
                 report: UnitReport) -> None:
    o = targets.overlay
    writer = Writer(images=targets.images, image=targets.image, labels=targets.labels, class_table=False,
                    alpha=o.alpha, crf=o.crf, preset=o.preset)
    with _stream(engine, source, settings, writer.overlay_alpha) as frames, writer:
        for frame in frames:
            writer.write(frame)
            report.frames += 1
            if targets.stats is not None:
                report.record = stats_record(frame)
                del report.record["frame"]  # the driver numbers it: the image's place in its input
    if not report.frames:
        failures = frames.summary.failures
        report.error = failures[0]["error"] if failures else "unreadable"


def _write_segment(unit: Unit, engine: Engine, source: Source, settings: ModelSettings, targets: Targets,
                   fingerprint: str, report: UnitReport) -> None:
    started = time.perf_counter()
    folder, o = targets.unit_dir(unit.key, unit.part), targets.overlay
    shutil.rmtree(folder, ignore_errors=True)  # a retried segment starts over
    writer = Writer(video=targets.piece(unit.key, unit.part) if targets.video is not None else None,
                    labels=folder / "labels" if targets.labels is not None else None, class_table=False,
                    keep_partial=False, alpha=o.alpha, crf=o.crf, preset=o.preset)
    times: list[float | None] = []
    records: list[dict[str, Any]] = []
    first_time: list[int] | None = None  # exact, as [numerator, denominator] of seconds
    folder.mkdir(parents=True, exist_ok=True)
    with _stream(engine, source, settings, writer.overlay_alpha) as frames, writer:
        for frame in frames:
            if not times:  # the driver copies the audio once, from the source
                facts = replace(VideoFacts.of(frame), audio=None)
                writer.open(facts)
                if frame.pts is not None:
                    t = frame.pts * facts.time_base
                    first_time = [t.numerator, t.denominator]
            writer.write(frame)
            if not times:
                report.first_s = time.perf_counter() - started
            times.append(frame.time)
            if targets.stats is not None:
                record = stats_record(frame)
                del record["frame"]  # the driver numbers it: the frame's place in the whole video
                records.append({"input": unit.key, **record} if unit.key is not None else record)
    report.frames, report.decode_errors = len(times), frames.summary.decode_errors
    report.reuse = dict(frames.summary.reuse)
    write_json(folder / UNIT_JSON, {"fingerprint": fingerprint, "frames": len(times), "times": times,
                                    "first_time": first_time,
                                    "records": records, "decode_errors": report.decode_errors,
                                    "reuse": report.reuse})


def run_task(unit: Unit, settings: ModelSettings, targets: Targets, fingerprint: str) -> UnitReport:
    """The Ray task: ``run_unit`` with as many OpenVINO threads as CPUs Ray reserved for it."""
    import ray

    context = ray.get_runtime_context()
    threads = int(context.get_assigned_resources().get("CPU", 0))
    return run_unit(unit, settings, targets, fingerprint, threads, context.get_node_id())
