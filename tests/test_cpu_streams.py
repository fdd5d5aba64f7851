"""CPU streams: OpenVINO's layout by default, every stream checked (the engine's model on its first window,
other models when compiled), one stream if a check fails.

OpenVINO 2026.4 now and then builds a CPU stream that computes wrong logits (bench/two_streams_repro.py);
too rarely to provoke in a test. A network with a random op (no seed) disagrees with itself on every run,
as such a stream does, and is the real model the safety net is tested with.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from conftest import run_vidseg

from vidseg import Segmenter
from vidseg.model.engine import Engine, streams_agree


def self_disagreeing_model() -> ov.Model:
    """u8 pixels plus uniform noise drawn afresh at every inference (seeds 0: no fixed seed)."""
    pixels = ops.parameter([1, 16, 16, 3], ov.Type.u8)
    noise = ops.random_uniform(ops.constant(np.array([1, 16, 16, 3], np.int64)), ops.constant(np.float32(0)),
                               ops.constant(np.float32(1)), "f32", 0, 0)
    return ov.Model([ops.add(ops.convert(pixels, ov.Type.f32), noise)], [pixels], "noisy")


def noisy_model_dir(model_dir: Path, out: Path) -> Path:
    """A copy of a converted model whose logits get fresh uniform noise at every inference: its streams
    disagree on every window, as a faulty stream does, and everything else (metadata, shapes) is the model's."""
    shutil.copytree(model_dir, out)
    model = ov.Core().read_model(model_dir / "model.xml")
    result = model.get_results()[0]
    logits = result.input_value(0)
    noise = ops.random_uniform(ops.shape_of(logits), ops.constant(np.float32(0)), ops.constant(np.float32(1)),
                               "f32", 0, 0)
    result.input(0).replace_source_output(ops.add(logits, noise).output(0))
    ov.save_model(model, out / "model.xml", compress_to_fp16=False)
    return out


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


def test_the_streams_are_checked_on_the_first_window_and_a_faulty_model_ends_on_one_stream(
        tiny_model: Path, media: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(media / "building.jpg"))
    noisy = noisy_model_dir(tiny_model, tmp_path / "noisy")
    with Segmenter(noisy, "CPU", cpu_streams=2) as seg:
        assert seg.cpu_streams == 2 and seg.stream_note is None  # nothing has run yet
        assert seg(image).labels.shape == image.shape[:2]
        assert seg.cpu_streams == 1 and "3 compiles with 2 CPU streams" in (seg.stream_note or "")
    with Segmenter(tiny_model, "CPU", cpu_streams=2) as sound:
        first = sound(image).labels  # its first window's logits come from the check
        assert sound.cpu_streams == 2 and sound.stream_note is None
        assert np.array_equal(first, sound(image).labels)
    # The command line says so after the run, even with --quiet, and so does the summary.
    out = run_vidseg("process", media / "building.jpg", "-o", tmp_path / "out.png", "--model", noisy,
                     "--device", "CPU", "--cpu-streams", "2", "--summary", tmp_path / "s.json", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "3 compiles with 2 CPU streams each had a stream computing different logits" in out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["cpu_streams"] == 1 and "using one" in summary["stream_note"]
    assert cv2.imread(str(tmp_path / "out.png")).shape == image.shape
