"""Output planning and the file sinks, in-process: paths checked before any work, files as users get them."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import encode_video
from fake_engine import CLASSES, info

from vidseg.errors import VidsegError
from vidseg.home import default_model_dir, models_dir
from vidseg.inputs.sources import open_source
from vidseg.model.classes import class_table, colors_by_name
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.plan import plan_outputs
from vidseg.outputs.sink import VideoFacts
from vidseg.outputs.stats import stats_record
from vidseg.outputs.video import VideoFileSink
from vidseg.outputs.writer import CollectionWriter, Writer
from vidseg.render import Palette
from vidseg.result import FrameResult, class_shares

pytestmark = pytest.mark.fast
OVERLAY = OverlayOptions()


def flags(input_path: Path, **kw) -> argparse.Namespace:
    base = {"input": str(input_path), "output": None, "labels": None, "stats": None, "summary": None,
            "resume": False}
    return argparse.Namespace(**{**base, **kw})


def clip(path: Path, n: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode_video(path, [np.full((32, 48, 3), 60, np.uint8)] * n, fps=Fraction(30000, 1001))


def plan(input_path: Path, **kw):
    source = open_source(str(input_path), recursive=True)
    try:
        return plan_outputs(flags(input_path, **kw), source, OVERLAY)
    finally:
        source.close()


def test_wrong_outputs_are_refused_before_any_work(tmp_path: Path) -> None:
    video = clip(tmp_path / "in.mp4")
    with pytest.raises(VidsegError, match="-o must be a video file"):
        plan(video, output=tmp_path / "out.avi")
    with pytest.raises(VidsegError, match="would overwrite the input"):
        plan(video, output=video)
    with pytest.raises(VidsegError, match="cannot create output folder"):
        plan(video, output=Path("/proc/vidseg/out.mp4"))
    assert isinstance(plan(video, output=tmp_path / "o" / "out.mkv"), Writer)
    assert not list((tmp_path / "o").iterdir())  # planning creates the folder, writes nothing


def test_two_inputs_of_a_collection_may_not_write_the_same_file(tmp_path: Path) -> None:
    clip(tmp_path / "in" / "gate.mp4")
    clip(tmp_path / "in" / "gate.mov")
    assert isinstance(plan(tmp_path / "in", output=tmp_path / "out"), CollectionWriter)  # .mov stays .mov
    (tmp_path / "in" / "gate.mov").rename(tmp_path / "in" / "gate.avi")  # an .avi overlay becomes .mp4
    with pytest.raises(VidsegError, match=r"gate.avi and gate.mp4 would both write .*out/gate.mp4"):
        plan(tmp_path / "in", output=tmp_path / "out")
    with pytest.raises(VidsegError, match="must not be an input folder"):
        plan(tmp_path / "in", labels=tmp_path / "in")


def test_overlay_options_are_checked_where_they_are_defined() -> None:
    for kwargs, message in (({"alpha": 1.5}, "alpha must be between 0 and 1"), ({"crf": 60}, "crf must be"),
                            ({"preset": "warp"}, "preset must be one of")):
        with pytest.raises(VidsegError, match=message):
            OverlayOptions(**kwargs)


def result(labels: np.ndarray, index: int = 0, **kw) -> FrameResult:
    i = info()
    image = np.zeros((*labels.shape, 3), np.uint8)
    return FrameResult(labels=labels, palette=Palette(i.class_colors), class_names=tuple(CLASSES), index=index,
                       image=image, **kw)


def test_class_shares_are_counted_once_for_stats_and_preview() -> None:
    labels = np.array([[0, 0, 3, 3], [3, 3, 3, 3]], np.uint8)
    assert class_shares(labels, 4).tolist() == [0.25, 0.0, 0.0, 0.75]
    record = stats_record(result(labels, index=7, time=1.5))
    assert record == {"frame": 7, "time": 1.5, "classes": {"white": 0.75, "black": 0.25}}
    assert list(record["classes"]) == ["white", "black"]  # largest first


def test_a_video_file_keeps_the_exact_rate_and_every_timestamp(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    facts = VideoFacts(width=31, height=17, time_base=Fraction(1, 30000), fps=Fraction(30000, 1001))
    pts = [0, 1001, 3003, 4004]  # a frame missing: variable frame rate stays variable
    with VideoFileSink(out, OVERLAY) as sink:
        sink.open(facts)
        for i, p in enumerate(pts):
            sink.write(result(np.full((17, 31), i % 4, np.uint8), index=i, pts=p))
        assert not out.exists()  # only a finished file gets its name
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        got = [int(f.pts * s.time_base * 30000) for f in c.decode(s)]
        assert (s.width, s.height, s.average_rate is not None) == (32, 18, True)  # padded to even sizes
    assert got == pts


def test_an_interrupted_collection_video_leaves_nothing_under_its_name(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "v.mp4", OVERLAY, keep_partial=False)
    sink.open(VideoFacts(width=16, height=16, time_base=Fraction(1, 1000), fps=Fraction(25)))
    sink.write(result(np.zeros((16, 16), np.uint8), pts=0))
    sink.close(complete=False)
    assert list(tmp_path.iterdir()) == []


def test_frames_json_is_written_only_for_a_complete_run(tmp_path: Path) -> None:
    for complete in (True, False):
        folder = tmp_path / str(complete)
        writer = Writer(labels=folder)
        writer.write(result(np.zeros((4, 4), np.uint8), time=0.04))
        writer.close(complete=complete)
        assert (folder / "frames.json").exists() == complete
        assert json.loads((folder / "labels.json").read_text())[3]["name"] == "white"


def test_dataset_palettes_ship_with_the_package() -> None:
    ade = class_table("ade20k")
    assert len(ade) == 150 and ade[0] == ("wall", (120, 120, 120))
    assert colors_by_name(["wall", "sky", "no such class"]) == {"wall": (120, 120, 120), "sky": dict(ade)["sky"]}


def test_the_default_model_is_found_in_the_checkout_or_the_data_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDSEG_HOME", str(tmp_path / "home"))
    assert default_model_dir() == tmp_path / "home" / "models" / "seg_tiny_mask"
    assert models_dir() == tmp_path / "home" / "models"
    (tmp_path / "models" / "seg_tiny_mask").mkdir(parents=True)
    assert models_dir() == Path("models")  # a checkout's models/ is where convert writes
    (tmp_path / "models" / "seg_tiny_mask" / "model.xml").write_text("<net/>")
    assert default_model_dir() == Path("models/seg_tiny_mask")
