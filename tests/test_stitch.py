"""The stitcher's shortcut gives exactly the labels of the brute-force protocol on the same logits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidseg.model.protocol import frame_geometry, rescaled_size, window_starts
from vidseg.model.stitch import Stitcher

pytestmark = pytest.mark.fast


def brute_force(logits: np.ndarray, geo) -> np.ndarray:
    """Upsample each window, average on a canvas, resize every class to the frame: (C, H, W) float64."""
    n_cls, w = logits.shape[1], geo.window
    canvas = np.zeros((n_cls, geo.scaled_height, geo.scaled_width), np.float64)
    count = np.zeros((geo.scaled_height, geo.scaled_width))
    i = 0
    for y in geo.ys:
        for x in geo.xs:
            for c in range(n_cls):
                canvas[c, y:y + w, x:x + w] += cv2.resize(logits[i, c], (w, w), interpolation=cv2.INTER_LINEAR)
            count[y:y + w, x:x + w] += 1
            i += 1
    canvas /= count
    return np.stack([cv2.resize(canvas[c], (geo.width, geo.height), interpolation=cv2.INTER_LINEAR)
                     for c in range(n_cls)])


def smooth_logits(n: int, n_cls: int, grid: int, seed: int) -> np.ndarray:
    """Spatially coherent logits like a trained model's: few classes, each dominant in a region."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(n, n_cls, 4, 4)).astype(np.float32) * 3
    return np.stack([[cv2.resize(coarse[i, c], (grid, grid), interpolation=cv2.INTER_CUBIC)
                      for c in range(n_cls)] for i in range(n)])


@pytest.mark.parametrize("width,height,stride", [
    (1920, 1080, 512),  # two overlapping windows
    (640, 480, 512),
    (37, 91, 512),  # tiny: upscaled, three windows down a tall strip
    (3000, 400, 512),  # panorama: eight windows
    (1080, 1920, 512),  # portrait
    (800, 600, 256),  # overlapping stride: up to four windows per pixel
    (1, 1, 512),  # a single pixel
])
def test_stitcher_equals_brute_force(width: int, height: int, stride: int) -> None:
    geo = frame_geometry(width, height, 512, 2048, 512, stride)
    logits = smooth_logits(geo.n_windows, 24, 32, seed=width + height)
    stitcher = Stitcher()
    got = stitcher.labels(logits, geo)
    assert got.shape == (height, width) and got.dtype == np.uint8
    assert stitcher.approximate_blocks == 0
    full = brute_force(logits, geo)
    expected = full.argmax(axis=0)
    # Our arithmetic is float32 like upstream's; only exact ties at that precision may go either way.
    differ = got != expected
    rows, cols = np.nonzero(differ)
    gap = full[expected[rows, cols], rows, cols] - full[got[rows, cols], rows, cols]
    assert differ.sum() <= 2 and (gap < 1e-5).all(), f"{differ.sum()} pixels differ, logit gaps {gap}"


def test_window_grid_follows_upstream() -> None:
    assert window_starts(910, 512, 512) == (0, 398)
    assert window_starts(512, 512, 512) == (0,)
    assert window_starts(1200, 512, 256) == (0, 256, 512, 688)
    assert rescaled_size(1920, 1080, 512, 2048, 512) == (910, 512)
    assert rescaled_size(4000, 500, 512, 2048, 512) == (4096, 512)  # capped, then short side back to 512
    assert rescaled_size(90, 70, 512, 2048, 512) == (658, 512)


@pytest.mark.parametrize("width,height,stride", [(1920, 1080, 512), (768, 576, 512), (800, 600, 256)])
def test_update_restitches_exactly_what_changed(width: int, height: int, stride: int) -> None:
    """Reuse between frames: when only some grid cells' logits moved, updating the previous labels gives
    the labels of the new logits, and cells that did not move leave the picture alone."""
    geo = frame_geometry(width, height, 512, 2048, 512, stride)
    before = smooth_logits(geo.n_windows, 24, 32, seed=1)
    after = before.copy()
    changed = np.zeros((geo.n_windows, 32, 32), bool)
    changed[0, 10:18, 4:12] = True  # an object moving through part of the first window
    changed[-1, 25:, 20:] = True
    after[:, :, :, :][np.broadcast_to(changed[:, None], after.shape)] = smooth_logits(
        geo.n_windows, 24, 32, seed=2)[np.broadcast_to(changed[:, None], after.shape)]
    stitcher = Stitcher()
    previous = stitcher.labels(before, geo)
    expected = stitcher.labels(after, geo)
    assert (previous != expected).any()
    assert (stitcher.update(previous, after, geo, changed) == expected).all()
    assert (stitcher.update(previous, before, geo, np.zeros_like(changed)) == previous).all()
    assert (stitcher.update(previous, after, geo, np.ones_like(changed)) == expected).all()
