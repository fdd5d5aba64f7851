"""The pipeline and the run loop in-process, on a stand-in adapter (tests/fake_engine.py): order, labels,
files, and every way a run can end (an adapter fault, a sink fault, a stop, a loop left early)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fake_engine import CLASSES, FakeEngine, info
from PIL import Image

from vidseg.inputs.sources import ArraySource
from vidseg.outputs.sink import Sink, VideoFacts
from vidseg.outputs.writer import Writer
from vidseg.render import Palette
from vidseg.result import FrameResult
from vidseg.runs import loop
from vidseg.runs.local import LocalStream

pytestmark = pytest.mark.fast
STAGES = {"read", "submit", "post"}


def frames(blues: list[int], size: tuple[int, int] = (48, 80)) -> list[np.ndarray]:
    """Uniform frames whose blue value sets their class (fake_engine.logits_of)."""
    out = []
    for b in blues:
        image = np.zeros((*size, 3), np.uint8)
        image[:, :, 0] = b
        out.append(image)
    return out


def stream(images: list[np.ndarray], engine: FakeEngine | None = None, **kwargs) -> LocalStream:
    return LocalStream(engine or FakeEngine(), ArraySource(images), Palette(info().class_colors), **kwargs)


def stage_threads() -> set[str]:
    return {t.name for t in threading.enumerate()} & STAGES


class Recorder(Sink):
    """A sink that keeps what the run loop told it."""

    def __init__(self, fail_at: int | None = None):
        self.facts: VideoFacts | None = None
        self.indices: list[int] = []
        self.closed: list[bool] = []
        self.fail_at = fail_at

    def open(self, facts: VideoFacts) -> None:
        self.facts = facts

    def write(self, frame: FrameResult) -> None:
        if self.fail_at is not None and len(self.indices) == self.fail_at:
            raise OSError(28, "No space left on device")
        self.indices.append(frame.index)

    def close(self, complete: bool = True) -> None:
        self.closed.append(complete)


def test_frames_come_back_in_order_with_their_labels() -> None:
    blues = [32, 224, 96, 160, 32, 224, 96, 160, 224]
    with stream(frames(blues)) as s:
        got = [(f.index, int(f.labels[0, 0]), bool((f.labels == f.labels[0, 0]).all())) for f in s]
    assert got == [(i, b // 64, True) for i, b in enumerate(blues)]
    assert s.summary.frames_out == len(blues) and not stage_threads()


def test_the_run_loop_writes_labels_and_stats(tmp_path: Path) -> None:
    blues = [32, 224, 96]
    writer = Writer(labels=tmp_path / "labels", stats=tmp_path / "stats.jsonl")
    summary = loop.run(stream(frames(blues)), [writer])
    assert summary.frames_out == 3 and not summary.interrupted
    pngs = sorted(p.name for p in (tmp_path / "labels").glob("*.png"))
    assert pngs == ["000000.png", "000001.png", "000002.png"]
    for name, b in zip(pngs, blues):
        assert (np.asarray(Image.open(tmp_path / "labels" / name)) == b // 64).all()
    table = json.loads((tmp_path / "labels" / "labels.json").read_text())
    assert [c["name"] for c in table] == CLASSES
    assert json.loads((tmp_path / "labels" / "frames.json").read_text()) == {"frames": 3, "times": [None] * 3}
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["classes"]) for r in lines] == [(i, {CLASSES[b // 64]: 1.0}) for i, b in enumerate(blues)]


def test_sinks_are_opened_with_the_stream_facts_and_closed_complete() -> None:
    sink = Recorder()
    loop.run(stream(frames([32] * 4, size=(30, 50))), [sink])
    assert sink.facts is not None and (sink.facts.width, sink.facts.height) == (50, 30)
    assert sink.indices == [0, 1, 2, 3] and sink.closed == [True]


def test_an_adapter_fault_reaches_the_caller_and_sinks_close_as_interrupted() -> None:
    sink = Recorder()
    with pytest.raises(RuntimeError, match="the device went away"):
        loop.run(stream(frames([32] * 40), FakeEngine(fail_at=5)), [sink])
    assert sink.closed == [False] and len(sink.indices) <= 5
    assert not stage_threads()


def test_a_sink_fault_stops_the_run_and_the_other_sinks_still_close(tmp_path: Path) -> None:
    broken, other = Recorder(fail_at=2), Recorder()
    with pytest.raises(OSError, match="No space left"):
        loop.run(stream(frames([96] * 30)), [broken, other])
    assert broken.closed == [False] and other.closed == [False] and other.indices == [0, 1]
    assert not stage_threads()


def test_stop_hands_over_the_frames_in_flight_and_is_recorded() -> None:
    s = stream(frames([160] * 200))
    seen = []
    with s:
        for frame in s:
            seen.append(frame.index)
            if frame.index == 3:
                s.stop()
    assert s.summary.interrupted and 4 <= len(seen) < 200 and seen == list(range(len(seen)))
    assert not stage_threads()


def test_a_loop_left_early_stops_every_thread() -> None:
    s = stream(frames([224] * 200))
    for frame in s:
        if frame.index == 1:
            break
    assert s.closed and not stage_threads()


def test_max_frames_is_exact() -> None:
    sink = Recorder()
    summary = loop.run(stream(frames([32] * 20), max_frames=7), [sink])
    assert summary.frames_out == 7 and sink.indices == list(range(7)) and sink.closed == [True]


def test_overlay_is_rendered_once_in_the_stream_when_a_sink_shows_it() -> None:
    with stream(frames([224, 32]), overlay_alpha=1.0) as s:
        results = list(s)
    assert all(r.rendered is not None for r in results)
    assert (results[0].overlay(alpha=1.0) == 255).all() and (results[1].overlay(alpha=1.0) == 0).all()
