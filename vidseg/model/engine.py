"""The OpenVINO adapter: compiles a model directory for a device and runs windows through it.

Only this module talks to OpenVINO's inference API. The pipeline hands it windows tagged with a key and
gets each window's logits back through a callback on OpenVINO's own threads; the output is copied there,
because OpenVINO reuses the request's tensor as soon as the callback returns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13

from vidseg.errors import DeviceError, ModelError, describe
from vidseg.home import cache_dir
from vidseg.model.modeldir import ModelInfo, read_model
from vidseg.model.protocol import FrameGeometry, frame_windows
from vidseg.model.stitch import Stitcher

VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
STREAM_CHECK_COMPILES = 3  # compiles whose streams disagree before the engine settles for one CPU stream


def check_device(core: ov.Core, device: str) -> None:
    """A one-line error for a device this machine does not have, before a long compile fails."""
    name = device.split(":")[0].split(".")[0].upper()
    if name in VIRTUAL_DEVICES:
        return
    available = core.available_devices
    if not any(d == device or d.split(".")[0] == name for d in available):
        raise DeviceError(f"device {device!r} is not available here (available: {', '.join(available)}, AUTO)")


class Engine:
    """A compiled Segmenter. Runs take their own request pools from it (``queue``); ``segment`` uses one
    request per calling thread.

    ``cpu_streams`` 0 takes OpenVINO's layout for the hint (two single-thread streams on two cores, for
    THROUGHPUT), each stream checked on the first window the engine runs (``first_logits``); ``stream_note``
    says when that check made the engine settle for one stream."""

    def __init__(self, model_dir: Path, device: str = "AUTO", hint: str = "THROUGHPUT", nireq: int = 0,
                 stride: int | None = None, precision_hint: str = "f32", cpu_streams: int = 0,
                 cpu_threads: int = 0):
        core = ov.Core()
        check_device(core, device)
        model, info = read_model(model_dir, core)
        if info.full_resolution_output:
            raise ModelError(f"{model_dir} was exported with --full-resolution-output for benchmarking; "
                              "convert without it to process media")
        self.info: ModelInfo = info
        self.stride = stride or info.window_stride
        w = info.window_size
        model.reshape({model.inputs[0]: [1, w, w, 3]})  # one window per request; static shapes run faster
        self.grid = int(model.outputs[0].get_partial_shape()[2].get_length())
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
        # Set on the CPU device so that they also hold when AUTO picks the CPU. The CPU plugin silently
        # computes in bf16 on CPUs that have it (AVX512_BF16, AMX), which moves labels away from upstream's,
        # so f32 unless the user opts in. cpu_threads: 0 uses every core; a cluster worker passes the CPUs
        # Ray gave it, and then shares the machine with other workers: pinned, each would take the same
        # first cores, so the operating system places their threads instead.
        self._has_cpu = "CPU" in core.available_devices
        if self._has_cpu:
            cpu: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision_hint, "INFERENCE_NUM_THREADS": cpu_threads}
            if 0 < cpu_threads < (os.cpu_count() or 1):
                cpu["ENABLE_CPU_PINNING"] = False
            core.set_property("CPU", cpu)
        if device.upper().startswith("AUTO") or device.upper().startswith("CPU"):
            config["CACHE_DIR"] = str(cache_dir() / "ov_cache")
        self._core, self._model, self._config = core, model, config
        self.model_dir = model_dir if model_dir.is_dir() else model_dir.parent
        self.device = device
        self._compile_lock = threading.RLock()
        self.stream_note: str | None = None
        self.cpu_streams = cpu_streams  # 0 until the first compile says what OpenVINO chose
        self.compiled = self.compile(model, check=False)
        streams = cpu_stream_count(self.compiled)
        self._streams_to_check = streams if streams > 1 else 0  # on the first window: first_logits()
        self._float_compiled: ov.CompiledModel | None = None
        self._float_lock = threading.Lock()
        self.execution_devices: list[str] = list(self.compiled.get_property("EXECUTION_DEVICES"))
        # At least two requests even where one is "optimal": the next window is queued while one runs.
        self.nireq = nireq or max(2, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._requests = threading.local()

    def compile(self, model: ov.Model, probe: dict[Any, np.ndarray] | None = None, check: bool = True,
                failed: int = 0) -> ov.CompiledModel:
        """Compiled for this engine's device with its settings (hint, precision, streams, cache).

        With several CPU streams and ``check``, each compile is checked with ``streams_agree`` (on ``probe``,
        the inputs to run; default: random pixels for a model whose one input is an image) and redone when a
        stream disagrees; after STREAM_CHECK_COMPILES such compiles (``failed`` counts those already made)
        the engine keeps to one stream from then on."""
        with self._compile_lock:
            while True:
                streams = self.cpu_streams  # 0: OpenVINO chooses (first compile)
                if self._has_cpu and streams:
                    self._core.set_property("CPU", {"NUM_STREAMS": streams})
                try:
                    compiled = self._core.compile_model(model, self.device, self._config)
                except RuntimeError as e:
                    raise ModelError(f"cannot compile the model for {self.device}: {describe(e)}") from None
                used = cpu_stream_count(compiled)
                if not streams:
                    self.cpu_streams = used
                if used < 2 or not check or streams_agree(compiled, used, probe):
                    return compiled
                failed += 1
                if failed == STREAM_CHECK_COMPILES:
                    self.stream_note = (f"{failed} compiles with {used} CPU streams each had a stream computing "
                                        "different logits (an OpenVINO fault, see docs/cli.md: Devices and "
                                        "precision); using one")
                    self.cpu_streams = 1

    def first_logits(self, window: np.ndarray) -> np.ndarray | None:
        """The check of the model's CPU streams, made on the first u8 window the engine runs instead of
        on random pixels when it compiled: that window goes through every stream and, when they agree, its
        logits are returned for the caller to use, so the check costs one window rather than one per
        stream. None for every later window, and when a stream disagreed: the
        model has then been compiled again as ``compile`` does, and the caller runs the window on it.
        Callers ask before they take ``compiled``; one that comes while the check runs waits for it."""
        if not self._streams_to_check or window.dtype != np.uint8:
            return None
        with self._compile_lock:
            if not self._streams_to_check:
                return None
            try:
                outputs = stream_outputs(self.compiled, self._streams_to_check, {0: window[None]})
                if identical(outputs):
                    return outputs[0][0]
                self.compiled = self.compile(self._model, {0: window[None]}, failed=1)
                return None
            finally:
                self._streams_to_check = 0  # cleared last: a caller that saw it set waits on the lock

    def read_variant(self, xml_name: str) -> ov.Model:
        """Another IR of the same model directory (the token-reuse one), to compile with ``compile``."""
        xml = self.model_dir / xml_name
        if not xml.exists():
            raise ModelError(f"{self.model_dir} has no {xml_name}: convert it again with this version's "
                             "'vidseg convert' (mask-transformer models only)")
        return read_model(xml, self._core)[0]

    def compiled_for(self, window: np.ndarray) -> ov.CompiledModel:
        """The model that takes this window: the IR as converted for u8 windows; for the f32 windows of
        an exact panorama, the same network with a float input, compiled the first time one appears."""
        if window.dtype == np.uint8:
            return self.compiled
        with self._float_lock:
            if self._float_compiled is None:
                self._float_compiled = self.compile(float_input(self._model))
            return self._float_compiled

    def windows(self, frame: np.ndarray) -> tuple[FrameGeometry, np.ndarray]:
        """The frame's geometry and its NHWC windows, rescaled as the protocol says."""
        i = self.info
        return frame_windows(frame, i.short_side, i.long_side_cap, i.window_size, self.stride)

    def queue(self, on_result: Callable[[Any, np.ndarray], None]) -> WindowQueue:
        """A fresh pool of requests for one run: runs sharing the engine never see each other's results."""
        return WindowQueue(self.compiled_for, self.nireq, on_result, self.first_logits)

    def segment(self, frame: np.ndarray, stitcher: Stitcher | None = None) -> np.ndarray:
        """Synchronous labels for one BGR frame. Each calling thread gets its own infer request, so
        threads sharing the engine run concurrently instead of corrupting one request."""
        return label_frame(self._infer, frame, self.info, self.stride, stitcher or Stitcher())

    def _infer(self, window: np.ndarray) -> np.ndarray:
        logits = self.first_logits(window)
        if logits is not None:
            return logits
        requests = self._requests.__dict__.setdefault("by_dtype", {})
        if window.dtype not in requests:
            requests[window.dtype] = self.compiled_for(window).create_infer_request()
        return requests[window.dtype].infer({0: window[None]})[0][0].copy()


