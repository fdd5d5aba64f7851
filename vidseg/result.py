"""What segmentation gives back: a label map that knows its classes, and the same for a frame of a stream.

A bare array of class ids is not enough to use: every caller would need the model's class table to name
or colour it, and would rewrite the share-per-class count that ``--stats`` already makes. So a result
carries the table and offers those few operations, computed the way the command line computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import VidsegError
from vidseg.files import write_label_png
from vidseg.render import Palette


def class_shares(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of the pixels each class id covers, (n_classes,) float64: the one count every output uses."""
    return np.bincount(labels.ravel(), minlength=n_classes) / max(1, labels.size)


def class_fractions(labels: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Share of the pixels each present class covers, largest first (6 decimals, as ``--stats`` writes)."""
    shares = class_shares(labels, len(class_names))
    order = np.argsort(-shares, kind="stable")
    return {class_names[i]: round(float(shares[i]), 6) for i in order if shares[i]}


@dataclass(frozen=True, eq=False, kw_only=True)
class Result:
    """Labels of one image, at the image's size, with the model's class table.

    >>> result = seg(image)
    >>> result.labels.shape == image.shape[:2], result.labels.dtype
    (True, dtype('uint8'))
    >>> name, share = next(iter(result.fractions().items()))   # the largest class first
    >>> bool(abs(result.mask(name).mean() - share) < 1e-6)   # shares are rounded to 6 decimals
    True
    """

    labels: np.ndarray  # (H, W) uint8 class ids
    palette: Palette = field(repr=False)
    class_names: tuple[str, ...] = field(repr=False)
    rgb: bool = False  # the caller's channel order: colorize() and overlay() answer in it

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        """The class colours as (R, G, B), in class-id order."""
        return [tuple(int(v) for v in c) for c in self.palette.rgb[: len(self.class_names)]]  # type: ignore[misc]

    def fractions(self) -> dict[str, float]:
        """``{class name: share of pixels}`` for the classes present, largest first."""
        return class_fractions(self.labels, self.class_names)

    def class_id(self, name: str) -> int:
        """The id of a class by its full name or any one of its synonyms: ADE20K names are synonym lists
        ("person, individual, someone, ..."), and people type "person". A synonym that two classes share
        ("screen") is an error naming both, as is a name no class has."""
        if name in self.class_names:
            return self.class_names.index(name)
        wanted = name.strip().lower()
        matches = [i for i, n in enumerate(self.class_names) if wanted in (s.strip().lower() for s in n.split(","))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise VidsegError(f"{name!r} names several classes: " + "; ".join(self.class_names[i] for i in matches))
        near = [n.split(",")[0] for n in self.class_names if wanted in n.lower()][:5]
        raise VidsegError(f"no class {name!r} in this model" + (f" (did you mean {', '.join(near)}?)" if near else ""))

    def mask(self, cls: str | int) -> np.ndarray:
        """Boolean (H, W) mask of one class, by name or id."""
        cid = self.class_id(cls) if isinstance(cls, str) else int(cls)
        if not 0 <= cid < len(self.class_names):
            raise VidsegError(f"class id {cid} is outside 0..{len(self.class_names) - 1}")
        return self.labels == cid

    def colorize(self) -> np.ndarray:
        """(H, W, 3) uint8 picture of the labels in the dataset's colours (BGR, or RGB if ``rgb``)."""
        bgr = self.palette.colorize(self.labels)
        return bgr[:, :, ::-1].copy() if self.rgb else bgr

    def overlay(self, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The colours blended over ``image`` (same size and channel order as segmented) at ``alpha``."""
        if image.shape[:2] != self.labels.shape or image.ndim != 3 or image.shape[2] != 3:
            raise VidsegError(f"overlay needs a (H, W, 3) image of the labels' size {self.labels.shape}, "
                              f"got {image.shape}")
        if not 0.0 <= alpha <= 1.0:
            raise VidsegError(f"alpha must be between 0 and 1, got {alpha}")
        bgr = image[:, :, ::-1] if self.rgb else image
        out = self.palette.overlay(np.ascontiguousarray(bgr), self.labels, alpha)
        return out[:, :, ::-1].copy() if self.rgb else out

    def save(self, path: str | Path) -> Path:
        """Write the labels as ``vidseg process --labels`` does: an 8-bit palette PNG, pixel = class id."""
        path = Path(path)
        write_label_png(path, self.labels, self.palette)
        return path


@dataclass(frozen=True, eq=False, kw_only=True)
class FrameResult(Result):
    """One frame of a stream: its labels plus where it came from, in input order.

    >>> for frame in seg.stream(video_path, max_frames=2):
    ...     print(frame.index, frame.time is not None, frame.image.shape == frame.labels.shape + (3,))
    0 True True
    1 True True
    """

    index: int  # 0, 1, 2... in input order
    image: np.ndarray = field(repr=False)  # the frame as decoded (BGR; RGB for rgb=True arrays)
    time: float | None = None  # presentation time in seconds (videos, live sources); None for images
    name: Path | None = None  # images from a folder or glob: path relative to it
    input: str | None = None  # collections: the file this frame belongs to, relative to the collection
    pts: int | None = field(default=None, repr=False)  # timestamp in the source's time base
    rendered: tuple[float, np.ndarray] | None = field(default=None, repr=False)  # (alpha, overlay) if made
    source: Any = field(default=None, repr=False)  # the stream's Source: time base, rate, audio for writers
    audio: list[Any] = field(default_factory=list, repr=False)  # audio packets that precede this frame
    received: float | None = field(default=None, repr=False)  # when the stream read it (time.perf_counter())

    def overlay(self, image: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
        """The colours blended over this frame (or over ``image``); free when the stream already made it."""
        if image is None and self.rendered is not None and self.rendered[0] == alpha:
            return self.rendered[1]
        return super().overlay(self.image if image is None else image, alpha)
