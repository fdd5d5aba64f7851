"""Many live streams on one compiled model: a scheduler that shares the engine's requests fairly.

Each stream is a ``LocalStream`` (or ``ReuseStream``) in shared mode: it reads its source in its own thread,
keeps only its newest waiting frame, and stitches and renders its own frames in order; the scheduler here
decides which stream's frame goes to the engine next. It picks, among the streams with a frame waiting
and room in flight, the one that has had the fewest windows so far, so a stream whose frames cut into
many windows (a 4K panorama) gets the same share of the model as one with few, and it submits as soon as
a request is free, so the requests never run dry while any stream has a frame waiting. A stream that
stalls, floods or disconnects only changes what waits in its own one-frame slot.

Nothing here is global: a scheduler belongs to one engine in one process, so a cluster can later run one
per node for its own group of streams.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from vidseg.model.engine import Engine, WindowQueue

if TYPE_CHECKING:
    from vidseg.runs.local import LocalStream

WAKE_S = 0.05  # the scheduler looks again at least this often, whatever wakes it


class Scheduler:
    """Feeds one engine's request queue from many streams, fairly by windows."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.queue: WindowQueue = engine.queue(self._route)
        self._streams: dict[LocalStream, int] = {}  # stream -> windows admitted so far
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def attach(self, stream: LocalStream) -> None:
        """A stream starts with the fewest windows any stream has, so it neither waits nor hogs."""
        with self._lock:
            self._streams[stream] = min(self._streams.values(), default=0)
        self.wake()

    def detach(self, stream: LocalStream) -> None:
        with self._lock:
            self._streams.pop(stream, None)

    def wake(self) -> None:
        """Something changed: a frame arrived, or a frame left a stream's flight."""
        self._wake.set()

    def submit(self, stream: LocalStream, window: np.ndarray, key: Any) -> None:
        """One window of ``stream``'s; blocks while every request is busy (the back-pressure)."""
        self.queue.submit(window, (stream, key))

    def _route(self, key: tuple[LocalStream, Any], logits: np.ndarray) -> None:
        stream, inner = key
        stream.on_shared_window(inner, logits)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(WAKE_S)
                self._wake.clear()
                while self._admit_one():
                    pass
        except BaseException as e:  # noqa: BLE001 - each stream sees it through raise_if_failed
            self.error = e

    def _admit_one(self) -> bool:
        with self._lock:
            order = sorted(self._streams.items(), key=lambda kv: kv[1])
        for stream, _ in order:
            windows = stream.admit_waiting()
            if windows is None:
                continue
            with self._lock:
                if stream in self._streams:
                    self._streams[stream] += windows
            return True
        return False

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        self.queue.raise_if_failed()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.queue.wait_all()


def merged(streams: dict[str, LocalStream], capacity: int = 8) -> Iterator[tuple[str, Any]]:
    """(name, FrameResult) from every stream as they come, each stream in its own order: the streams are
    iterated in threads of their own and meet in one bounded queue. Leaving the loop closes them all."""
    out: queue.Queue[Any] = queue.Queue(maxsize=capacity)
    done = object()
    stop = threading.Event()
    errors: list[BaseException] = []

    def drain(name: str, stream: LocalStream) -> None:
        try:
            for frame in stream:
                while not stop.is_set():
                    try:
                        out.put((name, frame), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's loop
            errors.append(e)
        finally:
            stream.close(raise_error=False)
            out.put((name, done))

    threads = [threading.Thread(target=drain, args=item, name=f"stream-{item[0]}", daemon=True)
               for item in streams.items()]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            name, item = out.get()
            if item is done:
                running -= 1
                if errors:
                    raise errors[0]
                continue
            yield name, item
    finally:
        stop.set()
        for stream in streams.values():
            stream.stop(now=True)
        while any(t.is_alive() for t in threads):
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
