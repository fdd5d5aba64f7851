"""The token-reuse IR on OpenVINO: compiled once, with a bounded token axis, one state per window position.

A selection runs at its own token count: on OpenVINO 2026.4's CPU plugin a bounded dynamic axis with the
count changing every run costs no more than static shapes do (which need padding to a compiled size;
docs/performance.md has the figures) and takes one compiled model's memory instead of one per size.

A window's run depends on its previous run, so each window position owns two sets of state buffers: a run
reads set A and writes set B, the next one reads B and writes A. The buffers are shared with OpenVINO (no
copies), and a run waits for the previous one of the same window before it starts; windows of one frame
still run concurrently.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import openvino as ov

from vidseg.errors import ModelError
from vidseg.model.engine import Engine

REUSE_IR_NAME = "model_reuse.xml"


_compiled: weakref.WeakKeyDictionary[Engine, ReuseModel] = weakref.WeakKeyDictionary()
_compiled_lock = threading.Lock()


class ReuseModel:
    """The token-reuse IR of a model directory, compiled for the engine's device."""

    @classmethod
    def of(cls, engine: Engine) -> ReuseModel:
        """The engine's reuse model, compiled the first time a stream asks: streams sharing an engine
        share it, as they share the plain model."""
        with _compiled_lock:
            if engine not in _compiled:
                _compiled[engine] = cls(engine)
            return _compiled[engine]

    def __init__(self, engine: Engine):
        model = engine.read_variant(REUSE_IR_NAME)
        names = [p.get_any_name() for p in model.inputs]
        if names[:2] != ["image", "tokens"]:
            raise ModelError(f"{REUSE_IR_NAME} is not a token-reuse model (inputs {names})")
        self.state_shapes = [tuple(p.get_partial_shape().to_shape()) for p in model.inputs[2:]]
        self.tokens = self.state_shapes[0][2]  # the encoder's sequence: class token + patches
        model.reshape({"tokens": ov.PartialShape([ov.Dimension(1, self.tokens)])})
        # The stream check runs every token from zero state: what a window's first run does.
        probe = {"image": np.random.default_rng(0).integers(0, 256, tuple(model.inputs[0].get_shape()), np.uint8),
                 "tokens": np.arange(self.tokens, dtype=np.int64),
                 **{p.get_any_name(): np.zeros(shape, np.float32) for p, shape in zip(model.inputs[2:],
                                                                                     self.state_shapes)}}
        self.compiled = engine.compile(model, probe)
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def window_state(self, on_done: Callable[[Any, np.ndarray], None]) -> WindowState:
        return WindowState(self, on_done)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.error = self.error or error

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _ignore(_: Any) -> None:
    pass


class WindowState:
    """One window position: its state buffers, its request, the pixels each patch was last computed from,
    and its last logits."""

    def __init__(self, model: ReuseModel, on_done: Callable[[Any, np.ndarray], None]):
        self._model, self._on_done = model, on_done
        self._buffers = [[ov.Tensor(np.zeros(shape, np.float32), shared_memory=True) for shape in
                          model.state_shapes] for _ in range(2)]
        self._side = 0
        self._request = model.compiled.create_infer_request()
        self._request.set_callback(self._callback, None)
        self._running = False
        self._key: Any = None
        self._window: np.ndarray | None = None
        self.reference: np.ndarray | None = None  # policy.summary of the pixels as last computed, per patch
        self.logits: np.ndarray | None = None  # the last run's output

    def _callback(self, _: Any) -> None:
        try:
            self.logits = self._request.get_output_tensor(0).data[0].copy()
            self._on_done(self._key, self.logits)
        except BaseException as e:  # noqa: BLE001 - OpenVINO's thread would swallow it
            self._model.fail(e)

    def wait(self) -> None:
        if self._running:
            self._request.wait()

    def close(self) -> None:
        """Wait for the last run and drop the callback: OpenVINO holds it, and it holds this state (its
        buffers, 2 x 23 MB), a cycle Python's collector cannot see."""
        self.wait()
        self._request.set_callback(_ignore, None)

    def run(self, window: np.ndarray, tokens: np.ndarray, key: Any) -> None:
        """Start recomputing ``tokens`` of this window; the result comes to ``on_done(key, logits)``."""
        self.wait()
        request = self._request
        src, dst = self._buffers[self._side], self._buffers[1 - self._side]
        self._window, self._key = window[None], key
        request.set_tensor("image", ov.Tensor(self._window, shared_memory=True))
        request.set_tensor("tokens", ov.Tensor(tokens))
        for i, (a, b) in enumerate(zip(src, dst)):
            request.set_input_tensor(i + 2, a)
            request.set_output_tensor(i + 1, b)
        self._side = 1 - self._side
        self._running = True
        request.start_async()
