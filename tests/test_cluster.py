"""Cluster runs on real Ray: a one-machine cluster of the run's own (--ray local) and one started with
``ray start`` on this machine, whose worker process is killed mid-task. Every run must write what a local
run writes: the same label PNGs byte for byte, the same overlay frames after decoding, the same audio."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest
from conftest import ROOT, encode_video, ffmpeg, one_line_error, run_vidseg, start_vidseg, wait_for

from vidseg.runs.cluster.units import keyframe_boundaries

RAY = Path(sys.executable).parent / "ray"
SEGMENT_FRAMES = 4


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """A phone clip (variable frame rate, AAC audio, rotation tag, a keyframe every 4 frames), a street
    clip and a photograph."""
    root = tmp_path_factory.mktemp("archive")
    (root / "phone").mkdir()
    cap = cv2.VideoCapture(str(media / "vtest.avi"))
    frames = [cv2.resize(cap.read()[1][:, 100:676], (192, 192)) for _ in range(26)]
    cap.release()
    steps = [40, 40, 80, 40, 120, 40, 40, 200, 40, 40, 80, 40, 40, 40, 120, 40]
    pts = [sum(steps[:i]) for i in range(16)]
    plain = encode_video(root / "plain.mp4", frames[:16], fps=Fraction(25), pts=pts, time_base=Fraction(1, 1000),
                         gop=SEGMENT_FRAMES)
    ffmpeg("-i", plain, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", "aac", "-shortest", "-metadata:s:v:0", "rotate=90", root / "phone" / "rot.mp4")
    plain.unlink()
    encode_video(root / "street.mp4", frames[16:], gop=5)
    shutil.copy(media / "fruits.jpg", root / "photo.jpg")
    return root


def run_args(archive: Path, model: Path, out: Path) -> list[object]:
    return ["process", archive, "--recursive", "--model", model, "--device", "CPU", "-o", out / "overlays",
            "--labels", out / "labels", "--stats", out / "stats.jsonl", "--quiet"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, archive: Path, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("local")
    result = run_vidseg(*run_args(archive, tiny_model, out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A head node started as a user starts one, with two CPUs; token authentication as Ray 2.60 sets up
    clusters started by 'ray start', so the driver must use it too."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["RAY_AUTH_MODE"] = "token"
    start = subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                            "--include-dashboard=false", "--disable-usage-stats"],
                           capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stderr
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
    del os.environ["RAY_AUTH_MODE"]


def video_content(path: Path) -> tuple[list, list, list, tuple]:
    """Each frame's timestamp and pixels, each audio packet (timestamp, bytes), and the stream's shape."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        shape = (video.width, video.height, video.time_base * (video.duration or 0), dict(video.metadata))
        frames = [(f.pts * f.time_base, f.to_ndarray(format="yuv420p")) for f in c.decode(video)]
    with av.open(str(path)) as c:
        audio = [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
    return [t for t, _ in frames], [f for _, f in frames], audio, shape


def worst_psnr(a: list, b: list) -> float:
    """The lowest per-frame PSNR (dB) between two decoded videos' frames."""
    mse = [float(((x.astype(float) - y.astype(float)) ** 2).mean()) for x, y in zip(a, b, strict=True)]
    return min(99.0 if m == 0 else 10 * math.log10(255**2 / m) for m in mse)


JOIN_PSNR_DB = 40.0  # encoder state differs at the joins only: far above visible differences


def assert_same_outputs(reference: Path, out: Path) -> None:
    """Labels, class tables, frame times and stats byte for byte; each overlay video with the same
    timestamps, audio and shape, its pixels as close as re-encoding from a keyframe allows."""
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".mp4":
            times, frames, audio, shape = video_content(out / rel)
            times_ref, frames_ref, audio_ref, shape_ref = video_content(reference / rel)
            assert (times, audio, shape) == (times_ref, audio_ref, shape_ref), rel
            assert worst_psnr(frames, frames_ref) >= JOIN_PSNR_DB, rel
        else:  # label PNGs, labels.json, frames.json, overlay image, stats
            assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel


def test_the_archive_has_what_a_split_must_keep(archive: Path, local_run: Path) -> None:
    rot = archive / "phone" / "rot.mp4"
    assert len(keyframe_boundaries(rot, SEGMENT_FRAMES)) >= 2  # three segments or more
    times = json.loads((local_run / "labels" / "phone" / "rot" / "frames.json").read_text())["times"]
    assert len(set(round(b - a, 3) for a, b in zip(times, times[1:], strict=False))) > 2  # variable rate
    _, frames, audio, _ = video_content(local_run / "overlays" / "phone" / "rot.mp4")
    assert len(frames) == 16 and audio
    assert cv2.imread(str(local_run / "labels" / "phone" / "rot" / "000000.png")).shape[:2] == (192, 192)


def test_ray_local_writes_what_a_local_run_writes(tmp_path: Path, archive: Path, tiny_model: Path,
                                                   local_run: Path) -> None:
    args = run_args(archive, tiny_model, tmp_path)
    result = run_vidseg(*args, "--ray", "local", "--segment-frames", SEGMENT_FRAMES, "--summary",
                        tmp_path.parent / "ray_summary.json")
    assert result.returncode == 0, result.stderr
    assert_same_outputs(local_run, tmp_path)
    summary = json.loads((tmp_path.parent / "ray_summary.json").read_text())
    assert summary["frames_out"] == 16 + 10 + 1 and summary["device"].startswith("Ray local")


def test_a_worker_killed_mid_task_is_retried(tmp_path: Path, archive: Path, tiny_model: Path, local_run: Path,
                                             cluster: str) -> None:
    proc = start_vidseg(*run_args(archive, tiny_model, tmp_path), "--ray", cluster, "--segment-frames", SEGMENT_FRAMES)
    labels = tmp_path / "labels" / "phone" / "rot"
    wait_for(lambda: (labels / "000000.png").exists() or proc.poll() is not None, timeout=300)
    busy: list[str] = []

    def find_busy_worker() -> bool:
        busy[:] = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True).stdout.split()
        return bool(busy) or proc.poll() is not None

    wait_for(find_busy_worker, timeout=60)
    assert busy, "the run ended before a worker could be killed"
    os.kill(int(busy[0]), signal.SIGKILL)  # busy: it dies with a unit half done, which must run again
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert not Path(f"/proc/{busy[0]}").exists()
    for name in ("overlays", "labels", "stats.jsonl"):
        if (local_run / name).is_dir():
            assert_same_outputs(local_run / name, tmp_path / name)
        else:
            assert (tmp_path / name).read_bytes() == (local_run / name).read_bytes()


def test_driver_interrupt_then_resume_completes_the_collection(tmp_path: Path, archive: Path, tiny_model: Path,
                                                               local_run: Path, cluster: str) -> None:
    args = [*run_args(archive, tiny_model, tmp_path), "--ray", cluster, "--segment-frames", SEGMENT_FRAMES]
    args.remove("--stats")
    args.remove(tmp_path / "stats.jsonl")
    first = tmp_path / "overlays" / "phone" / "rot.mp4"
    proc = start_vidseg(*args)
    wait_for(lambda: first.exists() or proc.poll() is not None, timeout=300)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert not (tmp_path / "overlays" / "street.mp4").exists()  # unfinished: no file under its final name
    assert not (tmp_path / "labels" / "street" / "frames.json").exists()
    finished_at = first.stat().st_mtime_ns

    result = run_vidseg(*args, "--resume")
    assert result.returncode == 0, result.stderr
    assert first.stat().st_mtime_ns == finished_at  # not redone
    assert_same_outputs(local_run / "overlays", tmp_path / "overlays")
    assert_same_outputs(local_run / "labels", tmp_path / "labels")


def test_without_ray_installed_the_flag_is_a_one_line_error(archive: Path, tiny_model: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from vidseg.cli import main; "
            f"sys.exit(main(['process', {str(archive / 'photo.jpg')!r}, '--labels', {str(tmp_path)!r}, "
            f"'--model', {str(tiny_model)!r}, '--ray', 'local']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    one_line_error(result, 2, "pip install 'vidseg[ray]'")
    assert not list(tmp_path.iterdir())


def test_a_worker_that_cannot_read_an_input_names_it(tiny_model: Path) -> None:
    """What a node without the shared storage reports (the driver turns it into the run's one-line error)."""
    from vidseg.runs.cluster.pieces import Targets
    from vidseg.runs.cluster.units import Unit
    from vidseg.runs.cluster.worker import ModelSettings, run_unit

    report = run_unit(Unit(0, "/mnt/not-mounted/cam.mp4", "cam.mp4"), ModelSettings(str(tiny_model), "CPU", None,
                                                                                   "f32", 1),
                      Targets(labels=Path("/mnt/not-mounted/labels")), node="node-a")
    assert report.error and "/mnt/not-mounted/cam.mp4" in report.error and report.missing
    assert report.frames == 0 and report.node == "node-a"


@pytest.mark.parametrize(("address", "fragment"), [("127.0.0.1:1", "cannot reach a Ray cluster"),
                                                   ("nonsense", "host:port")])
def test_a_cluster_that_is_not_there_is_a_one_line_error(address: str, fragment: str, archive: Path,
                                                         tiny_model: Path, tmp_path: Path) -> None:
    result = run_vidseg("process", archive / "photo.jpg", "--labels", tmp_path / "labels", "--model", tiny_model,
                        "--ray", address, timeout=60)
    one_line_error(result, 2, fragment)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written
