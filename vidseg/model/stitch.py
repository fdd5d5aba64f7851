"""Window logits -> full-resolution label map: upstream's protocol, exactly, at a fraction of its cost.

Upstream upsamples every window's logits to 512x512, averages overlapping windows on a canvas, resizes the
canvas to the frame (150 x 1080 x 1920 floats for 1080p) and takes the argmax. Each step is linear and
separable, so class c's logit at output pixel (Y, X) is exactly

    L_c(Y, X) = Ay[Y] @ G_c @ Ax[X]

with G_c the patch-grid logits of all windows side by side (32 x 64 for 1080p) and Ay, Ax one small matrix
per axis folding window upsampling, overlap averaging and the final resize together.

Between the operator's kinks (near grid points and window edges) each row of Ay is an affine function of Y,
and likewise for Ax. Cutting each axis into the runs of pixels between kinks gives blocks inside which every
class's logit is bilinear: a convex mix of its values at the block's four corners (its end pixels). So:

* the logits of all classes are computed only on the lattice of block corners (a few thousand points);
* a block whose four corners have the same winner has that winner at every pixel (differences of
  bilinear functions that are positive at the corners are positive inside), with no further arithmetic;
* in the other blocks a class below another at all four corners is below it everywhere in the block, so
  only the classes no corner's winner beats that way can win (two in most blocks); their exact logits at
  each pixel are interpolated from the corners and compared, one class at a time, for all blocks of one
  height and candidate count together.

Nothing is approximated unless a block has more than ``max_candidates`` such classes (random-weight models;
trained ones do not do this): those blocks keep the best classes by corner value and are counted in
``Stitcher.approximate_blocks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vidseg.model.protocol import FrameGeometry

MAX_BLOCK = 32  # longest block edge in output pixels: bounds the work in a boundary block
REGION = 64  # output pixels per side of the regions used to rule classes out before any interpolation


def interpolation_matrix(out_len: int, in_len: int) -> np.ndarray:
    """(out_len, in_len) bilinear weights, align_corners=False with edge clamping (as torch and OpenCV)."""
    src = np.maximum((np.arange(out_len) + 0.5) * (in_len / out_len) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    frac = src - i0
    m = np.zeros((out_len, in_len))
    rows = np.arange(out_len)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def axis_operator(out_len: int, scaled_len: int, starts: tuple[int, ...], window: int, grid: int) -> np.ndarray:
    """(out_len, len(starts) * grid): window upsampling, overlap averaging and final resize on one axis."""
    up = interpolation_matrix(window, grid)
    canvas = np.zeros((scaled_len, len(starts) * grid))
    count = np.zeros(scaled_len)
    for k, s in enumerate(starts):
        canvas[s:s + window, k * grid:(k + 1) * grid] += up
        count[s:s + window] += 1
    return interpolation_matrix(out_len, scaled_len) @ (canvas / count[:, None])


@dataclass(frozen=True)
class AxisBlocks:
    """One axis cut into runs of pixels on which its operator is affine, each with its own two corners: its
    first and last pixel. Neighbouring blocks share no corner, so a kink between two pixels costs no block."""

    starts: np.ndarray  # (n_blocks,) first pixel of each block
    lengths: np.ndarray  # (n_blocks,) pixels in each block
    first: np.ndarray  # (n_blocks,) row of ``weights`` at each block's first pixel
    last: np.ndarray  # (n_blocks,) and at its last pixel
    weights: np.ndarray  # (n_points, grid) rows of the operator at the blocks' end pixels, float32

    @property
    def touches(self) -> np.ndarray:
        """(n_blocks, grid) True where a block draws on a grid cell (weights are non-negative, so a cell
        that weighs on a pixel inside weighs on an end pixel)."""
        nonzero = self.weights != 0
        return nonzero[self.first] | nonzero[self.last]

    @classmethod
    def from_operator(cls, op: np.ndarray) -> AxisBlocks:
        n = op.shape[0]
        bends = np.abs(op[2:] - 2 * op[1:-1] + op[:-2]).max(axis=1) > 1e-9  # bends[i - 1]: a kink at pixel i
        lengths: list[int] = []
        a = 0
        while a < n:  # maximal affine runs, each split evenly so that no block is longer than MAX_BLOCK
            b = a + 1
            while b < n - 1 and not bends[b - 1]:
                b += 1
            run = min(b, n - 1) - a + 1
            parts = -(-run // MAX_BLOCK)
            lengths += [run // parts + (i < run % parts) for i in range(parts)]
            a += run
        size = np.array(lengths)
        starts = np.cumsum(size) - size
        points, index = np.unique(np.concatenate([starts, starts + size - 1]), return_inverse=True)
        return cls(starts, size, index[:len(size)], index[len(size):], op[points].astype(np.float32))


def region_support(op: np.ndarray, size: int = REGION) -> np.ndarray:
    """(regions, width) grid indices each run of ``size`` output pixels draws on, padded by repetition."""
    supports = [np.flatnonzero(op[i:i + size].any(axis=0)) for i in range(0, op.shape[0], size)]
    width = max(len(s) for s in supports)
    return np.array([np.pad(s, (0, width - len(s)), mode="edge") for s in supports])


def region_blocks(blocks: AxisBlocks, size: int = REGION) -> tuple[np.ndarray, np.ndarray]:
    """The first and last block with pixels in each run of ``size`` output pixels. Blocks are at most
    MAX_BLOCK <= ``size`` long, so a region's last block is at most the next region's first."""
    ends = blocks.starts + blocks.lengths
    lo = np.arange(0, ends[-1], size)
    return np.searchsorted(ends, lo, side="right"), np.searchsorted(blocks.starts, lo + size) - 1


def region_min(values: np.ndarray, span: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    """Minimum over each region's blocks along ``axis`` (regions from ``region_blocks``)."""
    first, last = span
    return np.minimum(np.minimum.reduceat(values, first, axis=axis), np.take(values, last, axis=axis))


@dataclass(frozen=True)
class Plan:
    """Everything about a frame geometry that does not depend on the logits."""

    rows: AxisBlocks
    cols: AxisBlocks
    row_support: np.ndarray
    col_support: np.ndarray
    row_blocks: tuple[np.ndarray, np.ndarray]
    col_blocks: tuple[np.ndarray, np.ndarray]


@lru_cache(maxsize=8)
def _plan(geo: FrameGeometry, grid: int) -> Plan:
    ay = axis_operator(geo.height, geo.scaled_height, geo.ys, geo.window, grid)
    ax = axis_operator(geo.width, geo.scaled_width, geo.xs, geo.window, grid)
    rows, cols = AxisBlocks.from_operator(ay), AxisBlocks.from_operator(ax)
    return Plan(rows, cols, region_support(ay), region_support(ax), region_blocks(rows), region_blocks(cols))


def corner_logits(g: np.ndarray, plan: Plan) -> np.ndarray:
    """(row points, column points, C): every class's exact logits at the block corners, classes last."""
    n_cls, gh, gw = g.shape
    px = len(plan.cols.weights)
    cols_first = (g.reshape(-1, gw) @ plan.cols.weights.T).reshape(n_cls, gh, px).transpose(1, 2, 0).reshape(gh, -1)
    return (plan.rows.weights @ cols_first).reshape(len(plan.rows.weights), px, n_cls)


def possible_winners(g: np.ndarray, plan: Plan) -> np.ndarray:
    """Classes that can be the argmax somewhere. Pixels mix their region's support values convexly, so a
    class whose highest value on a region's support is below a floor that the best class is known to reach
    at every pixel of the region cannot win there. Two floors, the higher kept: another class's lowest
    value on the support; and, for the classes on top at some grid cell (the leaders), the lowest corner of
    each block, best leader per block, worst block touching the region (a bilinear block stays above its
    lowest corner)."""
    leaders = np.flatnonzero((g == g.max(axis=0)).any(axis=(1, 2)))
    corners = corner_logits(g[leaders], plan)
    by, bx = plan.rows, plan.cols
    edge_low = np.minimum(corners[by.first], corners[by.last])  # (block rows, column points, leaders)
    block_floor = np.minimum(edge_low[:, bx.first], edge_low[:, bx.last]).max(axis=2)  # (block rows, block cols)
    floor = region_min(region_min(block_floor, plan.col_blocks, 1), plan.row_blocks, 0)  # (RY, RX)
    # A class below the lowest floor at every grid cell wins nowhere. Dropping those first (most of the 150)
    # halves the cost of the per-region bounds, which grows with the classes they look at, and keeps the
    # same classes: a dropped class's lowest values are below every floor, so they never set the other one.
    rest = np.flatnonzero(g.max(axis=(1, 2)) >= floor.min())
    rows = g[rest][:, plan.row_support, :]  # (C', RY, SY, GW)
    high = rows.max(axis=2)[:, :, plan.col_support].max(axis=3)  # (C', RY, RX)
    low = rows.min(axis=2)[:, :, plan.col_support].min(axis=3)
    return rest[(high >= np.maximum(low.max(axis=0), floor)).any(axis=(1, 2))]


