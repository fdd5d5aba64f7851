"""Video round trips: every frame once with its timestamp, audio kept, orientation kept, formats right."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from conftest import encode_video, ffmpeg, probe_frames, run_vidseg
from oracle import NAMES, PALETTE_BGR, interior, paint
from PIL import Image

from vidseg import Writer
from vidseg.errors import VidsegError


def asymmetric_scene(width: int, height: int, shift: int = 0) -> np.ndarray:
    labels = np.full((height, width), 6, dtype=np.uint8)  # white
    labels[: height // 2, : width // 3] = 0  # red block top-left: shows any rotation or flip
    labels[height // 2:, width // 2 + shift:] = 2  # blue bottom-right
    return labels


def test_variable_frame_rate_keeps_every_timestamp(tmp_path: Path, oracle_model: Path) -> None:
    pts_ms = [0, 40, 80, 200, 233, 500, 520, 900, 1000, 1450]
    frames = [paint(asymmetric_scene(320, 240, 4 * i)) for i in range(len(pts_ms))]
    src = encode_video(tmp_path / "vfr.mp4", frames, fps=Fraction(25), pts=pts_ms, time_base=Fraction(1, 1000))
    in_times, _ = probe_frames(src)
    result = run_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--quiet")
    assert result.returncode == 0, result.stderr
    out_times, info = probe_frames(tmp_path / "out.mp4")
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert len(out_times) == len(in_times) == len(pts_ms)
    np.testing.assert_allclose(out_times, in_times, atol=1e-3)


def test_ntsc_rate_audio_and_frame_count(tmp_path: Path, oracle_model: Path) -> None:
    frames = [paint(asymmetric_scene(352, 288, i)) for i in range(30)]
    silent = encode_video(tmp_path / "v.mp4", frames, fps=Fraction(30000, 1001))
    src = tmp_path / "with_audio.mp4"
    ffmpeg("-i", silent, "-f", "lavfi", "-i", "sine=frequency=440:duration=1.0", "-c:v", "copy", "-c:a", "aac",
           "-shortest", src)
    in_times, _ = probe_frames(src)
    result = run_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--summary",
                        tmp_path / "summary.json", "--stats", tmp_path / "stats.jsonl", "--quiet")
    assert result.returncode == 0, result.stderr
    out_times, info = probe_frames(tmp_path / "out.mp4")
    assert info["audio"] == ["aac"]
    assert info["rate"] == Fraction(30000, 1001)  # not rounded to 29 or 30
    assert len(out_times) == len(in_times)
    np.testing.assert_allclose(out_times, in_times, atol=1e-3)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_out"] == len(in_times) and summary["skipped"] == 0
    assert set(summary["stage_ms_per_frame"]) >= {"decode", "inference", "stitch", "render", "write"}
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    assert len(lines) == len(in_times)
    first = json.loads(lines[0])
    assert first["frame"] == 0 and abs(sum(first["classes"].values()) - 1) < 1e-3
    assert max(first["classes"], key=first["classes"].get) == "white"


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_phone_video_is_labelled_as_displayed(tmp_path: Path, oracle_model: Path, rotation: int) -> None:
    stored = asymmetric_scene(384, 216)
    plain = encode_video(tmp_path / "plain.mp4", [paint(stored)] * 3)
    src = tmp_path / "rotated.mp4"
    ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", f"rotate={rotation}", src)  # as phones tag it
    shown = tmp_path / "shown.png"
    ffmpeg("-i", src, "-frames:v", "1", shown)  # ffmpeg applies the display matrix: what a player shows
    displayed = np.asarray(Image.open(shown).convert("RGB"))[:, :, ::-1]
    expected = np.argmin(((displayed[:, :, None, :].astype(float) - PALETTE_BGR) ** 2).sum(-1), axis=2)
    result = run_vidseg("process", src, "--model", oracle_model, "--labels", tmp_path / "labels", "-o",
                        tmp_path / "out.mp4", "--quiet")
    assert result.returncode == 0, result.stderr
    got = np.asarray(Image.open(tmp_path / "labels" / "000000.png"))
    assert got.shape == expected.shape
    mask = interior(expected.astype(np.uint8), 16)
    assert (got[mask] == expected[mask]).all()
    _, info = probe_frames(tmp_path / "out.mp4")
    assert (info["height"], info["width"]) == expected.shape


def test_odd_size_and_single_frame(tmp_path: Path, oracle_model: Path) -> None:
    src = encode_video(tmp_path / "odd.mkv", [paint(asymmetric_scene(321, 239))], pix_fmt="yuv444p")
    result = run_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--labels",
                        tmp_path / "labels", "--quiet")
    assert result.returncode == 0, result.stderr
    times, info = probe_frames(tmp_path / "out.mp4")
    assert len(times) == 1 and (info["width"], info["height"]) == (322, 240)  # yuv420p needs even sizes
    with Image.open(tmp_path / "labels" / "000000.png") as im:
        assert im.mode == "P" and im.size == (321, 239)
        palette = np.asarray(im.getpalette()[: 3 * len(NAMES)]).reshape(-1, 3)
        np.testing.assert_array_equal(palette, PALETTE_BGR[:, ::-1])
        labels = np.asarray(im)
    assert set(np.unique(labels)) <= {0, 2, 6}
    table = json.loads((tmp_path / "labels" / "labels.json").read_text())
    assert table[0] == {"id": 0, "name": "red", "color": [255, 0, 0]}
    assert len(table) == len(NAMES)


def test_real_footage_start_end_and_max_frames(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    result = run_vidseg("process", media / "vtest.avi", "--model", tiny_model, "-o", tmp_path / "out.mp4",
                        "--start", "1.0", "--max-frames", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    times, info = probe_frames(tmp_path / "out.mp4")
    assert len(times) == 5 and (info["width"], info["height"]) == (768, 576)
    assert times[0] == pytest.approx(1.0, abs=0.11)


def test_packed_b_frames_get_their_display_times(tmp_path: Path, oracle_model: Path, media: Path) -> None:
    """Megamind.avi stores its B-frames DivX-style, packed into the frame before them, and FFmpeg hands out
    their pts out of order (every third frame steps back). Label PNGs, stats lines and the overlay still get
    one time per frame, increasing by one frame period."""
    src = media / "Megamind.avi"
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        period = float(1 / stream.average_rate)
        raw = [f.pts for _, f in zip(range(24), c.decode(stream))]
    assert any(b <= a for a, b in zip(raw, raw[1:]))  # the file is still the kind this test is about
    result = run_vidseg("process", src, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--labels",
                        tmp_path / "labels", "--stats", tmp_path / "stats.jsonl", "--max-frames", "24", "--quiet")
    assert result.returncode == 0, result.stderr
    times = json.loads((tmp_path / "labels" / "frames.json").read_text())["times"]
    assert len(times) == 24
    np.testing.assert_allclose(np.diff(times), period, rtol=1e-6)
    stats = [json.loads(line)["time"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(stats, times, atol=1e-5)
    shown, _ = probe_frames(tmp_path / "out.mp4")
    assert len(shown) == 24
    np.testing.assert_allclose(np.diff(shown), period, atol=1e-3)


def test_default_encoding_keeps_b_frames_and_high_profile_and_presets_are_checked(tmp_path: Path,
                                                                                 oracle_model: Path) -> None:
    """The default ``overlay`` preset (x264 ultrafast with CABAC, B-frames, deblocking, 8x8 transforms) makes
    a High-profile file with B-frames; a preset named wrongly is refused before anything is written."""
    frames = [paint(asymmetric_scene(320, 240, shift=i)) for i in range(16)]
    encode_video(tmp_path / "in.mp4", frames)
    result = run_vidseg("process", tmp_path / "in.mp4", "--model", oracle_model, "-o", tmp_path / "out.mp4", "--quiet")
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.mp4")) as c:
        stream = c.streams.video[0]
        kinds = {int(f.pict_type) for f in c.decode(stream)}
        assert stream.codec_context.profile == "High" and int(PictureType.B) in kinds
    assert len(probe_frames(tmp_path / "out.mp4")[0]) == 16
    bad = run_vidseg("process", tmp_path / "in.mp4", "--model", oracle_model, "-o", tmp_path / "bad.mp4",
                     "--preset", "fastest")
    assert bad.returncode == 2 and "--preset" in bad.stderr and not (tmp_path / "bad.mp4").exists()
    with pytest.raises(VidsegError, match="preset must be one of"):
        Writer(video=tmp_path / "api.mp4", preset="fastest")
