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

from vidseg.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
MAX_PIXELS = 400_000_000  # 20k x 20k; beyond that a label map alone would not fit comfortably

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) u8 BGR in displayed orientation; ``ImageError`` naming the file if it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb8(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: image larger than {MAX_PIXELS:,} pixels") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({str(e).splitlines()[0][:120]})") from None
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
        return _over_black(np.asarray(im.convert("RGBA")))
    return np.asarray(im.convert("RGB"))


def _over_black(four_channels: np.ndarray) -> np.ndarray:
    """Composite colour over black by the last channel (alpha), rounding as one 8-bit blend would."""
    wide = four_channels.astype(np.uint16)
    return ((wide[:, :, :3] * wide[:, :, 3:4] + 127) // 255).astype(np.uint8)


def image_array(image: object, rgb: bool = False) -> np.ndarray:
    """An array from a caller -> (H, W, 3) u8 BGR, treated as ``read_image`` treats files: gray is
    repeated into three channels and a fourth channel is alpha, composited over black. ``ImageError`` says
    what is wrong with anything else, rather than letting a float image or a batch be silently misread."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image (0..255), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"empty image of shape {image.shape}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:  # (R, G, B, A) with rgb=True, otherwise OpenCV's (B, G, R, A)
        image = _over_black(image)
    return np.ascontiguousarray(image[:, :, ::-1] if rgb else image)
