"""Colouring label maps: one 256-entry lookup table per dataset, blended over the frame."""

from __future__ import annotations

import cv2
import numpy as np


class Palette:
    def __init__(self, colors_rgb: list[tuple[int, int, int]]):
        rgb = np.zeros((256, 3), dtype=np.uint8)
        rgb[: len(colors_rgb)] = np.asarray(colors_rgb, dtype=np.uint8)
        self.rgb = rgb  # for PNG palettes
        self._lut = np.ascontiguousarray(rgb[:, ::-1]).reshape(256, 1, 3)  # BGR

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        # One channel in, three out: several times cheaper than cv2.LUT on a three-channel copy.
        return cv2.applyColorMap(labels, self._lut)

    def overlay(self, frame: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
        return cv2.addWeighted(frame, 1.0 - alpha, self.colorize(labels), alpha, 0.0)
