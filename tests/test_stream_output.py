"""-o udp:// and -o rtmp://: the overlay as a live H.264 stream, received on loopback by PyAV and by
ffmpeg, including a receiver that goes away and comes back."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType
from conftest import one_line_error, probe_frames, run_vidseg, start_vidseg, wait_for


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_frames(path: Path) -> list[tuple[int, tuple[int, int]]]:
    """(pts, size) of every frame a receiver recorded."""
    with av.open(str(path)) as c:
        return [(f.pts, (f.width, f.height)) for f in c.decode(video=0)]


def test_udp_stream_alongside_a_file(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    received: list[tuple[int, int, int, int]] = []

    def receive() -> None:  # a PyAV receiver, as a monitoring system would read the stream
        with av.open(f"udp://127.0.0.1:{port}?timeout=8000000", timeout=60) as c:
            try:
                received.extend((f.pts, f.width, f.height, int(f.pict_type)) for f in c.decode(video=0))
            except av.error.FFmpegError:
                pass  # the timeout once the sender stopped: UDP has no end

    receiver = threading.Thread(target=receive)
    receiver.start()
    result = run_vidseg("process", media / "vtest.avi", "--model", tiny_model, "-o", f"udp://127.0.0.1:{port}",
                        "-o", tmp_path / "out.mp4", "--max-frames", 12, "--quiet")
    receiver.join(timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(received) >= 10  # loopback UDP: nothing should be lost, allow for the receiver's start
    assert all(b[0] > a[0] for a, b in zip(received, received[1:], strict=False))
    assert {(w, h) for _, w, h, _ in received} == {(768, 576)}
    assert int(PictureType.B) not in {kind for *_, kind in received}  # live: no frame waits for a later one
    assert len(probe_frames(tmp_path / "out.mp4")[0]) == 12  # the file output beside it is complete


def rtmp_receiver(port: int, out: Path) -> subprocess.Popen:
    """ffmpeg as an RTMP server that records what it receives (no probing delay, every packet written at once)."""
    return subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-probesize", "32", "-analyzeduration", "0", "-listen", "1",
                             "-i", f"rtmp://127.0.0.1:{port}/live/cam", "-c", "copy", "-flush_packets", "1",
                             "-f", "mpegts", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_rtmp_receiver_restart_is_survived(tmp_path: Path, tiny_model: Path, media: Path) -> None:
    port = free_port()
    first, second = tmp_path / "first.ts", tmp_path / "second.ts"
    receiver = rtmp_receiver(port, first)
    proc = start_vidseg("process", media / "vtest.avi", "--model", tiny_model, "-o", f"rtmp://127.0.0.1:{port}/live/cam",
                  "--quiet")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    wait_for(lambda: first.exists() and first.stat().st_size > 150_000 or proc.poll() is not None, timeout=300)
    receiver.kill()  # the receiver goes away mid-stream
    receiver.wait()
    wait_for(lambda: any("retrying" in ln for ln in lines) or proc.poll() is not None, timeout=120)
    receiver = rtmp_receiver(port, second)  # and comes back on the same address
    wait_for(lambda: second.exists() and second.stat().st_size > 150_000 or proc.poll() is not None, timeout=300)
    assert proc.poll() is None, "".join(lines)  # the run went on throughout
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    reader.join(timeout=30)
    receiver.wait(timeout=60)  # the sender closed: the receiver finishes its file
    assert proc.returncode == 130, "".join(lines)
    assert sum("retrying" in ln for ln in lines) == 1 and sum("sending again" in ln for ln in lines) == 1, lines
    for path in (first, second):
        frames = stream_frames(path)
        assert len(frames) >= 2 and {size for _, size in frames} == {(768, 576)}
        assert all(b[0] > a[0] for a, b in zip(frames, frames[1:], strict=False))


@pytest.mark.parametrize(("targets", "fragment"), [
    (["srt://127.0.0.1:9000"], "libsrt"),
    (["ftp://127.0.0.1/x"], "udp:// or rtmp://"),
    (["a.mp4", "b.mp4"], "one file or folder"),
])
def test_unusable_stream_outputs_are_one_line_errors(tmp_path: Path, tiny_model: Path, media: Path,
                                                     targets: list[str], fragment: str) -> None:
    args: list[object] = ["process", media / "vtest.avi", "--model", tiny_model]
    for t in targets:
        args += ["-o", t if "://" in t else tmp_path / t]
    one_line_error(run_vidseg(*args), 2, fragment)
    assert not list(tmp_path.iterdir())
