"""The token-reuse IR on OpenVINO: compiled per token-count bucket, one state per window position.

The IR takes any number of tokens, but a dynamic token axis costs OpenVINO's CPU plugin more per run than
the work it saves (34 ms against 17 ms for 16 tokens here), so the IR is compiled with a static token
count per bucket, lazily, and a selection is padded to its bucket by repeating its last token (computed
twice, written twice, same values).

A window's run depends on its previous run, so each window position owns two sets of state buffers: a run
reads set A and writes set B, the next one reads B and writes A. The buffers are shared with OpenVINO (no
copies), and a run waits for the previous one of the same window before it starts; windows of one frame
still run concurrently.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import openvino as ov

from vidseg.engine import Engine
from vidseg.errors import ModelError

REUSE_IR_NAME = "model_reuse.xml"
BUCKETS = (64, 128, 256, 512)  # token counts compiled on demand, plus "every token": ~100 MB each


class ReuseModel:
    """The token-reuse IR of a model directory, compiled on demand for each bucket."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._model = engine.read_variant(REUSE_IR_NAME)
        names = [p.get_any_name() for p in self._model.inputs]
        if names[:2] != ["image", "tokens"]:
            raise ModelError(f"{REUSE_IR_NAME} is not a token-reuse model (inputs {names})")
        self.state_shapes = [tuple(p.get_partial_shape().to_shape()) for p in self._model.inputs[2:]]
        self.tokens = self.state_shapes[0][2]  # the encoder's sequence: class token + patches
        self._compiled: dict[int, ov.CompiledModel] = {}
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def bucket(self, n: int) -> int:
        i = bisect.bisect_left(BUCKETS, n)
        return BUCKETS[i] if i < len(BUCKETS) and BUCKETS[i] < self.tokens else self.tokens

    def compiled(self, bucket: int) -> ov.CompiledModel:
        with self._lock:
            if bucket not in self._compiled:
                model = self._model.clone()
                model.reshape({"tokens": [bucket]})
                self._compiled[bucket] = self._engine.compile(model)
            return self._compiled[bucket]

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
    """One window position: its state buffers, a request per bucket used, the pixels each patch was last
    computed from, and its last logits."""

    def __init__(self, model: ReuseModel, on_done: Callable[[Any, np.ndarray], None]):
        self._model, self._on_done = model, on_done
        self._buffers = [[ov.Tensor(np.zeros(shape, np.float32), shared_memory=True) for shape in
                          model.state_shapes] for _ in range(2)]
        self._side = 0
        self._requests: dict[int, ov.InferRequest] = {}
        self._running: ov.InferRequest | None = None
        self._key: Any = None
        self._window: np.ndarray | None = None
        self.reference: np.ndarray | None = None  # pixels as last computed, per patch
        self.logits: np.ndarray | None = None  # the last run's output

    def _callback(self, request: ov.InferRequest) -> None:
        try:
            self.logits = request.get_output_tensor(0).data[0].copy()
            self._on_done(self._key, self.logits)
        except BaseException as e:  # noqa: BLE001 - OpenVINO's thread would swallow it
            self._model.fail(e)

    def wait(self) -> None:
        if self._running is not None:
            self._running.wait()

    def close(self) -> None:
        """Wait for the last run and drop the callbacks: OpenVINO holds them, and they hold this state
        (its buffers, 2 x 23 MB), a cycle Python's collector cannot see."""
        self.wait()
        for request in self._requests.values():
            request.set_callback(_ignore, None)
        self._requests.clear()

    def run(self, window: np.ndarray, tokens: np.ndarray, key: Any) -> None:
        """Start recomputing ``tokens`` of this window; the result comes to ``on_done(key, logits)``."""
        self.wait()
        bucket = self._model.bucket(len(tokens))
        request = self._requests.get(bucket)
        if request is None:
            request = self._requests[bucket] = self._model.compiled(bucket).create_infer_request()
            request.set_callback(lambda _, r=request: self._callback(r), None)
        tokens = np.pad(tokens, (0, bucket - len(tokens)), mode="edge")
        src, dst = self._buffers[self._side], self._buffers[1 - self._side]
        self._window, self._key = window[None], key
        request.set_tensor("image", ov.Tensor(self._window, shared_memory=True))
        request.set_tensor("tokens", ov.Tensor(tokens))
        for i, (a, b) in enumerate(zip(src, dst)):
            request.set_input_tensor(i + 2, a)
            request.set_output_tensor(i + 1, b)
        self._side = 1 - self._side
        self._running = request
        request.start_async()
