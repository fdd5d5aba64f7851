"""INT8 post-training quantisation with NNCF, calibrated on the user's own footage.

Calibration windows are produced exactly as the runtime produces them (same decoder, same protocol
rescale, same u8 BGR windows), so the statistics NNCF collects are those of real inference. A share of the
frames is held out and segmented by both IRs to report how often INT8 labels agree with FP32 labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nncf
import numpy as np
import openvino as ov

from vidseg.errors import VidsegError
from vidseg.inputs.sources import open_source
from vidseg.model.engine import label_frame
from vidseg.model.modeldir import ModelInfo
from vidseg.model.protocol import frame_windows
from vidseg.model.stitch import Stitcher


@dataclass(frozen=True)
class Agreement:
    frames: int
    mean: float
    worst: float


def sample_frames(path: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` frames spread over a video, an image folder or a single image."""
    source = open_source(str(path))
    total = source.frame_count or count
    step = max(1, total // count)
    frames = [f.image for i, f in enumerate(source.frames()) if i % step == 0]
    if not frames:
        raise VidsegError(f"no frames could be read from calibration input {path}")
    return frames[:count]


def calibration_windows(frames: list[np.ndarray], info: ModelInfo) -> list[np.ndarray]:
    # exact=False: u8 windows for every frame (a panorama's float windows, rounded), as the IR takes them.
    return [w[None] for f in frames for w in frame_windows(f, info.short_side, info.long_side_cap,
                                                           info.window_size, info.window_stride, False)[1]]


def quantize(model: ov.Model, frames: list[np.ndarray], info: ModelInfo) -> ov.Model:
    windows = calibration_windows(frames, info)
    return nncf.quantize(model, nncf.Dataset(windows), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(windows))


def quantize_reuse(model: ov.Model, frames: list[np.ndarray], info: ModelInfo) -> ov.Model:
    """The token-reuse IR quantised on the same windows, each computed in full (every token, state from
    nothing), so that its statistics are those of the plain model's calibration."""
    windows = calibration_windows(frames, info)
    state = {p.get_any_name(): np.zeros(tuple(p.get_shape()), np.float32) for p in model.inputs[2:]}
    tokens = np.arange(next(iter(state.values())).shape[2], dtype=np.int64)
    items = [{"image": w, "tokens": tokens, **state} for w in windows]
    return nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(items))


def label_agreement(fp32: ov.Model, int8: ov.Model, frames: list[np.ndarray], info: ModelInfo) -> Agreement:
    core = ov.Core()
    # f32 as the runtime runs it: the CPU plugin would otherwise pick bf16 where the CPU has it.
    requests = [core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
                for m in (fp32, int8)]
    stitcher = Stitcher()
    scores = []
    for frame in frames:
        fp32_labels, int8_labels = (label_frame(lambda w, r=r: r.infer({0: w[None]})[0][0].copy(), frame, info,
                                                info.window_stride, stitcher, exact=False) for r in requests)
        scores.append(float((fp32_labels == int8_labels).mean()))
    return Agreement(len(scores), float(np.mean(scores)), float(np.min(scores)))


SPEED_NOISE = 0.05  # a few seconds of timing: closer than this, neither model is called the faster


@dataclass(frozen=True)
class Speed:
    fp32: float  # windows/s
    int8: float

    def verdict(self, flags_advice: str) -> str:
        ratio = self.int8 / self.fp32
        head = f"int8: speed on this CPU: FP32 {self.fp32:.2f} windows/s, INT8 {self.int8:.2f} windows/s"
        if ratio >= 1.0 + SPEED_NOISE:
            return f"{head}: INT8 is {ratio:.2f}x faster here"
        if ratio > 1.0 - SPEED_NOISE:
            return (f"{head}: INT8 gains nothing here ({ratio:.2f}x FP32, within this timing's noise): "
                    f"{flags_advice}. The FP32 model, whose labels are upstream's, is the better choice")
        return (f"{head}: INT8 is SLOWER here ({ratio:.2f}x FP32): {flags_advice}. "
                "Keep using the FP32 model on this machine")


def window_speed(fp32: ov.Model, int8: ov.Model, info: ModelInfo, windows: int = 12) -> Speed:
    """Windows per second of both IRs on this CPU, as the runtime runs them (f32 arithmetic, one stream,
    the throughput hint, an asynchronous queue): a few seconds, so every INT8 conversion ends with it."""
    core = ov.Core()
    w = info.window_size
    sample = np.random.default_rng(0).integers(0, 256, (1, w, w, 3), dtype=np.uint8)
    speeds = []
    for model in (fp32, int8):
        model = model.clone()
        model.reshape({model.inputs[0]: [1, w, w, 3]})
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 1,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
        queue = ov.AsyncInferQueue(compiled, 2)
        for _ in range(2):  # warm-up
            queue.start_async({0: sample})
        queue.wait_all()
        started = time.perf_counter()
        for _ in range(windows):
            queue.start_async({0: sample})
        queue.wait_all()
        speeds.append(windows / (time.perf_counter() - started))
    return Speed(*speeds)
