"""CPU streams: OpenVINO's layout by default, every stream checked when compiled, one stream if a check fails.

OpenVINO 2026.4 now and then builds a CPU stream that computes wrong logits (bench/two_streams_repro.py);
too rarely to provoke in a test. A network with a random op (no seed) disagrees with itself on every run,
as such a stream does, and is the real model the safety net is tested with.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from vidseg import Segmenter
from vidseg.engine import Engine, streams_agree


def self_disagreeing_model() -> ov.Model:
    """u8 pixels plus uniform noise drawn afresh at every inference (seeds 0: no fixed seed)."""
    pixels = ops.parameter([1, 16, 16, 3], ov.Type.u8)
    noise = ops.random_uniform(ops.constant(np.array([1, 16, 16, 3], np.int64)), ops.constant(np.float32(0)),
                               ops.constant(np.float32(1)), "f32", 0, 0)
    return ov.Model([ops.add(ops.convert(pixels, ov.Type.f32), noise)], [pixels], "noisy")


def test_the_check_tells_a_sound_model_from_one_that_disagrees_with_itself(tiny_model: Path) -> None:
    core = ov.Core()
    model = core.read_model(tiny_model / "model.xml")
    model.reshape({model.inputs[0]: [1, 512, 512, 3]})
    config = {"NUM_STREAMS": 2, "INFERENCE_PRECISION_HINT": "f32"}
    assert streams_agree(core.compile_model(model, "CPU", config), 2)
    assert not streams_agree(core.compile_model(self_disagreeing_model(), "CPU", config), 2)


def test_a_model_whose_streams_disagree_is_compiled_again_then_for_one_stream(tiny_model: Path) -> None:
    engine = Engine(tiny_model, "CPU", cpu_streams=2)
    assert engine.cpu_streams == 2 and engine.stream_note is None
    compiled = engine.compile(self_disagreeing_model())
    assert int(compiled.get_property("NUM_STREAMS")) == 1
    assert engine.cpu_streams == 1
    assert engine.stream_note is not None and "3 compiles with 2 CPU streams" in engine.stream_note


def test_the_default_layout_gives_the_labels_of_one_stream(tiny_model: Path, media: Path) -> None:
    images = [cv2.imread(str(media / n)) for n in ("building.jpg", "left01.jpg", "messi5.jpg", "baboon.jpg")]
    with Segmenter(tiny_model, "CPU") as default, Segmenter(tiny_model, "CPU", cpu_streams=1) as one:
        assert default.cpu_streams >= min(2, os.cpu_count() or 1) and default.stream_note is None
        assert one.cpu_streams == 1
        together = default.segment_batch(images)  # both streams busy at once
        assert all(np.array_equal(a.labels, one(im).labels) for a, im in zip(together, images, strict=True))
