"""Collections: many videos and images in one run, each written as a single run would write it."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import av
import cv2
import pytest
from conftest import encode_video, ffmpeg, one_line_error, probe_frames, run_vidseg, start_vidseg, wait_for
from PIL import Image


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """Real clips: Megamind (MPEG-4 in AVI, 2997/125 fps, AC3 audio), vtest re-encoded to H.264 in a
    subfolder, a photograph, and a file that is neither."""
    root = tmp_path_factory.mktemp("footage")
    (root / "day2").mkdir()
    ffmpeg("-i", media / "Megamind.avi", "-t", "0.35", "-c", "copy", root / "megamind.avi")
    ffmpeg("-i", media / "vtest.avi", "-frames:v", "5", "-c:v", "libx264", "-preset", "ultrafast",
           root / "day2" / "vtest.mp4")
    shutil.copy(media / "fruits.jpg", root / "fruits.jpg")
    (root / "notes.txt").write_text("not media\n")
    return root


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def decoded(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").tobytes() for f in c.decode(c.streams.video[0])]


def test_a_folder_of_videos_and_images_is_written_as_single_runs_would(tmp_path: Path, footage: Path,
                                                                       oracle_model: Path) -> None:
    out, labels = tmp_path / "overlays", tmp_path / "labels"
    result = run_vidseg("process", footage, "--recursive", "--model", oracle_model, "-o", out, "--labels", labels,
                        "--stats", tmp_path / "stats.jsonl", "--summary", tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    by_input = {e["input"]: e for e in summary["inputs"]}
    assert set(by_input) == {"megamind.avi", "day2/vtest.mp4", "fruits.jpg"}  # notes.txt is not media
    assert by_input["megamind.avi"]["frames_out"] == 9 and by_input["day2/vtest.mp4"]["frames_out"] == 5
    assert summary["frames_out"] == 15 and summary["skipped"] == 0

    singles = tmp_path / "singles"
    for video, stem in ((footage / "megamind.avi", "megamind"), (footage / "day2" / "vtest.mp4", "day2/vtest")):
        single = run_vidseg("process", video, "--model", oracle_model, "-o", singles / f"{stem}.mp4",
                            "--labels", singles / stem, "--quiet")
        assert single.returncode == 0, single.stderr
        assert pngs(labels / stem) == pngs(singles / stem) and len(pngs(labels / stem)) > 0
        frames_json = json.loads((labels / stem / "frames.json").read_text())
        assert frames_json == json.loads((singles / stem / "frames.json").read_text())
        # Display times: the source's pts in display order (Megamind's packed B-frames hand them out of order).
        assert frames_json["times"] == pytest.approx(sorted(probe_frames(video)[0]), abs=1e-6)
        assert not (labels / stem / "labels.json").exists()  # the class table is written once, at the top
        assert probe_frames(out / f"{stem}.mp4") == probe_frames(singles / f"{stem}.mp4")
        assert decoded(out / f"{stem}.mp4") == decoded(singles / f"{stem}.mp4")
    assert probe_frames(out / "megamind.mp4")[1]["audio"] == ["ac3"]
    assert (labels / "labels.json").exists() and (labels / "fruits.png").exists() and (out / "fruits.png").exists()
    records = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r.get("input", r.get("name")) for r in records].count("megamind.avi") == 9
    assert {r["name"] for r in records if "name" in r} == {"fruits.jpg"}


def test_list_file_and_glob_inputs(tmp_path: Path, footage: Path, oracle_model: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# tonight's footage\n{footage / 'megamind.avi'}\n\n{footage / 'day2' / 'vtest.mp4'}\n"
                       f"{footage / 'gone.mp4'}\n")
    result = run_vidseg("process", f"@{listing}", "--model", oracle_model, "--labels", tmp_path / "from_list",
                        "--summary", tmp_path / "s.json", "--quiet")
    assert result.returncode == 1, result.stderr  # the missing entry is reported, the rest is done
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [f["input"] for f in summary["failures"]] == ["gone.mp4"]
    assert len(pngs(tmp_path / "from_list" / "megamind")) == 9
    assert len(pngs(tmp_path / "from_list" / "day2" / "vtest")) == 5

    result = run_vidseg("process", f"{footage}/**/*.mp4", "--model", oracle_model, "--labels", tmp_path / "glob",
                        "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "glob").iterdir()) == ["day2", "labels.json"]


def test_a_broken_video_in_the_middle_is_listed_and_skipped(tmp_path: Path, oracle_model: Path,
                                                            footage: Path) -> None:
    folder = tmp_path / "cams"
    folder.mkdir()
    good = footage / "day2" / "vtest.mp4"
    shutil.copy(good, folder / "a.mp4")
    (folder / "b.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    shutil.copy(good, folder / "c.mp4")
    result = run_vidseg("process", folder, "--model", oracle_model, "-o", tmp_path / "out", "--summary",
                        tmp_path / "s.json")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "failed: b.mp4" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "c.mp4"]
    assert len(probe_frames(tmp_path / "out" / "c.mp4")[0]) == 5


def test_clashing_names_and_a_video_file_output_are_one_line_errors(tmp_path: Path, oracle_model: Path,
                                                                    footage: Path) -> None:
    folder = tmp_path / "clash"
    folder.mkdir()
    shutil.copy(footage / "megamind.avi", folder / "cam.avi")
    shutil.copy(footage / "day2" / "vtest.mp4", folder / "cam.mp4")
    one_line_error(run_vidseg("process", folder, "--model", oracle_model, "-o", tmp_path / "out"), 2,
                   "cam.avi and cam.mp4 would both write")
    one_line_error(run_vidseg("process", footage, "--model", oracle_model, "-o", tmp_path / "out.mp4"), 2,
                   "for a collection of videos -o is a folder")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_outputs_inside_the_input_folder_are_not_read_back(tmp_path: Path, oracle_model: Path,
                                                            footage: Path) -> None:
    folder = tmp_path / "footage"
    shutil.copytree(footage, folder)
    args = ["process", folder, "--recursive", "--model", oracle_model, "-o", folder / "overlays", "--labels",
            folder / "labels", "--quiet", "--summary", tmp_path / "s.json"]
    assert run_vidseg(*args).returncode == 0
    again = run_vidseg(*args, "--resume")
    assert again.returncode == 0, again.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["resumed"] == 3 and summary["frames_out"] == 0  # its own overlays and PNGs are no inputs
    assert sorted(e["input"] for e in summary["inputs"]) == ["day2/vtest.mp4", "fruits.jpg", "megamind.avi"]


@pytest.fixture
def three_clips(tmp_path: Path, media: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    cap = cv2.VideoCapture(str(media / "vtest.avi"))
    frames = [cv2.resize(cap.read()[1], (320, 240)) for _ in range(30)]
    cap.release()
    for k in range(3):
        encode_video(folder / f"v{k}.mp4", frames[k * 10:(k + 1) * 10])
    return folder


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_stopped_collection_leaves_only_finished_videos_and_resumes(tmp_path: Path, tiny_model: Path,
                                                                    three_clips: Path, stop: str) -> None:
    out, labels = tmp_path / "out", tmp_path / "labels"
    args = ["process", three_clips, "--model", tiny_model, "-o", out, "--labels", labels, "--quiet"]
    proc = start_vidseg(*args)
    wait_for(lambda: (out / "v0.mp4").exists() or proc.poll() is not None)
    if stop == "SIGKILL":
        proc.kill()  # no chance to clean up
    else:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert "Traceback" not in stderr
    assert proc.returncode == (-9 if stop == "SIGKILL" else 130), stderr
    finished = sorted(p.name for p in out.glob("v*.mp4"))
    assert "v0.mp4" in finished and "v2.mp4" not in finished  # an unfinished video has no final name
    for name in finished:
        assert len(probe_frames(out / name)[0]) == 10
        assert json.loads((labels / Path(name).stem / "frames.json").read_text())["frames"] == 10
    if stop == "SIGINT":
        assert not list(out.glob(".*partial*"))  # a clean stop removes its unfinished file
    finished_at = {n: (out / n).stat().st_mtime_ns for n in finished}

    result = run_vidseg(*args[:-1], "--resume", "--summary", tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["resumed"] == len(finished) and summary["frames_out"] == 10 * (3 - len(finished))
    for k in range(3):
        assert len(probe_frames(out / f"v{k}.mp4")[0]) == 10
        assert len(pngs(labels / f"v{k}")) == 10
    assert all((out / n).stat().st_mtime_ns == t for n, t in finished_at.items())  # not redone
    with Image.open(labels / "v2" / "000009.png") as im:
        assert im.mode == "P" and im.size == (320, 240)