def to_pixels(per_block: np.ndarray, rows: AxisBlocks, cols: AxisBlocks) -> np.ndarray:
    """A value per block spread over the block's pixels. Columns first: repeating whole rows afterwards is
    row copies, where the other order repeats every element (several times slower)."""
    return np.repeat(np.repeat(per_block, cols.lengths, axis=1), rows.lengths, axis=0)


class Stitcher:
    """Turns a frame's window logits into its label map (u8 class ids at the frame's size)."""

    def __init__(self, max_candidates: int = 32):
        self.max_candidates = max_candidates
        self.approximate_blocks = 0

    def labels(self, logits: np.ndarray, geo: FrameGeometry) -> np.ndarray:
        """``logits``: (n_windows, n_cls, g, g) float32, windows row-major over (ys, xs)."""
        return self._stitch(logits, geo)

    def update(self, labels: np.ndarray, logits: np.ndarray, geo: FrameGeometry,
               changed: np.ndarray) -> np.ndarray:
        """Labels of a frame whose logits moved only at the ``changed`` (n_windows, g, g) grid cells (reuse
        between frames): blocks that draw on no changed cell keep ``labels``, the others are stitched as
        ``labels()`` would. Exact when nothing else moved."""
        grid = changed.shape[1]
        ny, nx = len(geo.ys), len(geo.xs)
        cells = changed.reshape(ny, nx, grid, grid).transpose(0, 2, 1, 3).reshape(ny * grid, nx * grid)
        plan = _plan(geo, grid)
        return self._stitch(logits, geo, (plan.rows.touches.astype(np.float32) @ cells.astype(np.float32)
                                          @ plan.cols.touches.T.astype(np.float32)) > 0, labels)

    def _stitch(self, logits: np.ndarray, geo: FrameGeometry, redo: np.ndarray | None = None,
                previous: np.ndarray | None = None) -> np.ndarray:
        n_cls, grid = logits.shape[1], logits.shape[2]
        plan = _plan(geo, grid)
        by, bx = plan.rows, plan.cols
        ny, nx = len(geo.ys), len(geo.xs)
        g = logits.reshape(ny, nx, n_cls, grid, grid).transpose(2, 0, 3, 1, 4).reshape(n_cls, ny * grid, nx * grid)
        if redo is not None and not redo.any():
            return previous.copy()
        keep = possible_winners(g, plan)  # trained models: a handful of the 150 classes per frame
        lattice = corner_logits(g[keep], plan)

        win = lattice.argmax(axis=2)
        top, bottom = win[by.first], win[by.last]
        tl, tr, bl, br = top[:, bx.first], top[:, bx.last], bottom[:, bx.first], bottom[:, bx.last]
        boundary = (tl != tr) | (tl != bl) | (tl != br)
        fill = keep.astype(np.uint8)[tl]
        labels = to_pixels(fill, by, bx)
        if redo is not None:
            boundary &= redo
            keep_old = to_pixels(~redo, by, bx)
            np.copyto(labels, previous, where=keep_old)
        rows, cols = np.nonzero(boundary)
        if len(rows):
            self._resolve(lattice, by, bx, rows, cols, labels, keep.astype(np.uint8))
        return labels

    def _resolve(self, lattice: np.ndarray, by: AxisBlocks, bx: AxisBlocks, rows: np.ndarray,
                 cols: np.ndarray, labels: np.ndarray, class_ids: np.ndarray) -> None:
        """Exact per-pixel argmax in boundary blocks, over the classes that can win there."""
        top, bottom, left, right = by.first[rows], by.last[rows], bx.first[cols], bx.last[cols]
        corners = np.stack([lattice[top, left], lattice[top, right], lattice[bottom, left],
                            lattice[bottom, right]], axis=1)  # (n, 4, C)
        best = corners.max(axis=1)  # (n, C)
        possible = best >= corners.min(axis=1).max(axis=1, keepdims=True)  # beats the best worst corner
        live = possible.sum(axis=1)
        over = np.flatnonzero(live > self.max_candidates)
        self.approximate_blocks += len(over)
        if len(over):  # random-weight models only: keep the classes with the best corners
            top_k = np.argpartition(-best[over], self.max_candidates - 1, axis=1)[:, :self.max_candidates]
            possible[over] = False
            possible[over[:, None], top_k] = True
            live[over] = self.max_candidates
        # Each block's candidates in ascending class order (ties go to the lower id, as upstream's argmax).
        block, cls = np.nonzero(possible)
        k_max = int(live.max())
        cand = np.zeros((len(rows), k_max), np.int64)
        cand[block, np.arange(len(block)) - np.repeat(np.cumsum(live) - live, live)] = cls
        values = np.take_along_axis(corners, cand[:, None, :], axis=2)  # (n, 4, k_max)
        # Classes a corner's winner beats at all four corners drop out (see the module's docstring).
        winners = np.take_along_axis(values, values.argmax(axis=2)[:, None, :], axis=2)  # (n, corner, winner)
        out = (winners[:, :, :, None] > values[:, :, None, :]).all(axis=1).any(axis=1)
        out |= np.arange(k_max) >= live[:, None]
        order = np.argsort(out, axis=1, kind="stable")  # the rest first, still ascending
        names = class_ids[np.take_along_axis(cand, order, axis=1)]
        values = np.take_along_axis(values, order[:, None, :], axis=2)
        live = k_max - out.sum(axis=1)
        # Blocks of one height and candidate count are laid side by side in a strip, so that a frame is a few
        # dozen array operations whatever its blocks. Past four candidates the count is rounded up to a power
        # of two: the classes that pad a block are ones it has ruled out, harmless in the argmax.
        k_bucket = np.where(live <= 4, live, np.minimum(1 << np.ceil(np.log2(live)).astype(np.int64), k_max))
        height = by.lengths[rows]
        span = int(height.max()) + 1
        groups, group = np.unique(k_bucket * span + height, return_inverse=True)
        flat, width = labels.reshape(-1), labels.shape[1]
        for gi, key in enumerate(groups):
            idx = np.flatnonzero(group == gi)
            k, h = divmod(int(key), span)
            w = bx.lengths[cols[idx]]
            block_of = np.repeat(np.arange(len(idx)), w)  # strip column -> block
            x = np.arange(len(block_of)) - np.repeat(np.cumsum(w) - w, w)  # column inside its block
            t = (x / np.maximum(w - 1, 1)[block_of]).astype(np.float32)[:, None]
            s = (np.arange(h) / max(h - 1, 1)).astype(np.float32)[:, None]
            v = values[idx, :, :k]
            slope = np.repeat(np.stack([v[:, 1] - v[:, 0], v[:, 3] - v[:, 2]], axis=1), w, axis=0)
            start = np.repeat(v[:, ::2], w, axis=0)  # (strip, 2, k): top-left and bottom-left corners
            edges = start + t[:, :, None] * slope  # each class along the block's top and bottom edge
            upper, lower = edges[:, 0], edges[:, 1]
            ids = np.repeat(names[idx, :k], w, axis=0)
            if k == 2:  # two candidates (most blocks): the sign of their difference, also bilinear
                d_up, d_low = upper[:, 1] - upper[:, 0], lower[:, 1] - lower[:, 0]
                # d_up + s * (d_low - d_up) > 0, one array pass fewer: a float sum keeps its sign
                win = np.where(s * (d_low - d_up) > -d_up, ids[:, 1], ids[:, 0])
            else:  # running argmax, one class at a time: the block is bilinear, so exact
                best_pix = upper[:, 0] + s * (lower[:, 0] - upper[:, 0])  # (h, strip)
                win = np.repeat(ids[None, :, 0], h, axis=0)
                for j in range(1, k):
                    pix = upper[:, j] + s * (lower[:, j] - upper[:, j])
                    np.copyto(win, ids[:, j], where=pix > best_pix)
                    np.maximum(best_pix, pix, out=best_pix)
            # Row r of a block starting at flat offset o is at o + r * width: one column index serves all rows.
            rows_view = np.ndarray((h, flat.size - (h - 1) * width), np.uint8, flat, strides=(width, 1))
            rows_view[:, (by.starts[rows[idx]] * width + bx.starts[cols[idx]])[block_of] + x] = win
