"""How overlays look and are encoded: the options every overlay output shares, checked in one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseg.errors import VidsegError
from vidseg.outputs.encoder import x264_options
from vidseg.result import FrameResult


@dataclass(frozen=True)
class OverlayOptions:
    """``alpha``: opacity of the class colours over the frame (0..1). ``crf`` and ``preset``: x264's
    quality (0..51, lower is better) and speed/size trade-off, for overlay videos and streams."""

    alpha: float = 0.5
    crf: int = 20
    preset: str = "overlay"

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise VidsegError(f"alpha must be between 0 and 1, got {self.alpha}")
        x264_options(self.preset, self.crf)  # a bad preset or CRF is an error now, not at the first frame

    def bgr(self, frame: FrameResult) -> np.ndarray:
        """The frame's overlay in BGR, as encoders and image files take it (free when the stream made it)."""
        overlay = frame.overlay(alpha=self.alpha)
        return np.ascontiguousarray(overlay[:, :, ::-1]) if frame.rgb else overlay
