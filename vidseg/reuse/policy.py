"""Which tokens a frame recomputes: the decision rules of reuse, on pixels only (no model involved)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ReusePolicy:
    """``threshold``: a patch is recomputed when its pixels differ from those it was last computed from
    by more than this mean absolute difference (0-255 levels, all channels); lower is closer to exact.
    ``refresh``: every window is recomputed in full at least every this many frames. ``cut_share``: a
    frame whose changed patches exceed this share is recomputed in full (scene cuts, fast pans), which
    is also cheaper than a large partial run."""

    threshold: float = 1.5
    refresh: int = 60
    cut_share: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.refresh < 1 or not 0 < self.cut_share <= 1:
            raise ValueError("reuse threshold must be >= 0, refresh >= 1 and cut share in (0, 1]")


def changed_patches(window: np.ndarray, reference: np.ndarray, patch: int, threshold: float) -> np.ndarray:
    """(rows, cols) True for the patches to recompute. A patch changed when its mean absolute pixel
    difference exceeds ``threshold`` (slow, spread changes: light, noise) or more than 2% of its pixels
    moved by more than 8x that in some channel (strong, local changes: a moving edge)."""
    grid = (window.shape[1] // patch, window.shape[0] // patch)
    diff = cv2.absdiff(window, reference)
    channels = cv2.split(diff)
    # INTER_AREA at an integer factor is the exact patch mean
    total = cv2.add(cv2.add(channels[0], channels[1], dtype=cv2.CV_16U), channels[2], dtype=cv2.CV_16U)
    mean = cv2.resize(total.astype(np.float32), grid, interpolation=cv2.INTER_AREA) / 3
    moved = cv2.max(cv2.max(channels[0], channels[1]), channels[2]) > 8 * threshold
    strong = cv2.resize(moved.astype(np.float32), grid, interpolation=cv2.INTER_AREA) > 0.02
    return (mean > threshold) | strong


def tokens_for(changed: np.ndarray) -> np.ndarray:
    """Encoder sequence indices of the changed patches (at least one: a window with none is not run),
    class token first."""
    patches = np.flatnonzero(changed.ravel())
    return np.concatenate([[0], patches + 1]).astype(np.int64)
