"""Checks that a conversion kept the model's behaviour: IR vs PyTorch, and INT8 vs FP32.

The probes are u8 BGR windows, fed to the IR exactly as the runtime will, while PyTorch gets the same
pixels normalised by hand: a mistake in the embedded preprocessing (channel order, mean, scale) shows up
as disagreement here instead of as quietly wrong labels later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openvino as ov
import torch

from convert.checkpoint import NORMALIZATION
from vidseg.errors import VidsegError

MIN_FP32_AGREEMENT = 0.999


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    agreement: float  # fraction of output positions with the same argmax


def probe_windows(window: int, seed: int = 0) -> np.ndarray:
    """Noise, smooth gradients and flat blocks: (3, window, window, 3) u8 BGR."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (window, window, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:window, 0:window] / max(window - 1, 1)
    gradient = (np.stack([xx, yy, (xx + yy) / 2], axis=-1) * 255).astype(np.uint8)
    blocks = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((window // 8 + 1, window // 8 + 1, 1)))
    return np.stack([noise, gradient, blocks[:window, :window].astype(np.uint8)])


def torch_input(windows: np.ndarray, normalization: str) -> torch.Tensor:
    stats = NORMALIZATION[normalization]
    rgb = torch.from_numpy(windows[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(stats["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(stats["std"]).view(1, 3, 1, 1)
    return (rgb - mean) / std


def check_parity(net: torch.nn.Module, ir: ov.Model, normalization: str, window: int) -> Parity:
    windows = probe_windows(window)
    with torch.no_grad():
        expected = net(torch_input(windows, normalization)).numpy()
    compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    got = np.concatenate([request.infer({0: w[None]})[0].copy() for w in windows])
    agreement = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
    return Parity(float(np.abs(got - expected).max()), agreement)


def require_parity(parity: Parity) -> None:
    print(f"verify: IR vs PyTorch max |logit diff| {parity.max_abs_diff:.2e}, "
          f"argmax agreement {parity.agreement:.4%}")
    if parity.agreement < MIN_FP32_AGREEMENT:
        raise VidsegError(f"conversion failed verification: IR agrees with PyTorch on {parity.agreement:.2%} "
                          f"of positions (needs {MIN_FP32_AGREEMENT:.1%})")
