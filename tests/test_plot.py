"""vidseg plot: a real run's --stats drawn as a timeline in the dataset's colours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import encode_video, one_line_error, run_vidseg
from oracle import PALETTE_BGR, paint
from PIL import Image


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, oracle_model: Path) -> Path:
    """A clip that is all red for 1 s, then half blue and half green for 1 s, through vidseg process."""
    d = tmp_path_factory.mktemp("plotrun")
    red = np.zeros((120, 160), np.uint8)
    split = np.full((120, 160), 2, np.uint8)
    split[:, 80:] = 1
    encode_video(d / "clip.mp4", [paint(red)] * 10 + [paint(split)] * 10, fps=10)
    result = run_vidseg("process", d / "clip.mp4", "--model", oracle_model, "--stats", d / "stats.jsonl",
                        "--labels", d / "labels", "--quiet")
    assert result.returncode == 0, result.stderr
    return d


def colour_share(png: Path, bgr: np.ndarray) -> float:
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return float((np.abs(rgb - bgr[::-1].astype(int)).sum(axis=2) < 8).mean())


def test_timeline_png_shows_each_class_in_its_colour(tmp_path: Path, run: Path) -> None:
    out = tmp_path / "timeline.png"
    result = run_vidseg("plot", run / "stats.jsonl", "-o", out, "--classes", run / "labels" / "labels.json")
    assert result.returncode == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 800 and im.height > 300
    red, green, blue = (colour_share(out, PALETTE_BGR[k]) for k in (0, 1, 2))
    assert red > 0.05 and green > 0.02 and blue > 0.02  # the three bands are drawn in the palette's colours
    assert abs(green - blue) < 0.25 * max(green, blue)  # equal shares, equal areas
    assert colour_share(out, PALETTE_BGR[4]) < 0.001  # magenta never occurs in the clip


def test_timeline_svg_names_classes_and_shares_from_the_stats_alone(tmp_path: Path, run: Path) -> None:
    """No model and no class table: the stats name their classes."""
    stats = tmp_path / "stats.jsonl"
    stats.write_text((run / "stats.jsonl").read_text())
    out = tmp_path / "timeline.svg"
    result = run_vidseg("plot", stats, "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "red (50%)" in svg and "green (25%)" in svg and "blue (25%)" in svg and "time (s)" in svg


def test_labels_json_beside_the_stats_gives_the_colours(tmp_path: Path, run: Path) -> None:
    (tmp_path / "stats.jsonl").write_text((run / "stats.jsonl").read_text())
    (tmp_path / "labels.json").write_text((run / "labels" / "labels.json").read_text())
    out = tmp_path / "timeline.png"
    result = run_vidseg("plot", tmp_path / "stats.jsonl", "-o", out)
    assert result.returncode == 0, result.stderr
    assert colour_share(out, PALETTE_BGR[0]) > 0.05 and colour_share(out, PALETTE_BGR[1]) > 0.02


def test_stats_alone_are_an_output(tmp_path: Path, run: Path, oracle_model: Path) -> None:
    """Class shares for a plot need no overlay or label PNGs: --stats may be the only output."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((run / "clip.mp4").read_bytes())
    result = run_vidseg("process", clip, "--model", oracle_model, "--stats", tmp_path / "shares.jsonl", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "shares.jsonl"]
    assert (tmp_path / "shares.jsonl").read_text() == (run / "stats.jsonl").read_text()


def test_collection_stats_pick_an_input_and_bad_files_are_one_line_errors(tmp_path: Path, run: Path) -> None:
    lines = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    all_red = [{**r, "classes": {"red": 1.0}} for r in lines]
    mixed = tmp_path / "collection.jsonl"
    mixed.write_text("".join(json.dumps({**r, "input": "a.mp4"}) + "\n" for r in lines)
                     + "".join(json.dumps({**r, "input": "b.mp4"}) + "\n" for r in all_red))
    classes = run / "labels" / "labels.json"
    for name, legend in (("a.mp4", "red (50%)"), ("b.mp4", "red (100%)")):
        result = run_vidseg("plot", mixed, "-o", tmp_path / f"{name}.svg", "--classes", classes, "--input", name)
        assert result.returncode == 0, result.stderr
        svg = (tmp_path / f"{name}.svg").read_text()
        assert legend in svg and f"collection.jsonl: {name}" in svg
    assert "green" not in (tmp_path / "b.mp4.svg").read_text()
    one_line_error(run_vidseg("plot", mixed, "-o", tmp_path / "c.png", "--classes", classes, "--input", "c.mp4"),
                   2, "no input 'c.mp4'")
    (tmp_path / "bad.jsonl").write_text('{"frame": 0, "classes": {"red": 1.0}}\nnot json\n')
    one_line_error(run_vidseg("plot", tmp_path / "bad.jsonl", "-o", tmp_path / "x.png", "--classes", classes), 2,
                   "bad.jsonl:2: not a vidseg --stats line")
    one_line_error(run_vidseg("plot", run / "stats.jsonl", "-o", tmp_path / "x.jpg", "--classes", classes), 2,
                   "must end in .png or .svg")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.jpg").exists()
