"""The driver of a cluster run: Ray labels the units, this machine reads the input and writes every output.

    driver, read thread    decodes the input exactly as a local run does (frames, timestamps, audio)
    driver, post thread    keeps up to two units per task slot in flight on Ray, takes their labels in
                           order, pairs each decoded frame with its labels (checking the timestamp), renders
    Ray tasks on nodes     ``worker.run_task``: decode one segment, infer, return labels as PNG bytes
    caller's thread        iterates the stream; the CLI hands each frame to the same ``Writer`` as locally

Why Ray Core tasks rather than actors or Ray Data: a task asks Ray for CPUs and Ray places it on any node
with room, including nodes that join mid-run; a worker process killed mid-task is detected by Ray and its
task retried on another (``max_retries``); the compiled model stays in the worker process between tasks
(``worker._engines``) as an actor would keep it. The work is an ordered list of segments, which needs
none of Ray Data's tables (and not its pyarrow and pandas dependencies).

Why the driver writes: outputs must be identical to a local run, and an H.264 video encoded in pieces is
not the video encoded once. Labels are small (PNG), so they travel through Ray's object store; the
driver decodes the input once more (a few ms a frame next to a second of inference) and encodes the
overlay once. Only the inputs need to be where every node can read them, at the same path.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from vidseg.errors import VidsegError
from vidseg.inputs.sources import Frame, Source
from vidseg.model.modeldir import read_model
from vidseg.render import Palette
from vidseg.runs.cluster.units import DEFAULT_SEGMENT_FRAMES, Unit, frame_key, plan
from vidseg.runs.cluster.worker import ModelSettings, UnitLabels, decode_labels, run_task
from vidseg.runs.stream import END, POLL_S, Stream
from vidseg.summary import Summary

TASK_RETRIES = 3  # a task whose worker process died runs again, up to this many times


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster a run uses, as found when it connected."""

    address: str
    nodes: int
    cpus: int
    cpus_per_task: int

    @property
    def slots(self) -> int:
        """Tasks that run at once."""
        return max(1, self.cpus // self.cpus_per_task)

    def describe(self) -> str:
        return (f"Ray {self.address}: {self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus} CPUs, "
                f"{self.slots} task{'s' * (self.slots != 1)} of {self.cpus_per_task} CPUs at once")


def connect(address: str, cpus_per_task: int | None = None) -> Cluster:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made on this machine; ``local``: a
    new one-machine cluster of this process). Tasks get ``cpus_per_task`` CPUs each, by default as many as
    the smallest node has: one task per node, its OpenVINO using every core."""
    try:
        import ray
    except ImportError:
        raise VidsegError("--ray needs Ray, which is an optional extra: pip install 'vidseg[ray]'") from None
    if cpus_per_task is not None and cpus_per_task < 1:
        raise VidsegError(f"CPUs per task must be at least 1, got {cpus_per_task}")
    if not ray.is_initialized():
        if address not in ("local", "auto"):
            _check_reachable(address)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address == "local":
                ray.init(num_cpus=os.cpu_count(), **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else "; a cluster with tokens needs RAY_AUTH_MODE=token"
            raise VidsegError(f"cannot join a Ray cluster at {address}: {str(e).splitlines()[0]} (start one "
                              f"with 'ray start --head', or use --ray local{hint})") from None
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]]
    if not any(node_cpus):
        raise VidsegError(f"the Ray cluster at {address} has no CPUs to run on")
    per_task = cpus_per_task or min(c for c in node_cpus if c > 0)
    if per_task > max(node_cpus):
        raise VidsegError(f"no node of the Ray cluster has {per_task} CPUs (largest: {max(node_cpus)})")
    return Cluster(address, len(node_cpus), sum(node_cpus), per_task)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray keeps retrying an address nobody answers on for minutes, printing warnings: ask once first."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except ValueError:
        raise VidsegError(f"--ray takes host:port, 'local' or nothing, got {address!r}") from None
    except OSError as e:
        raise VidsegError(f"cannot reach a Ray cluster at {address}: {e.strerror or e} (start one with "
                          "'ray start --head', or use --ray local)") from None


class ClusterStream(Stream):
    """Segmented frames of one input, in input order, labelled on a Ray cluster. Made by
    ``cluster_stream()``; used like ``LocalStream``."""

    def __init__(self, source: Source, cluster: Cluster, settings: ModelSettings, palette: Palette,
                 class_names: list[str], segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                 max_frames: int | None = None, overlay_alpha: float | None = None,
                 skip: Callable[[Path], bool] | None = None):
        import ray

        summary = Summary(source=source.kind, device=cluster.describe(), execution_devices=[settings.device],
                          nireq=cluster.slots)
        super().__init__(source, palette, class_names, summary, max_frames, overlay_alpha)
        if skip is not None:
            source.skip = skip
        self._ray = ray
        self._cluster, self._settings = cluster, settings
        self._units: Iterator[Unit] = plan(source, segment_frames, settings.start, settings.end, skip)
        self._task = ray.remote(run_task).options(num_cpus=cluster.cpus_per_task, max_retries=TASK_RETRIES,
                                                  retry_exceptions=False)
        self._lookahead = 2 * cluster.slots
        self._pending: deque[Any] = deque()  # ObjectRefs of UnitLabels, in unit order
        self._current: UnitLabels | None = None
        self._pos = 0
        self._units_done = 0
        self._task_s = 0.0

    def _stages(self) -> list[tuple[str, Callable[[], None]]]:
        return [("post", self._label)]

    def _drain(self) -> None:
        """Units still queued or running are of no use once the run is over."""
        for ref in self._pending:
            self._ray.cancel(ref)
        self._pending.clear()

    def _finish_summary(self) -> None:
        super()._finish_summary()
        c = self._cluster
        self.summary.cluster = {"address": c.address, "nodes": c.nodes, "cpus": c.cpus,
                                "cpus_per_task": c.cpus_per_task, "tasks_at_once": c.slots,
                                "units": self._units_done, "task_s": round(self._task_s, 3)}

    def _label(self) -> None:
        try:
            while True:
                frame = self._get(self._decoded)
                if frame is END or self._abort.is_set():
                    break
                if frame.materialize().image is None:
                    self._record_unsegmented(frame)
                    continue
                labels = self._labels_for(frame)
                if labels is None or not self._put(self._results, self._result(frame, labels)):
                    return
        finally:
            self._put_end(self._results)

    def _labels_for(self, frame: Frame) -> np.ndarray | None:
        key = frame_key(frame)
        while self._current is None or self._pos >= len(self._current.pts):
            unit = self._next_unit()
            if unit is None:
                return None
            if unit.error is not None:
                if unit.key == key:
                    raise VidsegError(f"{key or 'the input'}: a Ray worker on {unit.node} cannot read it "
                                      f"({unit.error}); inputs must be on storage every node sees, at the same path")
                continue  # an input this machine could not read either: already listed as failed
            self._current, self._pos = unit, 0
        unit = self._current
        if unit.key != key or unit.pts[self._pos] != frame.pts:
            raise VidsegError(f"{key or 'the input'}: the Ray worker on {unit.node} decoded a different frame "
                              f"(pts {unit.pts[self._pos]} of {unit.key}) than this machine (pts {frame.pts})")
        png = unit.pngs[self._pos]
        self._pos += 1
        return decode_labels(png)

    def _next_unit(self) -> UnitLabels | None:
        """The next unit's labels, waiting for them; keeps the cluster busy meanwhile. None: aborted."""
        # After a stop, only the units the frames already read still need are sent.
        while len(self._pending) < (1 if self._halt.is_set() else self._lookahead):
            unit = next(self._units, None)
            if unit is None:
                break
            self._pending.append(self._task.remote(unit, self._settings))
        if not self._pending:
            raise VidsegError("the input has more frames than the cluster labelled")
        while not self._abort.is_set():
            try:
                result: UnitLabels = self._ray.get(self._pending[0], timeout=POLL_S)
            except self._ray.exceptions.GetTimeoutError:
                continue
            except self._ray.exceptions.RayError as e:
                raise VidsegError(f"a Ray task failed: {_first_line(e)}") from None
            self._pending.popleft()
            self._units_done += 1
            self._task_s += result.seconds
            if result.pts:
                self.summary.add_time("inference", result.seconds, len(result.pts))
            return result
        return None


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line and not line.startswith(" ")]
    return (errors[-1] if errors else lines[0] if lines else type(e).__name__).strip()


