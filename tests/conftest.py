"""Shared fixtures: real media, random-weight official-format checkpoints, converted and oracle models.

Nothing here touches the network. Checkpoints are generated; photographs come from Debian's opencv-doc
(see samples/make_samples.py); videos are encoded by the tests themselves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidseg  # noqa: F401 - before oracle loads OpenVINO: its process settings (no telemetry)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_samples import opencv_data  # noqa: E402
from oracle import build_oracle  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep OpenVINO's compile cache, downloads and default models out of the user's home."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    os.environ["VIDSEG_HOME"] = str(tmp_path_factory.mktemp("vidseg-home"))


def one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    """The run failed as users should see it: exit ``code``, one line on stderr naming the problem."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]


def start_vidseg(*args: object) -> subprocess.Popen:
    """The real command line in the background, for tests that signal it or watch it work."""
    return subprocess.Popen([sys.executable, "-m", "vidseg", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 120) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_vidseg(*args: object, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vidseg", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)


@pytest.fixture(scope="session")
def media() -> Path:
    return opencv_data()


@pytest.fixture(scope="session")
def proxy_model(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """The trained proxy (convert/proxy.py), converted: for tests that judge approximations, where random
    weights' near-ties would make any approximation look broken."""
    from convert.proxy import train

    ckpt = train(tmp_path_factory.mktemp("proxy") / "seg_tiny_mask", media, steps=160, log=False)
    out = ckpt.parent.parent / "model"
    result = run_vidseg("convert", "--checkpoint", ckpt, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from convert.synthetic import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "seg_tiny_mask", "tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("models") / "seg_tiny_mask"
    result = run_vidseg("convert", "--checkpoint", tiny_checkpoint, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def oracle_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_oracle(tmp_path_factory.mktemp("oracle") / "oracle")


def encode_video(path: Path, frames: list[np.ndarray], fps: Fraction = Fraction(24), pts: list[int] | None = None,
                 time_base: Fraction | None = None, crf: int = 12, pix_fmt: str = "yuv420p",
                 gop: int | None = None) -> Path:
    """H.264 yuv420p MP4 from BGR frames (optionally with explicit timestamps and a keyframe every ``gop``)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def ffmpeg(*args: object) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def probe_frames(path: Path) -> tuple[list[float], dict]:
    """Presentation times (s) of every video frame and the stream facts, read back with PyAV."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {"codec": s.codec_context.name, "pix_fmt": s.codec_context.pix_fmt, "width": s.width,
                "height": s.height, "audio": [a.codec_context.name for a in c.streams.audio],
                "rate": s.average_rate}
        times = [float(f.pts * s.time_base) for f in c.decode(s)]
    return times, info
