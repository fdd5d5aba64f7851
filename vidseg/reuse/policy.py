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

    threshold: float = 2.0
    refresh: int = 60
    cut_share: float = 0.5
    margin: int = 1  # changed patches also recompute neighbours this many patches away: their context moved

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.refresh < 1 or not 0 < self.cut_share <= 1:
            raise ValueError("reuse threshold must be >= 0, refresh >= 1 and cut share in (0, 1]")


def changed_patches(window: np.ndarray, reference: np.ndarray, patch: int, threshold: float) -> np.ndarray:
    """(rows, cols) True where a patch changed: its mean absolute pixel difference exceeds ``threshold``
    (slow, spread changes: light, noise) or more than 2% of its pixels moved by more than 8x that in
    some channel (small, strong changes: an edge of a moving object entering the patch)."""
    h, w = window.shape[:2]
    diff = np.abs(window.astype(np.int16) - reference.astype(np.int16))
    cells = diff.reshape(h // patch, patch, w // patch, patch, -1)
    mean = cells.mean(axis=(1, 3, 4), dtype=np.float32)
    strong = (cells.max(axis=4) > 8 * threshold).mean(axis=(1, 3), dtype=np.float32)
    return (mean > threshold) | (strong > 0.02)


def grow(changed: np.ndarray, margin: int) -> np.ndarray:
    """``changed`` and every patch within ``margin`` patches of a changed one."""
    if margin == 0 or not changed.any():
        return changed
    k = 2 * margin + 1
    return cv2.dilate(changed.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)


def tokens_for(changed: np.ndarray) -> np.ndarray:
    """Encoder sequence indices of the changed patches, class token first; at least one patch, because
    the model's decoder takes the selected patch rows and an empty selection has no shape to run."""
    patches = np.flatnonzero(changed.ravel())
    if patches.size == 0:
        patches = np.array([0])
    return np.concatenate([[0], patches + 1]).astype(np.int64)
