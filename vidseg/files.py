"""Files that appear under their final name only when complete: written to a hidden temporary name and
renamed, so a run that dies leaves only valid files and, at worst, a ``.partial`` one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from vidseg.errors import VidsegError
from vidseg.render import Palette


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling to write to; renamed over ``path`` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_label_png(path: Path, labels: np.ndarray, palette: Palette) -> None:
    """8-bit palette PNG: pixel value = class id, the dataset's colours as the palette."""
    image = Image.fromarray(labels)
    image.putpalette(palette.rgb.tobytes())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)


def write_image(path: Path, bgr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(path.suffix or ".png", bgr)
        if not ok:
            raise VidsegError(f"cannot encode {path}")
        tmp.write_bytes(data.tobytes())


def labels_json(class_names: list[str], palette: Palette) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "color": [int(c) for c in palette.rgb[i]]} for i, n in enumerate(class_names)]
