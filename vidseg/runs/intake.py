"""Keyframes only while a live stream takes far fewer frames than arrive.

A camera sending 25 fps to a service that segments it once every few seconds has 25 frames decoded for
each one kept: with eight such cameras on two cores, decoding alone took about a quarter of the CPU the
model needed (docs/performance.md). A keyframe decodes on its own, so while a stream takes fewer frames
than half its keyframe rate, its source passes only keyframes to the decoder; the frames left undecoded
count as received and dropped, like any frame a busy model could not take. Once the stream takes more
than 80% of the keyframes, it decodes every frame again, from the next keyframe (the gap between the two
thresholds keeps it from flapping). A stream with no keyframe for a while (some cameras send one a
minute) keeps every frame. What it costs: the frame segmented can be up to one keyframe interval older
than the newest that arrived.
"""

from __future__ import annotations

import time
from typing import Any

from vidseg.summary import Summary

WINDOW_S = 5.0  # how long the rates are counted over before each decision
ENTER = 0.5  # keyframes only below this share of the keyframe rate taken
LEAVE = 0.8  # every frame again above this share


class KeyframeIntake:
    """Decides, for a source that can decode keyframes only (``NetworkSource``), whether it should."""

    def __init__(self, source: Any, summary: Summary):
        self._source, self._summary = source, summary
        self._since = time.monotonic()
        self._taken = self._keyframes = self._skipped = 0

    @staticmethod
    def fits(source: Any) -> bool:
        return hasattr(source, "keyframes_only")

    def update(self) -> None:
        """After each frame offered: account the frames left undecoded; every ``WINDOW_S``, decide."""
        s, source = self._summary, self._source
        if source.skipped > self._skipped:
            new, self._skipped = source.skipped - self._skipped, source.skipped
            s.frames_in += new
            s.dropped += new
            s.undecoded += new
        now = time.monotonic()
        if now - self._since < WINDOW_S:
            return
        taken = s.frames_in - s.dropped - s.sampled_out
        keyframes = source.keyframes - self._keyframes
        if keyframes >= 2:
            share = (taken - self._taken) / keyframes
            if not source.keyframes_only and share < ENTER:
                source.keyframes_only = True
            elif source.keyframes_only and share > LEAVE:
                source.keyframes_only = False
        self._since, self._taken, self._keyframes = now, taken, source.keyframes