class WindowQueue:
    """An ``AsyncInferQueue`` whose callback copies each window's logits out and hands them on.

    ``on_result(key, logits)`` runs on OpenVINO's threads; an exception there would be lost, so the first
    one is kept and re-raised by ``raise_if_failed`` in whichever thread polls. The first window goes to
    ``first_logits`` (the engine's stream check); logits it returns are handed on from the submitting thread.
    """

    def __init__(self, compiled_for: Callable[[np.ndarray], ov.CompiledModel], nireq: int,
                 on_result: Callable[[Any, np.ndarray], None], first_logits: Callable[[np.ndarray], np.ndarray | None]):
        self._compiled_for, self._nireq, self._first_logits = compiled_for, nireq, first_logits
        self._queues: dict[Any, ov.AsyncInferQueue] = {}  # by input dtype: u8, and f32 once a panorama comes
        self._on_result = on_result
        self.error: BaseException | None = None
        self._error_lock = threading.Lock()

    def _callback(self, request: ov.InferRequest, key: Any) -> None:
        self._deliver(key, request.get_output_tensor(0).data[0].copy())

    def _deliver(self, key: Any, logits: np.ndarray) -> None:
        try:
            self._on_result(key, logits)
        except BaseException as e:  # noqa: BLE001 - surfaced by raise_if_failed()
            with self._error_lock:
                self.error = self.error or e

    def submit(self, window: np.ndarray, key: Any) -> None:
        """Blocks while every request is busy: the natural back-pressure on the decoder."""
        queue = self._queues.get(window.dtype)
        if queue is None:
            logits = self._first_logits(window)  # the engine's stream check, on this window
            if logits is not None:
                self._deliver(key, logits)
                return
            queue = self._queues[window.dtype] = ov.AsyncInferQueue(self._compiled_for(window), self._nireq)
            queue.set_callback(self._callback)
        queue.start_async({0: window[None]}, key)

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def wait_all(self) -> None:
        for queue in list(self._queues.values()):
            queue.wait_all()


