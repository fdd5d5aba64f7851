"""Which tokens a frame recomputes: the decision rules of reuse, on pixels only (no model involved)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidseg.errors import VidsegError


@dataclass(frozen=True)
class ReusePolicy:
    """``threshold``: a patch is recomputed when its pixels (averaged over 8x8 blocks) differ from those it
    was last computed from by more than this mean absolute difference (0-255 levels, all channels); lower
    is closer to exact.
    ``refresh``: every window is recomputed in full at least every this many frames. ``cut_share``: a
    frame whose changed patches exceed this share is recomputed in full (scene cuts, fast pans), which
    is also cheaper than a large partial run."""

    threshold: float = 0.8
    refresh: int = 60
    cut_share: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise VidsegError(f"reuse threshold must be >= 0, got {self.threshold:g}")
        if self.refresh < 1:
            raise VidsegError(f"reuse refresh must be at least 1 frame, got {self.refresh}")
        if not 0 < self.cut_share <= 1:
            raise VidsegError(f"reuse cut share must be in (0, 1], got {self.cut_share:g}")


AVERAGED = 8  # pixels per side averaged before change is measured: 2x2 cells per 16-pixel patch


def summary(window: np.ndarray, patch: int) -> np.ndarray:
    """What change is measured on: the window's 8x8-pixel block means (float32; INTER_AREA at an integer
    factor is the exact block mean, taken in two steps). Sensor and compression noise mostly averages out
    while anything several pixels across still shows: for the same agreement with the exact labels, block
    means need fewer tokens recomputed than raw pixels do (docs/reuse.md has the figures)."""
    f = _block(patch)
    h, w = window.shape[:2]
    half = max(f // 2, 1)  # the u8 step first (OpenCV's fast path), then in float: no rounding at the end
    coarse = cv2.resize(window, (w // half, h // half), interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.resize(coarse, (w // f, h // f), interpolation=cv2.INTER_AREA)


def _block(patch: int) -> int:
    return AVERAGED if patch % AVERAGED == 0 else 1


def changed_patches(current: np.ndarray, reference: np.ndarray, patch: int, threshold: float) -> np.ndarray:
    """(rows, cols) True for the patches to recompute, from two ``summary`` images of windows with
    ``patch``-pixel patches. A patch changed when its mean absolute difference exceeds ``threshold`` (slow,
    spread changes: light) or more than 2% of it moved by more than 8x that in some channel (strong,
    local changes: a moving edge)."""
    cell = patch // _block(patch)
    grid = (current.shape[1] // cell, current.shape[0] // cell)
    diff = cv2.absdiff(current, reference)
    mean = cv2.resize(diff.mean(axis=2), grid, interpolation=cv2.INTER_AREA)
    moved = diff.max(axis=2) > 8 * threshold
    strong = cv2.resize(moved.astype(np.float32), grid, interpolation=cv2.INTER_AREA) > 0.02
    return (mean > threshold) | strong


def tokens_for(changed: np.ndarray) -> np.ndarray:
    """Encoder sequence indices of the changed patches (at least one: a window with none is not run),
    class token first."""
    patches = np.flatnonzero(changed.ravel())
    return np.concatenate([[0], patches + 1]).astype(np.int64)
