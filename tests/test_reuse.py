"""Reuse between frames (--reuse): an approximation that must stay close to the exact path, reuse what
did not change, and recompute in full where the picture changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import encode_video, run_vidseg
from PIL import Image

from vidseg.api import Segmenter
from vidseg.inputs.sources import Frame, Source
from vidseg.runs.reuse import ReusePolicy


def video_frames(path: Path, count: int, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok, path
        if start:
            start -= 1
            continue
        frames.append(frame)
    cap.release()
    return frames


def labels_of(folder: Path) -> list[np.ndarray]:
    return [np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_reuse_stays_close_to_exact_on_real_cctv(proxy_model: Path, media: Path) -> None:
    seg = Segmenter(proxy_model, "CPU")
    exact = [f.labels for f in seg.stream(media / "vtest.avi", max_frames=40)]
    with seg.stream(media / "vtest.avi", max_frames=40, reuse=ReusePolicy()) as frames:
        reused = [f.labels for f in frames]
    agreement = np.array([(a == b).mean() for a, b in zip(exact, reused)])
    stats = frames.summary.reuse
    # frame 0, and frame 2 where the clip's encoding refreshes most of the picture (63% of its patches)
    assert len(reused) == 40 and stats["full_frames"] <= 3 and stats["partial_frames"] >= 37
    assert stats["tokens_computed"] / stats["tokens_total"] < 0.3  # people walking through a still scene
    assert agreement.mean() >= 0.985 and agreement.min() >= 0.97, agreement


def test_full_recompute_through_the_reuse_model_matches_exact(proxy_model: Path, media: Path) -> None:
    seg = Segmenter(proxy_model, "CPU")
    exact = [f.labels for f in seg.stream(media / "vtest.avi", max_frames=4)]
    with seg.stream(media / "vtest.avi", max_frames=4, reuse=ReusePolicy(refresh=1)) as frames:
        full = [f.labels for f in frames]
    assert frames.summary.reuse["full_frames"] == 4
    for a, b in zip(exact, full):
        assert (a == b).mean() >= 0.9999


class FramesWithGaps(Source):
    """Real frames whose indices skip where a live intake dropped some (it drops the oldest waiting frame
    when the model falls behind): what the pipeline receives from a live source, made deterministic."""

    def __init__(self, images: list[np.ndarray], dropped: set[int]):
        self.images, self.dropped = images, dropped

    def frames(self) -> Iterator[Frame]:
        return (Frame(i, image) for i, image in enumerate(self.images) if i not in self.dropped)


def test_frames_left_out_are_compared_with_what_was_last_computed(proxy_model: Path, media: Path) -> None:
    """Frames after a gap (a live intake dropped some, or a service samples at a lower fps) are patched
    like the others, from the pixels each patch was last computed from: no full recompute, and labels as
    close to the exact ones as between gaps."""
    images = video_frames(media / "vtest.avi", 24)
    seg = Segmenter(proxy_model, "CPU")
    exact = [f.labels for f in seg.stream(images)]
    with seg.stream(FramesWithGaps(images, {9, 17, 18}), reuse=ReusePolicy(refresh=1000)) as frames:
        got = {f.index: f.labels for f in frames}
    stats = frames.summary.reuse
    assert sorted(got) == [i for i in range(24) if i not in {9, 17, 18}]
    # frame 0 in full (and frame 2, where the clip's encoding refreshes much of the picture, if the change
    # measure sees more than half of its patches change); the frames after the gaps are partial
    assert 1 <= stats["full_frames"] <= 2 and stats["partial_frames"] == 21 - stats["full_frames"]
    partial = [i for i in got if (got[i] != exact[i]).any()]
    assert {10, 19} <= set(partial) and len(partial) >= 15
    assert all((got[i] == exact[i]).mean() >= 0.97 for i in partial)


def test_static_video_is_reused_and_a_cut_recomputes(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    still = video_frames(media / "vtest.avi", 1)[0]
    other = cv2.resize(video_frames(media / "Megamind.avi", 1, start=100)[0], still.shape[1::-1])
    video = encode_video(tmp_path / "cut.mp4", [still] * 12 + [other] * 12, crf=0)
    result = run_vidseg("process", video, "--model", tiny_model, "--device", "CPU", "--reuse",
                        "--labels", tmp_path / "reuse", "--summary", tmp_path / "summary.json", "--quiet")
    assert result.returncode == 0, result.stderr
    exact = run_vidseg("process", video, "--model", tiny_model, "--device", "CPU", "--labels",
                       tmp_path / "exact", "--quiet")
    assert exact.returncode == 0, exact.stderr
    stats = json.loads((tmp_path / "summary.json").read_text())["reuse"]
    # frame 0 and the cut are computed in full; every other frame of each still shot is reused whole
    assert stats["full_frames"] == 2 and stats["partial_frames"] == 22
    assert stats["windows_reused"] == 22 * 2 and stats["tokens_computed"] == 2 * stats["tokens_total"] / 24
    reused, expected = labels_of(tmp_path / "reuse"), labels_of(tmp_path / "exact")
    assert len(reused) == 24
    assert all((r == reused[0]).all() for r in reused[:12]) and all((r == reused[12]).all() for r in reused[12:])
    assert (reused[0] != reused[12]).mean() > 0.1  # the cut's labels are new, not carried over
    for i in (0, 12):
        assert (reused[i] == expected[i]).mean() >= 0.999


def test_reuse_refuses_what_it_cannot_do(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("model.xml", "model.bin"):
        (plain / name).symlink_to(tiny_model / name)
    result = run_vidseg("process", media / "vtest.avi", "--model", plain, "--reuse", "--max-frames", "2",
                        "--labels", tmp_path / "out", "--quiet")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no model_reuse.xml" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag,value", [("--reuse-threshold", "-1"), ("--reuse-refresh", "0")])
def test_reuse_settings_are_checked(tmp_path: Path, tiny_model: Path, media: Path, flag: str, value: str) -> None:
    result = run_vidseg("process", media / "vtest.avi", "--model", tiny_model, "--reuse", flag, value,
                        "--labels", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert flag.removeprefix("--").replace("-", " ") + " must be" in result.stderr  # names the setting
