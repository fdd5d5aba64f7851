"""The one queue rule shared by live intake and live outputs: never wait, let the oldest item go."""

from __future__ import annotations

import queue
from typing import Any


def offer_newest(q: queue.Queue[Any], item: Any) -> int:
    """Put without ever waiting: when the queue is full its oldest items make room. Returns how many were
    dropped (live intake, and outputs that must not hold a run back)."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass
