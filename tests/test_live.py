"""Live sources and the runtime's footprint."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
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
