"""The run loop: every frame of a stream to every sink, the same for ``vidseg process`` and for Python
programs (``Stream.run``).

Sinks are opened with the stream's facts on its first frame and all closed on every way out: as complete
when the input was read to its end, as interrupted after a stop, an error or Ctrl-C. File sinks are written
first; live ones (preview, network) only take a reference and never hold the run back.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from tqdm import tqdm

from vidseg.outputs.sink import Sink, VideoFacts, close_all
from vidseg.runs.stream import Stream
from vidseg.summary import Summary


@contextmanager
def stop_on_signals(stream: Stream) -> Iterator[None]:
    """Ctrl-C or SIGTERM stops intake and lets the frames in flight be written; a second one drops them.
    Only the main thread can take signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: object) -> None:
        stream.stop(now=stream.stopping)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(stream: Stream, sinks: Sequence[Sink], *, progress: bool = False, signals: bool = False) -> Summary:
    """Every frame of ``stream`` to every sink; returns the stream's summary with what the sinks reported.
    ``progress``: a progress bar on stderr (with the file being read, for collections). ``signals``: Ctrl-C
    and SIGTERM stop the run gracefully (``stop_on_signals``). A stage's or a sink's error is raised after
    every sink was closed as interrupted."""
    summary = stream.summary
    bar = tqdm(total=stream.frame_count, unit="frame", disable=None if progress else True, leave=False)
    opened = False
    complete = False
    try:
        with stop_on_signals(stream) if signals else nullcontext(), stream:
            current = None
            for frame in stream:
                t0 = time.thread_time()
                if not opened:
                    opened = True
                    facts = VideoFacts.of(frame)
                    for sink in sinks:
                        sink.open(facts)
                for sink in sinks:
                    sink.write(frame)
                summary.add_time("write", time.thread_time() - t0)
                if frame.input != current and stream.input_count:
                    current = frame.input
                    bar.set_postfix_str(f"file {len(summary.inputs)}/{stream.input_count}: {current}")
                bar.update(1)
        complete = not summary.interrupted
    finally:
        bar.close()
        try:
            close_all(list(sinks), complete)
        finally:
            summary.live_outputs = [r for r in (sink.report() for sink in sinks) if r is not None]
            summary.audio_skipped = "; ".join(s.audio_skipped for s in sinks if s.audio_skipped) or None
    return summary



def overlay_alpha(sinks: Sequence[Sink]) -> float | None:
    """The opacity to render overlays at in the stream's own thread: the first that a sink asks for."""
    return next((s.overlay_alpha for s in sinks if s.overlay_alpha is not None), None)
