"""A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head without CPUs and
worker nodes of one CPU each, every node its own raylet): a node removed and another added mid-run, the
driver killed and the run resumed, reuse on the cluster. Outputs must be those of a local run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import encode_video, run_vidseg, start_vidseg, wait_for
from PIL import Image
from test_cluster import assert_same_outputs, run_args

from vidseg.api import Segmenter
from vidseg.inputs.sources import VideoSource, open_source
from vidseg.runs.cluster.units import plan
from vidseg.runs.reuse import ReusePolicy

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")

SEGMENT_FRAMES = 4
FRAMES = 64


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """A static-camera street clip long enough to be busy on both nodes when one of them goes."""
    root = tmp_path_factory.mktemp("footage")
    cap = cv2.VideoCapture(str(media / "vtest.avi"))
    frames = [cv2.resize(cap.read()[1][:, 100:676], (256, 256)) for _ in range(FRAMES)]
    cap.release()
    encode_video(root / "street.mp4", frames, gop=SEGMENT_FRAMES)
    return root


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, footage: Path, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("local")
    result = run_vidseg(*run_args(footage, tiny_model, out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def cluster() -> ray_cluster_utils.Cluster:
    """Head (no CPUs: it only schedules) and two worker nodes of one CPU each (a test that removes one
    adds another)."""
    cluster = ray_cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def units_written(out: Path) -> int:
    return len(list((out / "labels" / "street" / ".pieces").glob("*/unit.json")))


def test_a_node_lost_and_a_node_joined_mid_run(tmp_path: Path, footage: Path, tiny_model: Path, local: Path,
                                               cluster: ray_cluster_utils.Cluster) -> None:
    summary_path = tmp_path / "summary.json"
    proc = start_vidseg(*run_args(footage, tiny_model, tmp_path), "--ray", cluster.address, "--ray-cpus", "1",
                        "--segment-frames", SEGMENT_FRAMES, "--summary", summary_path)
    wait_for(lambda: units_written(tmp_path) >= 3 or proc.poll() is not None, timeout=300)
    assert proc.poll() is None, "the run ended before a node could be removed"
    lost = cluster.list_all_nodes()[-1]
    cluster.remove_node(lost, allow_graceful=False)  # its raylet and workers die, units half done
    joined = cluster.add_node(num_cpus=1)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    for name in ("overlays", "labels"):
        assert_same_outputs(local / name, tmp_path / name)
    assert (tmp_path / "stats.jsonl").read_bytes() == (local / "stats.jsonl").read_bytes()
    by_node = json.loads(summary_path.read_text())["cluster"]["units_by_node"]
    assert by_node.get(lost.node_id, 0) >= 1  # it worked before it went
    assert by_node.get(joined.node_id, 0) >= 1  # the new node took work
    assert sum(by_node.values()) == FRAMES // SEGMENT_FRAMES


def test_the_driver_killed_then_resumed_keeps_finished_segments(tmp_path: Path, footage: Path, tiny_model: Path,
                                                                local: Path, cluster: ray_cluster_utils.Cluster
                                                                ) -> None:
    args = [*run_args(footage, tiny_model, tmp_path), "--ray", cluster.address, "--ray-cpus", "1",
            "--segment-frames", SEGMENT_FRAMES]
    proc = start_vidseg(*args)
    wait_for(lambda: units_written(tmp_path) >= 4 or proc.poll() is not None, timeout=300)
    assert proc.poll() is None, "the run ended before the driver could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (tmp_path / "overlays" / "street.mp4").exists()  # nothing half-joined under a final name
    assert not (tmp_path / "labels" / "street" / "frames.json").exists()
    finished = units_written(tmp_path)

    result = run_vidseg(*args, "--resume", "--summary", tmp_path / "summary.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["cluster"]["units_resumed"] >= finished
    for name in ("overlays", "labels"):
        assert_same_outputs(local / name, tmp_path / name)
    assert (tmp_path / "stats.jsonl").read_bytes() == (local / "stats.jsonl").read_bytes()


def test_reuse_on_the_cluster_restarts_at_each_segment(tmp_path: Path, footage: Path, tiny_model: Path,
                                                       cluster: ray_cluster_utils.Cluster) -> None:
    video = footage / "street.mp4"
    result = run_vidseg("process", video, "--model", tiny_model, "--device", "CPU", "--labels", tmp_path, "--reuse",
                        "--ray", cluster.address, "--ray-cpus", "1", "--segment-frames", 16, "--quiet",
                        "--summary", tmp_path.parent / "reuse.json")
    assert result.returncode == 0, result.stderr
    units = list(plan(open_source(str(video)), 16))
    reuse = json.loads((tmp_path.parent / "reuse.json").read_text())["reuse"]
    assert len(units) >= 3 and reuse["full_frames"] >= len(units)  # each segment starts in full
    assert reuse["partial_frames"] > 0 and reuse["tokens_computed"] < reuse["tokens_total"]

    # A local --reuse run that restarts at the same frames: each segment from a full first frame.
    seg = Segmenter(tiny_model, "CPU")
    expected: list[np.ndarray] = []
    for unit in units:
        with seg.stream(VideoSource(video, first_pts=unit.first_pts, end_pts=unit.end_pts),
                        reuse=ReusePolicy()) as frames:
            expected += [f.labels for f in frames]
    got = [np.array(Image.open(tmp_path / f"{i:06d}.png")) for i in range(FRAMES)]  # palette index = class id
    assert len(expected) == FRAMES and not (tmp_path / f"{FRAMES:06d}.png").exists()
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(a, b), f"frame {i}"
