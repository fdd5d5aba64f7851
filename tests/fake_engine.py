"""A stand-in for the OpenVINO adapter (``vidseg.model.engine.Engine``), for the fast in-process tests of the
pipeline: the same interface (windows, a request queue that calls back from other threads), logits that
follow from the pixels by a rule the tests know, and faults on demand. The real adapter is tested end to
end in the rest of the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vidseg.model.modeldir import ModelInfo
from vidseg.model.protocol import FrameGeometry, frame_windows

WINDOW, PATCH = 64, 16
GRID = WINDOW // PATCH
CLASSES = ["black", "dark", "light", "white"]  # a pixel's class: its blue channel // 64


def info() -> ModelInfo:
    return ModelInfo(name="fake", dataset="fake", class_names=CLASSES,
                     class_colors=[(0, 0, 0), (80, 80, 80), (160, 160, 160), (255, 255, 255)],
                     window_size=WINDOW, window_stride=WINDOW, short_side=WINDOW, long_side_cap=4 * WINDOW,
                     patch_size=PATCH, normalization={}, precision="FP32")


def logits_of(window: np.ndarray) -> np.ndarray:
    """(classes, grid, grid): each patch votes for the class of its mean blue value."""
    blue = window[:, :, 0].astype(np.float32).reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3))
    centres = np.array([32, 96, 160, 224], np.float32)[:, None, None]
    return -np.abs(blue[None] - centres)


class FakeQueue:
    """``WindowQueue``'s interface: ``submit`` runs the window on a pool thread, which calls back."""

    def __init__(self, engine: FakeEngine, on_result: Callable[[Any, np.ndarray], None]):
        self._engine, self._on_result = engine, on_result
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._slots = threading.Semaphore(engine.nireq)
        self.error: BaseException | None = None

    def submit(self, window: np.ndarray, key: Any) -> None:
        self._slots.acquire()
        self._pool.submit(self._run, window, key)

    def _run(self, window: np.ndarray, key: Any) -> None:
        try:
            self._engine.windows_run += 1
            if self._engine.fail_at is not None and self._engine.windows_run > self._engine.fail_at:
                raise RuntimeError("the device went away")
            self._on_result(key, logits_of(window))
        except BaseException as e:  # noqa: BLE001 - as WindowQueue keeps a callback's error
            self.error = self.error or e
        finally:
            self._slots.release()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def wait_all(self) -> None:
        self._pool.shutdown(wait=True)


class FakeEngine:
    """``fail_at``: windows after this many raise, as a device that fails mid-run would."""

    device = "FAKE"
    execution_devices = ["FAKE"]
    cpu_streams = 0
    stream_note = None

    def __init__(self, nireq: int = 2, fail_at: int | None = None):
        self.info = info()
        self.stride, self.grid, self.nireq = WINDOW, GRID, nireq
        self.fail_at = fail_at
        self.windows_run = 0

    def windows(self, frame: np.ndarray) -> tuple[FrameGeometry, np.ndarray]:
        i = self.info
        return frame_windows(frame, i.short_side, i.long_side_cap, i.window_size, self.stride)

    def queue(self, on_result: Callable[[Any, np.ndarray], None]) -> FakeQueue:
        return FakeQueue(self, on_result)