def cluster_stream(source: Source, address: str, model: str | Path, device: str = "CPU", *,
                   stride: int | None = None, precision: str = "f32", cpu_streams: int = 0,
                   cpus_per_task: int | None = None, segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                   start: float | None = None, end: float | None = None, max_frames: int | None = None,
                   overlay_alpha: float | None = None, skip: Callable[[Path], bool] | None = None) -> ClusterStream:
    """``Segmenter.stream()`` on a Ray cluster: the same frames and labels, inference spread over nodes.

    ``source`` is a file, folder, glob or @list opened by ``sources.open_source``; ``start``/``end`` must be
    the ones it was opened with. The model is read here (class names, colours, and a clear error if it is
    not a model) and compiled by each worker process the first time it runs a task.
    """
    if segment_frames < 1:
        raise VidsegError(f"segment frames must be at least 1, got {segment_frames}")
    if source.live or source.kind == "arrays":
        raise VidsegError("a cluster run takes video files, images, folders, globs and @lists, not a "
                          f"{source.kind}")
    _, info = read_model(Path(model), ov.Core())
    cluster = connect(address, cpus_per_task)
    settings = ModelSettings(str(Path(model).resolve()), device, stride, precision, cpu_streams, start, end)
    return ClusterStream(source, cluster, settings, Palette(info.class_colors), list(info.class_names),
                     segment_frames, max_frames, overlay_alpha, skip)