def cpu_stream_count(compiled: ov.CompiledModel) -> int:
    """CPU streams a compiled model runs (AUTO does not say; on the CPU alone it makes one request per
    stream optimal); 0 when it does not run on the CPU alone."""
    if list(compiled.get_property("EXECUTION_DEVICES")) != ["CPU"]:
        return 0
    try:
        return int(compiled.get_property("NUM_STREAMS"))
    except RuntimeError:
        return int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))


def streams_agree(compiled: ov.CompiledModel, streams: int,
                  probe: dict[Any, np.ndarray] | None = None) -> bool:
    """Whether every stream gives the same output for the same input (``probe``; default: random pixels),
    bit for bit.

    OpenVINO 2026.4's CPU plugin now and then (4 of 220 fresh processes on three AVX-512 hosts,
    ``bench/two_streams_repro.py``) builds one stream of a two-stream model that returns wrong logits
    for every request it runs, from the first one on."""
    if probe is None:
        port = compiled.inputs[0]
        shape = list(port.get_shape())
        rng = np.random.default_rng(0)
        probe = {0: rng.integers(0, 256, shape, dtype=np.uint8)
                 if port.get_element_type() == ov.Type.u8 else (rng.random(shape) * 255).astype(np.float32)}
    return identical(stream_outputs(compiled, streams, probe))


def identical(outputs: list[np.ndarray]) -> bool:
    return all(np.array_equal(outputs[0], o) for o in outputs[1:])


def stream_outputs(compiled: ov.CompiledModel, streams: int, inputs: dict[Any, np.ndarray]) -> list[np.ndarray]:
    """The first output of ``inputs`` run once on every stream. Requests are not tied to streams: an idle
    stream takes the next request waiting, so one request per stream, all started together, puts the
    input through every stream once, in about the time of one window per core."""
    queue = ov.AsyncInferQueue(compiled, streams)
    for _ in range(streams):
        queue.start_async(inputs)
    queue.wait_all()
    return [queue[i].get_output_tensor(0).data.copy() for i in range(streams)]


def label_frame(infer: Callable[[np.ndarray], np.ndarray], frame: np.ndarray, info: ModelInfo,
                stride: int, stitcher: Stitcher, exact: bool = True) -> np.ndarray:
    """One frame window by window through ``infer(window) -> logits``, then stitched: the synchronous
    path. ``exact`` as in ``protocol.scale_frame``."""
    geo, windows = frame_windows(frame, info.short_side, info.long_side_cap, info.window_size, stride, exact)
    return stitcher.labels(np.stack([infer(w) for w in windows]), geo)


def float_input(model: ov.Model) -> ov.Model:
    """The same network taking f32 pixel values (0..255, BGR, NHWC) instead of u8: the converter's IR
    starts with a u8 -> f32 Convert (embedded preprocessing), which is replaced by an f32 parameter."""
    model = model.clone()
    parameter = model.get_parameters()[0]
    consumers = [t.get_node() for t in parameter.output(0).get_target_inputs()]
    if len(consumers) != 1 or consumers[0].get_type_name() != "Convert":
        raise ModelError("this model cannot take float windows (its input is not followed by one Convert); "
                         "reconvert it with 'vidseg convert'")
    pixels = ov.opset13.parameter(parameter.get_partial_shape(), ov.Type.f32, name="image_f32")
    pixels.output(0).get_tensor().set_names({"image_f32"})
    for target in list(consumers[0].output(0).get_target_inputs()):
        target.replace_source_output(pixels.output(0))
    return ov.Model(model.get_results(), [pixels], "segmenter_float_input")
