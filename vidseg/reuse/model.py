"""The token-reuse IR on OpenVINO: one infer request per window position, holding that window's state.

A window's run depends on its previous run, so each window position owns a request and two sets of state
buffers: a run reads set A and writes set B, the next one reads B and writes A. The buffers are shared with
OpenVINO (no copies), and a run waits for the previous one of the same window before it starts; windows
of one frame still run concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import openvino as ov

from vidseg.errors import ModelError

REUSE_IR_NAME = "model_reuse.xml"


class WindowState:
    """One window position's infer request, state buffers, and the pixels each patch was computed from."""

    def __init__(self, compiled: ov.CompiledModel, on_done: Callable[[Any, np.ndarray], None],
                 on_error: Callable[[BaseException], None]):
        state_inputs = [p for p in compiled.inputs if p.get_any_name() not in ("image", "tokens")]
        self._names = [p.get_any_name() for p in state_inputs]
        self._buffers = [[ov.Tensor(np.zeros(tuple(p.get_shape()), np.float32), shared_memory=True)
                          for p in state_inputs] for _ in range(2)]
        self._request = compiled.create_infer_request()
        self._request.set_callback(self._callback, None)
        self._side = 0
        self._on_done, self._on_error = on_done, on_error
        self._key: Any = None
        self._window: np.ndarray | None = None
        self.reference: np.ndarray | None = None  # pixels as last computed, per patch
        self.logits: np.ndarray | None = None  # the last run's output

    def _callback(self, _: Any) -> None:
        try:
            self.logits = self._request.get_output_tensor(0).data[0].copy()
            self._on_done(self._key, self.logits)
        except BaseException as e:  # noqa: BLE001 - OpenVINO's thread would swallow it
            self._on_error(e)

    def wait(self) -> None:
        self._request.wait()

    def run(self, window: np.ndarray, tokens: np.ndarray, key: Any) -> None:
        """Start recomputing ``tokens`` of this window; the result comes to ``on_done(key, logits)``."""
        self._request.wait()
        src, dst = self._buffers[self._side], self._buffers[1 - self._side]
        self._window, self._key = window[None], key
        self._request.set_tensor("image", ov.Tensor(self._window, shared_memory=True))
        self._request.set_tensor("tokens", ov.Tensor(tokens))
        for i, name in enumerate(self._names):
            self._request.set_tensor(name, src[i])
            self._request.set_output_tensor(i + 1, dst[i])
        self._side = 1 - self._side
        self._request.start_async()


class ReuseModel:
    """The compiled token-reuse IR of a model directory, and the window states of one run."""

    def __init__(self, compiled: ov.CompiledModel):
        names = [p.get_any_name() for p in compiled.inputs]
        if names[:2] != ["image", "tokens"]:
            raise ModelError(f"{REUSE_IR_NAME} is not a token-reuse model (inputs {names})")
        self.compiled = compiled
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def window_state(self, on_done: Callable[[Any, np.ndarray], None]) -> WindowState:
        return WindowState(self.compiled, on_done, self._fail)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self.error = self.error or error

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
