"""``/metrics``: the service's counters in the Prometheus text format, through ``prometheus_client``.

Counters are read from the streams when Prometheus scrapes (one set of books, the streams' own), and
latency is a histogram observed as each frame is written. Every per-stream series is labelled
``stream="NAME"``; a removed stream's series go with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

# name, help, kind, the status key it reads
SERIES = [
    ("vidseg_frames_processed", "Frames segmented and written", "counter", "frames"),
    ("vidseg_frames_dropped", "Frames dropped: replaced by a newer one while the model was busy, or left undecoded "
     "while the stream took keyframes only",
     "counter", "dropped"),
    ("vidseg_frames_sampled_out", "Frames skipped to keep to the stream's fps", "counter", "sampled_out"),
    ("vidseg_reconnects", "Times the source was lost and opened again", "counter", "reconnects"),
    ("vidseg_windows_inferred", "Model windows run for the stream", "counter", "windows"),
    ("vidseg_stream_up", "1 while the source delivers frames, 0 while it is connecting or lost", "gauge", "up"),
    ("vidseg_stream_fps", "Frames written a second, over the last few seconds", "gauge", "fps"),
]


class StreamCollector(Collector):
    """Reads ``statuses()`` (stream name -> its status dict) at every scrape."""

    def __init__(self, statuses: Callable[[], dict[str, dict[str, Any]]]):
        self._statuses = statuses

    def collect(self) -> Iterable[Any]:
        statuses = self._statuses()
        for name, help_text, kind, key in SERIES:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text,
                                                                                        labels=["stream"])
            for stream, status in statuses.items():
                family.add_metric([stream], float(status[key]))
            yield family
        streams = GaugeMetricFamily("vidseg_streams", "Streams configured")
        streams.add_metric([], len(statuses))
        yield streams


class Metrics:
    """The registry the service serves, with its per-stream latency histogram."""

    def __init__(self, statuses: Callable[[], dict[str, dict[str, Any]]]):
        self.registry = CollectorRegistry()
        self.registry.register(StreamCollector(statuses))
        self.latency = Histogram("vidseg_latency_seconds", "From a frame's capture to its results written",
                                 ["stream"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def forget(self, stream: str) -> None:
        try:
            self.latency.remove(stream)
        except KeyError:
            pass

    def text(self) -> bytes:
        return generate_latest(self.registry)
