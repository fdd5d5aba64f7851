"""The local pipeline with reuse between frames: the same threads and order as ``LocalStream``; only
how a frame's windows are inferred differs (which tokens, which cached state)."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from vidseg.inputs.sources import Source
from vidseg.model.engine import Engine
from vidseg.model.protocol import FrameGeometry
from vidseg.render import Palette
from vidseg.runs.local import LocalStream, _Job
from vidseg.runs.reuse.model import ReuseModel, WindowState
from vidseg.runs.reuse.policy import ReusePolicy, changed_patches, summary, tokens_for


class ReuseStream(LocalStream):
    """``LocalStream`` whose windows recompute only changed tokens (see ``vidseg.runs.reuse``). ``summary.reuse``
    says how much was computed."""

    def __init__(self, engine: Engine, source: Source, palette: Palette, policy: ReusePolicy,
                 max_frames: int | None = None, overlay_alpha: float | None = None, **shared: Any):
        super().__init__(engine, source, palette, max_frames, overlay_alpha, **shared)
        self._policy = policy
        self._model = ReuseModel.of(engine)
        self._patch = engine.info.patch_size
        self._states: list[WindowState] = []
        self._geometry: FrameGeometry | None = None
        self._last: str | None = None  # the previous frame's input (collections)
        self._since_full = 0
        self._previous: tuple[FrameGeometry, np.ndarray] | None = None  # post thread: last labels
        self.summary.reuse = {"policy": vars(policy).copy(), "full_frames": 0, "partial_frames": 0,
                              "windows_reused": 0, "tokens_computed": 0, "tokens_total": 0}

    def _raise_if_failed(self) -> None:
        self._model.raise_if_failed()

    def _drain(self) -> None:
        super()._drain()
        for state in self._states:
            state.close()

    def _needs_full(self, job: _Job) -> bool:
        """Rules that need no pixels: first frame, new geometry or input, the refresh. Frames left out in
        between (a live intake dropping, a sampled fps) need none: each patch is compared with the pixels it
        was last computed from, not with the previous frame, and a picture that changed much is caught by
        the cut rule."""
        previous, self._last = self._last, job.frame.input
        return (self._geometry != job.geo or previous != job.frame.input
                or self._since_full + 1 >= self._policy.refresh)

    def _dispatch(self, job: _Job, windows: np.ndarray) -> None:
        if windows.dtype != np.uint8:  # an exact panorama's float windows: the reuse IR takes u8 only
            self._geometry = None
            super()._dispatch(job, windows)
            return
        full = self._needs_full(job)
        if full:
            if len(self._states) != len(windows):  # a full run overwrites a state whole: keep them otherwise
                for state in self._states:
                    state.close()
                self._states = [self._model.window_state(self._on_window) for _ in windows]
            self._geometry = job.geo
        t0 = time.thread_time()
        small = [summary(w, self._patch) for w in windows]
        if not full:
            changed = [changed_patches(w, s.reference, self._patch, self._policy.threshold)
                       for w, s in zip(small, self._states)]
            full = sum(int(c.sum()) for c in changed) > self._policy.cut_share * sum(c.size for c in changed)
        self.summary.add_time("preprocess", time.thread_time() - t0, frames=0)
        stats = self.summary.reuse
        n_tokens = windows.shape[1] // self._patch * windows.shape[2] // self._patch
        stats["tokens_total"] += len(windows) * n_tokens
        self._since_full = 0 if full else self._since_full + 1
        stats["full_frames" if full else "partial_frames"] += 1
        if not full:
            job.changed = np.stack(changed)
        for i, (window, state) in enumerate(zip(windows, self._states)):
            if full:
                state.reference = small[i]
                state.run(window, np.arange(self._model.tokens, dtype=np.int64), (job, i))
                stats["tokens_computed"] += n_tokens
            elif not changed[i].any():
                state.wait()  # its last run's logits hold for this frame too
                stats["windows_reused"] += 1
                self._on_window((job, i), state.logits)
            else:
                assert state.reference is not None  # set by the full run that created the state
                mask = cv2.resize(changed[i].astype(np.uint8), small[i].shape[1::-1], interpolation=cv2.INTER_NEAREST)
                cv2.copyTo(small[i], mask, state.reference)
                tokens = tokens_for(changed[i])
                state.run(window, tokens, (job, i))
                stats["tokens_computed"] += len(tokens) - 1

    def _stitch(self, job: _Job) -> np.ndarray:
        """Blocks of the picture that draw only on reused patches keep their labels from the previous
        frame: stitching them again would cost the same as the whole frame's and change nothing."""
        assert job.logits is not None and job.geo is not None
        previous = self._previous
        if job.changed is None or previous is None or previous[0] != job.geo:
            labels = self._stitcher.labels(job.logits, job.geo)
        else:
            labels = self._stitcher.update(previous[1], job.logits, job.geo, job.changed)
        self._previous = (job.geo, labels.copy())
        return labels
