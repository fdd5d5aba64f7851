"""What runs on a cluster node: one unit labelled by a model the worker process compiled once.

Ray reuses a worker process for task after task, so the compiled ``Engine`` lives in this module for
the life of the process (a restarted process compiles again, from OpenVINO's cache). Labels travel back
as PNG bytes: lossless, about 30 times smaller than the arrays, and cheap to encode.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from vidseg.errors import VidsegError
from vidseg.inputs.sources import ImageSource, Source, VideoSource
from vidseg.model.engine import Engine
from vidseg.render import Palette
from vidseg.runs.cluster.units import Unit
from vidseg.runs.local import LocalStream


@dataclass(frozen=True)
class ModelSettings:
    """How every worker compiles the model: the settings of the local run it must match."""

    model: str
    device: str
    stride: int | None
    precision: str
    cpu_streams: int
    start: float | None = None
    end: float | None = None


@dataclass
class UnitLabels:
    """A unit's result: each frame's timestamp and labels (PNG), or why the input could not be read."""

    seq: int
    key: str | None
    pts: list[int | None] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)
    error: str | None = None
    node: str = ""
    seconds: float = 0.0


_engines: dict[tuple[ModelSettings, int], Engine] = {}


def _engine(settings: ModelSettings, threads: int) -> Engine:
    key = (replace(settings, start=None, end=None), threads)  # a run's time range does not change the model
    if key not in _engines:
        _engines.clear()  # one compiled model per process
        _engines[key] = Engine(Path(settings.model), settings.device, "THROUGHPUT", 0, settings.stride,
                               settings.precision, settings.cpu_streams, threads)
    return _engines[key]


def _open(unit: Unit, settings: ModelSettings) -> Source:
    path = Path(unit.spec)
    if unit.image:
        return ImageSource([path], path.parent)
    return VideoSource(path, settings.start, settings.end, first_pts=unit.first_pts, end_pts=unit.end_pts)


def label_unit(unit: Unit, settings: ModelSettings, threads: int = 0) -> UnitLabels:
    """Labels for every frame of the unit, as a local run computes them."""
    t0 = time.perf_counter()
    result = UnitLabels(unit.seq, unit.key, node=socket.gethostname())
    try:
        source = _open(unit, settings)
    except VidsegError as e:
        result.error = str(e)
        return result
    engine = _engine(settings, threads)
    with LocalStream(engine, source, Palette(engine.info.class_colors)) as frames:
        for frame in frames:
            result.pts.append(frame.pts)
            result.pngs.append(encode_labels(frame.labels))
    if unit.image and not result.pngs:
        result.error = frames.summary.failures[0]["error"] if frames.summary.failures else "unreadable"
    result.seconds = time.perf_counter() - t0
    return result


def encode_labels(labels: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise VidsegError("could not encode labels as PNG")
    return png.tobytes()


def decode_labels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def run_task(unit: Unit, settings: ModelSettings) -> UnitLabels:
    """The Ray task: ``label_unit`` with as many OpenVINO threads as CPUs Ray reserved for it."""
    import ray

    threads = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))
    return label_unit(unit, settings, threads)
