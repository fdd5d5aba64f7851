"""Input resolution and display times, in-process: what a typed input becomes, and each frame's time."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import encode_video
from PIL import Image

from vidseg.errors import InputError
from vidseg.inputs.sources import CollectionSource, ImageSource, VideoSource, open_source
from vidseg.inputs.timestamps import display_times

pytestmark = pytest.mark.fast


def image(path: Path, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(path)
    return path


def video(path: Path, n: int = 3, fps: Fraction = Fraction(30000, 1001)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode_video(path, [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(n)], fps=fps)


def test_a_folder_of_images_is_an_image_batch_without_hidden_files(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg", "sub/c.png", ".a.png.123.partial.png"):
        image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not media")
    flat = open_source(str(tmp_path))
    assert isinstance(flat, ImageSource) and [p.name for p in flat.files] == ["a.jpg", "b.png"]
    deep = open_source(str(tmp_path), recursive=True)
    assert [str(f.name) for f in deep.frames()] == ["a.jpg", "b.png", "sub/c.png"]


def test_a_folder_with_videos_is_a_collection_named_relative_to_it(tmp_path: Path) -> None:
    video(tmp_path / "day1" / "gate.mp4")
    image(tmp_path / "day1" / "snap.png")
    source = open_source(str(tmp_path), recursive=True)
    assert isinstance(source, CollectionSource)
    assert [str(e.name) for e in source.entries] == ["day1/gate.mp4", "day1/snap.png"]
    assert source.frame_count == 4  # three video frames and one image
    frames = list(source.frames())
    assert [(f.input, f.index) for f in frames] == [("day1/gate.mp4", 0), ("day1/gate.mp4", 1),
                                                     ("day1/gate.mp4", 2), ("day1/snap.png", 0)]


def test_the_run_s_own_output_folder_is_not_an_input(tmp_path: Path) -> None:
    image(tmp_path / "in.png")
    image(tmp_path / "out" / "in.png")
    source = open_source(str(tmp_path), recursive=True, exclude=[tmp_path / "out"])
    assert [p.name for p in source.files] == ["in.png"]


def test_a_glob_names_files_relative_to_its_fixed_part(tmp_path: Path) -> None:
    video(tmp_path / "cams" / "a" / "1.mp4")
    video(tmp_path / "cams" / "b" / "2.mp4")
    source = open_source(f"{tmp_path}/cams/*/*.mp4")
    assert [str(e.name) for e in source.entries] == ["a/1.mp4", "b/2.mp4"]
    with pytest.raises(InputError, match="no files match"):
        open_source(f"{tmp_path}/cams/*/*.mkv")


def test_a_list_skips_comments_and_resolves_paths_beside_it(tmp_path: Path) -> None:
    video(tmp_path / "clips" / "x.mp4")
    image(tmp_path / "clips" / "y.png")
    listing = tmp_path / "clips" / "list.txt"
    listing.write_text("# tonight's clips\n\nx.mp4\n  y.png  \nmissing.mp4\n")
    source = open_source(f"@{listing}")
    assert [str(e.name) for e in source.entries] == ["x.mp4", "y.png", "missing.mp4"]
    failed = [f for f in source.frames() if f.error]
    assert len(failed) == 1 and failed[0].input == "missing.mp4"
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="names no inputs"):
        open_source(f"@{tmp_path / 'empty.txt'}")


def test_missing_and_odd_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "fake.mp4").write_text("not a video")
    with pytest.raises(InputError, match="not a readable video"):
        open_source(str(tmp_path / "fake.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images or videos"):
        open_source(str(tmp_path / "empty"))


def test_an_unreadable_image_in_a_folder_is_a_skipped_frame(tmp_path: Path) -> None:
    image(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    frames = list(open_source(str(tmp_path)).frames())
    assert [(str(f.name), f.image is None) for f in frames] == [("bad.png", True), ("good.png", False)]
    assert "not a readable image" in (frames[0].error or "")


def test_a_video_keeps_its_exact_rate_and_times(tmp_path: Path) -> None:
    source = open_source(str(video(tmp_path / "ntsc.mp4", n=4)))
    assert isinstance(source, VideoSource) and source.fps == Fraction(30000, 1001)
    times = [float(f.pts * source.time_base) for f in source.frames()]
    assert times == pytest.approx([i * 1001 / 30000 for i in range(4)], abs=1e-4)


def decoded(pairs: list[tuple[int | None, int | None]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(pts=p, dts=d) for p, d in pairs]


def test_display_times_follow_pts_when_it_increases() -> None:
    frames = decoded([(0, None), (1, 0), (2, 1), (3, 2)])
    assert [t for _, t in display_times(frames, 1)] == [0, 1, 2, 3]


def test_display_times_switch_to_dts_when_pts_steps_back() -> None:
    """Packed B-frames (DivX in AVI): pts steps back every third frame, dts counts on."""
    frames = decoded([(0, 0), (2, 1), (1, 2), (3, 3), (5, 4), (4, 5), (6, 6)])
    times = [t for _, t in display_times(frames, 1)]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_flushed_frames_without_timestamps_continue_by_the_frame_step() -> None:
    frames = decoded([(0, 0), (3000, 3000), (None, None), (None, None)])
    assert [t for _, t in display_times(frames, 3000)] == [0, 3000, 6000, 9000]
