"""Bad input, odd input, interrupts, resume and long runs: what users throw at a tool every day."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import av
import cv2
import numpy as np
import psutil
import pytest
from conftest import encode_video, ffmpeg, one_line_error, probe_frames, run_vidseg, start_vidseg, wait_for
from oracle import interior, paint
from PIL import Image


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, media: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    (d / "notes.mp4").write_text("this is a text file with a video name\n")
    (d / "noise.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    good = encode_video(d / "good.mp4", [paint(np.full((96, 128), i % 8, np.uint8)) for i in range(20)])
    (d / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom lost
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", d / "audio_only.mp4")
    return {p.stem: p for p in d.iterdir()}


BAD_INPUTS = [
    (["missing.mp4", "-o", "{tmp}/o.mp4"], "input not found"),
    (["{notes}", "-o", "{tmp}/o.mp4"], "not a readable video"),
    (["{noise}", "--labels", "{tmp}/l"], "not a readable image"),
    (["{truncated}", "-o", "{tmp}/o.mp4"], "not a readable video"),
    (["{audio_only}", "-o", "{tmp}/o.mp4"], "no video stream"),
    (["{good}", "-o", "{good}"], "would overwrite the input"),
    (["{good}", "-o", "/proc/vidseg/out.mp4"], "cannot create output folder"),
    (["{good}", "-o", "{tmp}/out.avi"], "-o must be a video file"),
    (["{good}"], "nothing to write"),
    (["{good}", "--stats", "{tmp}/s.jsonl", "--resume"], "--resume needs -o or --labels"),
    (["{good}", "-o", "{tmp}/o.mp4", "--start", "1000", "--quiet"], "none at or after --start 1000 s"),
    (["{good}", "-o", "{tmp}/o.mp4", "--alpha", "1.5"], "alpha must be between 0 and 1"),
    (["{good}", "-o", "{tmp}/o.mp4", "--stride", "-4"], "stride must be a positive"),
    (["{good}", "-o", "{tmp}/o.mp4", "--stride", "1000"], "larger than the window"),
    (["{good}", "-o", "{tmp}/o.mp4", "--device", "NPU7"], "device 'NPU7' is not available"),
    (["{good}", "-o", "{tmp}/o.mp4", "--model", "{tmp}/nowhere"], "no model at"),
    (["{good}", "-o", "{tmp}/o.mp4", "--model", "{corrupt_model}"], "is corrupt"),
    (["{good}", "-o", "{tmp}/o.mp4", "--frobnicate"], "unrecognized arguments"),
    (["http://127.0.0.1:9/live.ts", "-o", "{tmp}/o.mp4"], "cannot read from http://127.0.0.1:9/live.ts"),
    (["7", "-o", "{tmp}/o.mp4"], "cannot read from camera 7"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, corpus: dict[str, Path], oracle_model: Path,
                                          args: list[str], message: str) -> None:
    corrupt = tmp_path / "corrupt_model"
    corrupt.mkdir()
    (corrupt / "model.xml").write_text("<net><layers>half a model")
    (corrupt / "model.bin").write_bytes(b"\0" * 10)
    names = {**{k: str(v) for k, v in corpus.items()}, "tmp": str(tmp_path), "corrupt_model": str(corrupt)}
    argv = [a.format(**names) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(oracle_model)]
    before = corpus["good"].read_bytes()
    one_line_error(run_vidseg("process", *argv), 2, message)
    assert corpus["good"].read_bytes() == before


def test_full_disk_mid_run_is_one_line_and_keeps_the_video(tmp_path: Path, corpus: dict[str, Path],
                                                            oracle_model: Path) -> None:
    result = run_vidseg("process", corpus["good"], "--model", oracle_model, "-o", tmp_path / "out.mp4",
                        "--stats", "/dev/full", "--quiet")
    one_line_error(result, 2, "cannot write /dev/full: No space left on device")
    times, _ = probe_frames(tmp_path / "out.mp4")  # closed properly with what was written before the error
    assert 1 <= len(times) <= 20


def test_odd_images_are_read_as_displayed(tmp_path: Path, oracle_model: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    scene = np.full((120, 200), 6, np.uint8)
    scene[:60, :100] = 0  # red top-left
    rgb = paint(scene)[:, :, ::-1]
    Image.fromarray(rgb).save(folder / "plain.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "one_pixel.png")
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray((rgb.astype(np.uint16) * 257)[:, :, 0]).save(folder / "sixteen_bit.png")
    rgba = np.dstack([rgb, np.full(scene.shape, 255, np.uint8)])
    rgba[60:, 100:, 3] = 0  # transparent corner: composited over black
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(folder / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90 degrees clockwise
    Image.fromarray(np.rot90(rgb, 1).copy()).save(folder / "exif_rotated.jpg", exif=exif, quality=95)

    result = run_vidseg("process", folder, "--model", oracle_model, "--labels", tmp_path / "labels", "--summary",
                        tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    labels = {p.stem: np.asarray(Image.open(p)) for p in (tmp_path / "labels").glob("*.png")}
    assert labels["one_pixel"].shape == (1, 1)
    mask = interior(scene, 20)
    for name in ("plain", "palette", "cmyk", "exif_rotated"):
        assert labels[name].shape == scene.shape, name
        assert (labels[name][mask] == scene[mask]).all(), name
    alpha_expected = scene.copy()
    alpha_expected[60:, 100:] = 7  # black
    mask = interior(alpha_expected, 20)
    assert (labels["alpha"][mask] == alpha_expected[mask]).all()
    for name in ("gray", "sixteen_bit"):  # gray of red is dark, gray of white is white
        assert labels[name].shape == scene.shape and labels[name][100, 180] == 6, name
    assert json.loads((tmp_path / "s.json").read_text())["frames_out"] == 8


def test_one_bad_file_does_not_stop_the_batch(tmp_path: Path, oracle_model: Path) -> None:
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.png"), paint(np.full((64, 64), i, np.uint8)))
    cv2.imwrite(str(folder / "sub" / "deep.jpg"), paint(np.full((64, 64), 5, np.uint8)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    strip = paint(np.full((4, 4000), 3, np.uint8))  # 1024 windows: refused before any is cut
    cv2.imwrite(str(folder / "strip.png"), strip)
    result = run_vidseg("process", folder, "--recursive", "--model", oracle_model, "-o", tmp_path / "overlay",
                        "--labels", tmp_path / "labels", "--summary", tmp_path / "s.json")
    assert result.returncode == 1, result.stderr
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames_out"] == 4
    assert [f["input"] for f in summary["failures"]] == ["broken.jpg", "strip.png"]
    assert "too elongated" in summary["failures"][1]["error"]
    assert (tmp_path / "labels" / "sub" / "deep.png").exists()
    assert (tmp_path / "overlay" / "img2.png").exists()
    assert np.asarray(Image.open(tmp_path / "labels" / "img1.png"))[32, 32] == 1
    alone = run_vidseg("process", folder / "strip.png", "--model", oracle_model, "--labels", tmp_path / "one")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert alone.stderr.strip().splitlines()[-1].startswith("vidseg: error: ") and "too elongated" in alone.stderr


def test_decode_errors_mid_video_are_skipped_and_counted(tmp_path: Path, oracle_model: Path) -> None:
    src = tmp_path / "mjpeg.avi"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuvj420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(paint(np.full((96, 128), i % 8, np.uint8)), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(src.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[5] + 2: starts[6] - 8] = b"\x00" * (starts[6] - 8 - starts[5] - 2)  # frame 5 is garbage
    src.write_bytes(bytes(data))
    result = run_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--summary",
                        tmp_path / "s.json", "--quiet")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert result.returncode == 1, result.stderr
    assert summary["decode_errors"] >= 1 and summary["frames_out"] == 10 - summary["decode_errors"]
    assert len(probe_frames(tmp_path / "out.mp4")[0]) == summary["frames_out"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_a_playable_video(tmp_path: Path, tiny_model: Path, media: Path, sig: int) -> None:
    out, labels = tmp_path / "out.mp4", tmp_path / "labels"
    proc = start_vidseg("process", media / "vtest.avi", "--model", tiny_model, "-o", out, "--labels", labels, "--quiet")
    wait_for(lambda: len(list(labels.glob("0*.png"))) >= 4 or proc.poll() is not None)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    times, info = probe_frames(out)
    pngs = sorted(labels.glob("0*.png"))
    assert 4 <= len(times) < 795 and len(times) == len(pngs)
    assert info["codec"] == "h264"
    assert not list(tmp_path.glob(".*partial*"))


def test_resume_finishes_a_killed_batch(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = cv2.imread(str(media / "aloeL.jpg"))
    for i in range(24):
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), photo[i * 10: i * 10 + 480, i * 15: i * 15 + 640])
    labels = tmp_path / "labels"
    proc = start_vidseg("process", folder, "--model", tiny_model, "--labels", labels, "--quiet")
    wait_for(lambda: len(list(labels.glob("p*.png"))) >= 5 or proc.poll() is not None)
    proc.kill()  # no chance to clean up: only atomic writes keep the outputs trustworthy
    proc.wait()
    done_before = {p.name for p in labels.glob("p*.png")}
    assert 5 <= len(done_before) < 24
    for p in labels.glob("p*.png"):
        assert np.asarray(Image.open(p)).shape == (480, 640)  # every visible file is complete
    result = run_vidseg("process", folder, "--model", tiny_model, "--labels", labels, "--resume", "--summary",
                        tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["resumed"] == len(done_before) and summary["frames_out"] == 24 - len(done_before)
    assert len(list(labels.glob("p*.png"))) == 24


def test_memory_stays_flat_over_thousands_of_frames(tmp_path: Path, oracle_model: Path) -> None:
    n = 3000
    frames = [paint(np.full((48, 64), i % 8, np.uint8)) for i in range(n)]
    src = encode_video(tmp_path / "long.mp4", frames, crf=30)
    proc = start_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--stats",
                  tmp_path / "stats.jsonl", "--quiet")
    ps = psutil.Process(proc.pid)
    samples = []
    while proc.poll() is None:
        try:
            lines = (tmp_path / "stats.jsonl").read_text().count("\n") if (tmp_path / "stats.jsonl").exists() else 0
            samples.append((lines, ps.memory_info().rss))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    early = [rss for done, rss in samples if n * 0.2 <= done <= n * 0.4]
    late = [rss for done, rss in samples if done >= n * 0.8]
    assert early and late, samples[:5]
    growth_mb = (max(late) - max(early)) / 2**20
    assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB between 30% and the end"
    assert len(probe_frames(tmp_path / "out.mp4")[0]) == n
