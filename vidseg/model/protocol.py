"""The geometry of Segmenter's evaluation protocol: how a frame is rescaled and cut into windows.

These few rules decide whether our labels match upstream's, so they live in one place, in integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidseg.errors import ImageError

# Windows one frame may need. Only an image dozens of times longer than wide gets near it (a 10:1 panorama
# needs 10), and past it the stitcher's per-axis operator alone would take gigabytes.
MAX_WINDOWS = 64


@dataclass(frozen=True)
class FrameGeometry:
    """Where a frame of a given size goes: its rescaled size and the window grid over it."""

    width: int  # the frame as decoded
    height: int
    scaled_width: int  # the image the windows are cut from
    scaled_height: int
    window: int
    xs: tuple[int, ...]  # window left edges in the scaled image
    ys: tuple[int, ...]  # window top edges

    @property
    def n_windows(self) -> int:
        return len(self.xs) * len(self.ys)


def keep_ratio_size(width: int, height: int, short_side: int, long_cap: int) -> tuple[int, int]:
    """Short side to ``short_side`` unless that would take the long side past ``long_cap``."""
    s = min(long_cap / max(width, height), short_side / min(width, height))
    return max(int(width * s + 0.5), 1), max(int(height * s + 0.5), 1)


def rescaled_size(width: int, height: int, short_side: int, long_cap: int, window: int) -> tuple[int, int]:
    """The size windows are cut from: ``keep_ratio_size``, then, for an image whose short side is still
    below the window (a panorama), upsampled again so that the short side equals the window, the long side
    truncated, exactly as upstream does."""
    w, h = keep_ratio_size(width, height, short_side, long_cap)
    if min(w, h) < window:
        if h < w:
            w, h = int(w / h * window), window
        else:
            w, h = window, int(h / w * window)
    return w, h


def window_starts(length: int, window: int, stride: int) -> tuple[int, ...]:
    """Window offsets along one axis: every ``stride`` while a full window fits, then one flush to the end."""
    return tuple(s for s in range(0, length, stride) if s < length - window) + (length - window,)


def frame_geometry(width: int, height: int, short_side: int, long_cap: int, window: int,
                   stride: int) -> FrameGeometry:
    sw, sh = rescaled_size(width, height, short_side, long_cap, window)
    xs, ys = window_starts(sw, window, stride), window_starts(sh, window, stride)
    if len(xs) * len(ys) > MAX_WINDOWS:
        raise ImageError(f"a {width}x{height} image is too elongated to segment: the protocol would cut it into "
                         f"{len(xs) * len(ys)} windows of {window} px (at most {MAX_WINDOWS})")
    return FrameGeometry(width, height, sw, sh, window, xs, ys)


def scale_frame(frame: np.ndarray, geo: FrameGeometry, short_side: int, long_cap: int,
                exact: bool = True) -> np.ndarray:
    """The frame resized as the protocol says (bilinear, in up to two steps, as upstream).

    The first step resizes 8-bit pixels, as upstream's data loader does. The second (panoramas only)
    happens in upstream on the normalised float image; normalisation is affine per channel, so
    interpolating the 8-bit values in float and normalising afterwards (in the IR) is the same. ``exact``
    keeps that result in float32, the input of the model's float variant; otherwise it is rounded to u8."""
    first = keep_ratio_size(geo.width, geo.height, short_side, long_cap)
    if first != (geo.width, geo.height):
        frame = cv2.resize(frame, first, interpolation=cv2.INTER_LINEAR)
    if first != (geo.scaled_width, geo.scaled_height):
        source = frame.astype(np.float32) if exact else frame
        frame = cv2.resize(source, (geo.scaled_width, geo.scaled_height), interpolation=cv2.INTER_LINEAR)
    return frame


def cut_windows(scaled: np.ndarray, geo: FrameGeometry) -> np.ndarray:
    """(n_windows, window, window, 3) in the scaled image's dtype (u8, or f32 for an exact panorama),
    row-major over (ys, xs): the IR's input layout."""
    w = geo.window
    out = np.empty((geo.n_windows, w, w, 3), dtype=scaled.dtype)
    i = 0
    for y in geo.ys:
        for x in geo.xs:
            out[i] = scaled[y:y + w, x:x + w]
            i += 1
    return out


def frame_windows(frame: np.ndarray, short_side: int, long_cap: int, window: int, stride: int,
                  exact: bool = True) -> tuple[FrameGeometry, np.ndarray]:
    """A decoded BGR frame -> its geometry and the model's NHWC input windows (see ``scale_frame``)."""
    geo = frame_geometry(frame.shape[1], frame.shape[0], short_side, long_cap, window, stride)
    return geo, cut_windows(scale_frame(frame, geo, short_side, long_cap, exact), geo)
