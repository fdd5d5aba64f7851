"""``vidseg convert`` on official-format checkpoints: the IR, its metadata, parity, INT8 and bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from conftest import encode_video, run_vidseg

from convert.checkpoint import sha256_of
from convert.synthetic import write_checkpoint
from vidseg.model.modeldir import METADATA_RT_PATH


def metadata(model_dir: Path) -> dict:
    model = ov.Core().read_model(str(model_dir / "model.xml"))
    return json.loads(model.get_rt_info(METADATA_RT_PATH).astype(str))


def test_tiny_mask_ir_takes_u8_bgr_and_returns_patch_logits(tiny_model: Path, tiny_checkpoint: Path) -> None:
    assert {p.name for p in tiny_model.iterdir()} == {"model.xml", "model.bin", "model.onnx", "model.yml",
                                                       "model_reuse.xml", "model_reuse.bin"}
    reuse = ov.Core().read_model(str(tiny_model / "model_reuse.xml"))  # --reuse: the same weights, token subsets
    assert [p.get_any_name() for p in reuse.inputs[:2]] == ["image", "tokens"]
    assert str(reuse.inputs[1].get_partial_shape()) == "[?]" and len(reuse.inputs) == len(reuse.outputs) + 1
    model = ov.Core().read_model(str(tiny_model / "model.xml"))
    assert model.inputs[0].get_element_type() == ov.Type.u8
    assert str(model.inputs[0].get_partial_shape()) == "[?,512,512,3]"
    assert str(model.outputs[0].get_partial_shape()) == "[?,150,32,32]"
    meta = metadata(tiny_model)
    assert meta["class_names"][0] == "wall" and meta["class_colors"][0] == [120, 120, 120]
    assert len(meta["class_names"]) == 150
    assert (meta["window_size"], meta["window_stride"], meta["short_side"], meta["long_side_cap"]) == (
        512, 512, 512, 2048)
    assert meta["patch_size"] == 16 and meta["precision"] == "FP32"
    assert meta["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert meta["source"]["sha256"] == sha256_of(tiny_checkpoint)


def test_deit_distilled_linear_converts_with_its_own_normalisation(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "seg_deit_linear", "deit-linear", seed=3)
    state = torch.load(ckpt, weights_only=True)["model"]
    assert state["encoder.pos_embed"].shape == (1, 1026, 192) and "encoder.dist_token" in state
    result = run_vidseg("convert", "--checkpoint", ckpt, "-o", tmp_path / "model", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "argmax agreement 100.0000%" in result.stdout
    meta = metadata(tmp_path / "model")
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    model = ov.Core().read_model(str(tmp_path / "model" / "model.xml"))
    assert str(model.outputs[0].get_partial_shape()) == "[?,150,32,32]"


def test_other_window_sizes_resize_position_embeddings(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "ck", "tiny", window=384, n_layers=2)
    result = run_vidseg("convert", "--checkpoint", ckpt, "-o", tmp_path / "m", "--quiet")
    assert result.returncode == 0, result.stderr
    model = ov.Core().read_model(str(tmp_path / "m" / "model.xml"))
    assert str(model.outputs[0].get_partial_shape()) == "[?,150,24,24]"


def test_patch_8_encoder_converts(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "ck8", "tiny", window=256, patch=8, n_layers=2)
    result = run_vidseg("convert", "--checkpoint", ckpt, "-o", tmp_path / "m", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "argmax agreement 100.0000%" in result.stdout
    model = ov.Core().read_model(str(tmp_path / "m" / "model.xml"))
    assert str(model.outputs[0].get_partial_shape()) == "[?,150,32,32]"
    assert metadata(tmp_path / "m")["patch_size"] == 8


def test_full_resolution_baseline_is_refused_by_process(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "fullres"
    result = run_vidseg("convert", "--checkpoint", tiny_checkpoint, "-o", out, "--full-resolution-output",
                        "--quiet")
    assert result.returncode == 0, result.stderr
    model = ov.Core().read_model(str(out / "model.xml"))
    assert str(model.outputs[0].get_partial_shape()) == "[?,150,512,512]"
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = run_vidseg("process", image, "--model", out, "--labels", tmp_path / "l")
    assert result.returncode == 2 and "full-resolution-output" in result.stderr


def test_int8_quantises_and_reports_agreement(tmp_path: Path, tiny_checkpoint: Path, media: Path) -> None:
    import cv2

    photo = cv2.imread(str(media / "aloeL.jpg"))
    frames = [np.ascontiguousarray(photo[i * 40:i * 40 + 540, i * 60:i * 60 + 960]) for i in range(6)]
    video = encode_video(tmp_path / "calib.mp4", frames)
    out = tmp_path / "int8"
    result = run_vidseg("convert", "--checkpoint", tiny_checkpoint, "-o", out, "--int8", "--calibration", video,
                        "--calibration-frames", "6", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "label agreement with FP32" in result.stdout
    agreement = float(result.stdout.split("mean ")[1].split("%")[0])
    assert agreement > 50.0  # random weights make near-ties everywhere; trained models agree far more
    speed = next(line for line in result.stdout.splitlines() if line.startswith("int8: speed on this CPU"))
    fp32_wps, int8_wps = (float(speed.split(f"{k} ")[1].split(" windows/s")[0]) for k in ("FP32", "INT8"))
    ratio = float(re.search(r"([\d.]+)x", speed.split("windows/s: ")[1]).group(1))
    assert fp32_wps > 0 and int8_wps > 0 and abs(ratio - int8_wps / fp32_wps) < 0.02
    # One verdict, which agrees with the figures it prints; speeds within 5% are called a draw, not a win.
    faster, draw, slower = ("x faster here" in speed), ("gains nothing here" in speed), ("SLOWER here" in speed)
    assert faster + draw + slower == 1
    assert (ratio >= 1.05 if faster else ratio <= 0.95 if slower else 0.95 <= ratio <= 1.05), speed
    assert metadata(out)["precision"] == "INT8"
    ops = {op.get_type_name() for op in ov.Core().read_model(str(out / "model.xml")).get_ops()}
    assert "FakeQuantize" in ops


def _assert_clean_failure(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_bad_checkpoints_fail_in_one_line_and_leave_nothing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", tmp_path / "nope.pth", "-o", out), "not found")

    text = tmp_path / "text" / "checkpoint.pth"
    text.parent.mkdir()
    text.write_text("hello, not a checkpoint")
    shutil.copy(tiny_checkpoint.parent / "variant.yml", text.parent)
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", text, "-o", out), "not a readable PyTorch")

    truncated = tmp_path / "trunc" / "checkpoint.pth"
    truncated.parent.mkdir()
    truncated.write_bytes(tiny_checkpoint.read_bytes()[: 5_000_000])
    shutil.copy(tiny_checkpoint.parent / "variant.yml", truncated.parent)
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", truncated, "-o", out), "not a readable PyTorch")

    mismatch = write_checkpoint(tmp_path / "mismatch", "deit-linear")
    shutil.copy(tiny_checkpoint.parent / "variant.yml", mismatch.parent / "variant.yml")
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", mismatch, "-o", out),
                          "does not match", "encoder.dist_token", "decoder.head.weight")

    no_variant = tmp_path / "novariant"
    no_variant.mkdir()
    shutil.copy(tiny_checkpoint, no_variant / "checkpoint.pth")
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", no_variant / "checkpoint.pth", "-o", out),
                          "variant file not found")

    _assert_clean_failure(run_vidseg("convert", "ade20k/seg_huge_mask", "-o", out), "unknown checkpoint")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_output_under_a_file_fails_cleanly(tmp_path: Path, tiny_checkpoint: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_clean_failure(run_vidseg("convert", "--checkpoint", tiny_checkpoint, "-o", blocker / "model"),
                          "cannot write")


def test_yaml_loader_refuses_arbitrary_python_tags(tmp_path: Path, tiny_checkpoint: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    shutil.copy(tiny_checkpoint, evil / "checkpoint.pth")
    text = (tiny_checkpoint.parent / "variant.yml").read_text()
    (evil / "variant.yml").write_text("boom: !!python/object/apply:os.system ['touch pwned']\n" + text)
    result = run_vidseg("convert", "--checkpoint", evil / "checkpoint.pth", "-o", tmp_path / "m", cwd=tmp_path)
    _assert_clean_failure(result, "not valid YAML")
    assert not (tmp_path / "pwned").exists()
