"""Reading still images the way a person sees them, as 8-bit BGR.

Pillow rather than ``cv2.imread``: it reports what it cannot read instead of returning None, applies the
EXIF orientation (labels must match the displayed photo), and exposes alpha, 16-bit and CMYK data so each
can be converted deliberately. Transparent pixels are composited over black.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vidseg.errors import VidsegError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
MAX_PIXELS = 400_000_000  # 20k x 20k; beyond that a label map alone would not fit comfortably

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) u8 BGR in displayed orientation; ``VidsegError`` naming the file if it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb8(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise VidsegError(f"{path}: image larger than {MAX_PIXELS:,} pixels") from None
    except FileNotFoundError:
        raise VidsegError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise VidsegError(f"{path}: not a readable image ({str(e).splitlines()[0][:120]})") from None
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if a.max() > 255 else 255.0
        gray = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        span = max(a.max() - a.min(), 1e-12)
        gray = ((a - a.min()) / span * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:4]
        return ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return np.asarray(im.convert("RGB"))
