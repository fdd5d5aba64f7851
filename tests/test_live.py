"""Live sources and the runtime's footprint."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
from conftest import ROOT, encode_video, ffmpeg, probe_frames, run_vidseg
from oracle import paint


def test_stream_that_drops_is_reopened_into_one_output(tmp_path: Path, oracle_model: Path) -> None:
    clip = encode_video(tmp_path / "clip.mp4", [paint(np.full((96, 128), i % 8, np.uint8)) for i in range(24)])
    ts = tmp_path / "clip.ts"
    ffmpeg("-i", clip, "-c", "copy", "-f", "mpegts", ts)
    data = ts.read_bytes()
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            served.append(self.path)
            body = data if len(served) > 1 else data[: len(data) // 2]  # the first connection drops halfway
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/live.ts"
        result = run_vidseg("process", url, "--model", oracle_model, "-o", tmp_path / "out.mp4", "--max-frames", 40,
                            "--summary", tmp_path / "s.json", "--quiet", timeout=300)
    finally:
        httpd.shutdown()
        httpd.server_close()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert result.returncode in (0, 1), result.stderr
    assert summary["source"] == "stream" and summary["gaps"] >= 1 and len(served) >= 2
    assert summary["frames_out"] + summary["dropped"] == 40
    times, _ = probe_frames(tmp_path / "out.mp4")
    assert len(times) == summary["frames_out"] and all(b > a for a, b in zip(times, times[1:]))


def test_runtime_never_imports_the_converter_stack(tmp_path: Path, oracle_model: Path) -> None:
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), paint(np.zeros((64, 64), np.uint8)))
    script = (
        "import sys\n"
        "from vidseg.cli import main\n"
        f"code = main(['process', {str(image)!r}, '--model', {str(oracle_model)!r}, '--labels', "
        f"{str(tmp_path / 'l')!r}, '--quiet'])\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'nncf') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "0 []", out.stdout + out.stderr


def test_a_stream_sampled_far_below_its_rate_decodes_keyframes_only(tmp_path: Path, oracle_model: Path) -> None:
    """25 fps with a keyframe every 5 frames, segmented once every 2 s: the frames between keyframes are
    left undecoded, yet every frame that arrived is accounted for."""
    import socket
    import time

    from vidseg import Segmenter

    clip = encode_video(tmp_path / "clip.mp4", [paint(np.full((96, 128), i % 8, np.uint8)) for i in range(250)],
                        fps=Fraction(25), gop=5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    publisher = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
                                  "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"], stdin=subprocess.DEVNULL)
    try:
        seg = Segmenter(oracle_model, "CPU")
        with seg.stream(f"udp://127.0.0.1:{port}?fifo_size=100000&overrun_nonfatal=1", fps=0.5) as frames:
            t0 = time.monotonic()
            for _ in frames:
                if time.monotonic() - t0 > 16:
                    frames.stop()
        summary = frames.summary
    finally:
        publisher.kill()
        publisher.wait()
    assert summary.frames_out >= 5
    assert summary.undecoded > 100  # most of the 16 s x 20 frames between keyframes were never decoded
    assert summary.undecoded <= summary.dropped
    waiting = summary.frames_in - summary.frames_out - summary.dropped - summary.sampled_out
    assert 0 <= waiting <= 1  # every frame that arrived: segmented, dropped or sampled out
