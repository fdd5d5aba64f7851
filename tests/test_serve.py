"""vidseg serve against real cameras: GStreamer RTSP servers on 127.0.0.1 publishing opencv-doc footage,
one process each, killed and restarted; the control API, SIGHUP, SIGTERM and /metrics as an operator
uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from browser import Browser
from conftest import ROOT, ffmpeg, free_port, one_line_error, run_vidseg, wait_for
from PIL import Image

from vidseg.errors import VidsegError
from vidseg.service.config import parse, redact

SYSTEM_PYTHON = "/usr/bin/python3"
needs_rtsp = pytest.mark.skipif(
    subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                   capture_output=True).returncode != 0 if Path(SYSTEM_PYTHON).exists() else True,
    reason="GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0, python3-gi) is not installed; .ci/run installs it")



class Camera:
    """One RTSP publisher process."""

    def __init__(self, clip: Path):
        self.clip, self.port = clip, free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/live"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(self.port),
                                      str(self.clip)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def api(base: str, method: str = "GET", path: str = "api/streams", body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            raw, status, kind = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raw, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw


def streams(base: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in api(base)[1]["streams"]}


def frames_decoded(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real network shape at a 128-pixel window and two layers: four cameras in real time on any host."""
    from convert.synthetic import write_checkpoint

    ckpt = write_checkpoint(tmp_path_factory.mktemp("small") / "seg_tiny_mask", "tiny", seed=3, window=128,
                            n_layers=2)
    out = ckpt.parent.parent / "model"
    result = run_vidseg("convert", "--checkpoint", ckpt, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """vtest.avi (opencv-doc's CCTV footage) as 10 fps H.264, two minutes, a keyframe a second."""
    out = tmp_path_factory.mktemp("clip") / "vtest_loop.mp4"
    ffmpeg("-stream_loop", "3", "-i", media / "vtest.avi", "-t", "120", "-vf", "scale=384:288", "-r", "10",
           "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-pix_fmt", "yuv420p", "-an", out)
    return out


def stream_entry(out: Path, name: str, url: str, fps: float) -> str:
    return (f"  {name}: {{url: \"{url}\", fps: {fps}, record: {out / name}, stats: {out / name}.jsonl, "
            "segment_minutes: 5}\n")


@needs_rtsp
def test_four_cameras_on_one_model_survive_a_lost_publisher_and_are_controlled_live(
        tmp_path: Path, small_model: Path, clip: Path) -> None:
    cams = [Camera(clip) for _ in range(5)]
    out = tmp_path / "out"
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    config = tmp_path / "cameras.yml"
    names = ["a", "b", "c", "d"]
    header = f"model: {small_model}\ndevice: CPU\nlisten: 127.0.0.1:{port}\nstreams:\n"
    # a's URL carries credentials: they must never show
    urls = [cams[0].url.replace("rtsp://", "rtsp://admin:hunter2@")] + [c.url for c in cams[1:4]]
    config.write_text(header + "".join(stream_entry(out, n, u, 4) for n, u in zip(names, urls)))
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vidseg", "serve", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        def all_live() -> bool:
            if proc.poll() is not None:
                return True  # it ended: the assertion below says why
            return _up(base) and api(base, path="healthz")[1]["live"] == 4

        wait_for(all_live, timeout=120)
        assert proc.poll() is None, log.read_text()

        # steady state: every camera at its 4 fps
        def rates(seconds: float) -> dict[str, float]:
            before, t0 = streams(base), time.monotonic()
            time.sleep(seconds)
            after, t1 = streams(base), time.monotonic()
            return {n: (after[n]["frames"] - before[n]["frames"]) / (t1 - t0) for n in after if n in before}

        time.sleep(3)
        steady = rates(10)
        assert all(3.4 <= steady[n] <= 4.4 for n in names), steady

        # a's publisher dies: the others keep their pace, a reconnects once it is back
        cams[0].kill()
        wait_for(lambda: streams(base)["a"]["state"] != "live", timeout=30)
        outage = rates(10)
        for n in ("b", "c", "d"):
            assert abs(outage[n] - steady[n]) <= 0.1 * steady[n], (outage, steady)
        cams[0].start()
        wait_for(lambda: streams(base)["a"]["state"] == "live", timeout=60)
        assert streams(base)["a"]["reconnects"] == 1

        # the control API: add one, remove one, refuse what is wrong, and keep running
        status, body = api(base, "POST", body={"name": "e", "url": cams[4].url, "fps": 2})
        assert status == 201 and body["name"] == "e", body
        assert api(base, "POST", body={"name": "e", "url": cams[4].url})[0] == 409
        status, body = api(base, "POST", body={"name": "f", "url": cams[4].url, "fsp": 2})
        assert status == 400 and "unknown key 'fsp'" in body["error"]
        assert api(base, "POST", body=b"{not json")[0] == 400
        assert api(base, "POST", body={"name": "../x", "url": cams[4].url})[0] == 400
        status, body = api(base, "POST", body={"name": "nobody", "url": f"rtsp://127.0.0.1:{free_port()}/live"})
        assert status == 201
        assert api(base, "DELETE", "api/streams/zzz")[0] == 404
        assert api(base, "PUT", "api/streams")[0] == 405
        assert api(base, headers={"Host": "attacker.example"})[0] == 403
        assert api(base, "DELETE", "api/streams/b")[1] == {"removed": "b"}
        wait_for(lambda: streams(base)["e"]["frames"] >= 4, timeout=60)
        now = streams(base)
        assert "b" not in now and now["nobody"]["state"] == "unreachable" and now["nobody"]["error"]
        assert api(base, path="healthz")[0] == 200

        # SIGHUP with an edited file: c changes its fps (restarted), g is new, d is not touched
        d_before = now["d"]["frames"]
        entries = {"a": (urls[0], 4), "b": (urls[1], 4), "c": (urls[2], 2), "d": (urls[3], 4), "g": (cams[4].url, 2)}
        config.write_text(header + "".join(stream_entry(out, n, u, f) for n, (u, f) in entries.items()))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "g" in streams(base) and streams(base)["g"]["frames"] >= 2, timeout=60)
        now = streams(base)
        assert now["c"]["target_fps"] == 2 and now["d"]["frames"] > d_before and "b" not in now
        assert now["e"]["frames"] > 0  # added over HTTP, not in the file: left as it is

        # /metrics as Prometheus reads it
        metrics = api(base, path="metrics")[1]
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True)
        assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
        text = metrics.decode()
        assert 'vidseg_frames_processed_total{stream="d"}' in text and 'vidseg_reconnects_total{stream="a"} 1.0' in text
        assert 'vidseg_latency_seconds_bucket{le="1.0",stream="d"}' in text and 'stream="b"' not in text
        assert api(base, path="api/streams/d/frame.jpg")[1][:2] == b"\xff\xd8"
        dashboard_shows_every_stream(base, tmp_path, {"a", "c", "d", "e", "g", "nobody"})
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
            for cam in cams:
                cam.kill()
    messages = log.read_text()
    assert code == 0, messages
    assert "hunter2" not in messages and "admin" not in messages
    assert "a: lost rtsp://***@127.0.0.1" in messages and "reconnecting with backoff" in messages
    # every recording is whole: a has a gap between two playable segments, b was closed when removed
    for name in ("a", "b", "c", "d", "g"):
        segments = sorted((out / name).glob("*.mp4"))
        assert segments and not list((out / name).glob(".*")), name
        for s in segments:
            assert frames_decoded(s) > 0, s
        lines = (out / f"{name}.jsonl").read_text().splitlines()
        assert lines and all(json.loads(line)["classes"] for line in lines), name
    assert len(list((out / "a").glob("*.mp4"))) >= 2


def dashboard_shows_every_stream(base: str, tmp_path: Path, names: set[str]) -> None:
    """The dashboard in headless chromium: a card per stream with its state, and the live ones' overlays."""
    browser = Browser(tmp_path / "profile")
    try:
        browser.goto(base)
        cards: dict[str, dict[str, Any]] = {}

        def drawn() -> bool:
            found = browser.evaluate(
                "JSON.stringify([...document.querySelectorAll('.card')].map(c => ({name: c.dataset.stream,"
                " state: c.querySelector('.status').textContent, fps: c.querySelector('.fps').textContent,"
                " image: c.querySelector('img').naturalWidth})))")
            cards.clear()
            cards.update({c["name"]: c for c in json.loads(found)} if found else {})
            return set(cards) == names and all(cards[n]["image"] > 0 for n in names - {"nobody"})

        wait_for(drawn, timeout=60)
        assert cards["nobody"]["state"] == "unreachable" and cards["d"]["state"] == "live"
        shot = np.asarray(Image.open(browser.screenshot(tmp_path / "dashboard.png")).convert("L"))
        assert shot.std() > 10  # pictures, not a blank page
    finally:
        browser.close()


def _up(base: str) -> bool:
    try:
        return api(base, path="healthz")[0] == 200
    except OSError:
        return False


BAD_CONFIGS = [
    ("streams:\n  cam: {fps: 2}\n", "streams.cam: 'url' is required"),
    ("streams:\n  cam: {url: 'rtsp://h/x', fsp: 2}\n", "streams.cam: unknown key 'fsp'"),
    ("streams:\n  cam: {url: 'rtsp://h/x', fps: -1}\n", "streams.cam: 'fps' and 'segment_minutes' must be positive"),
    ("streams:\n  cam: {url: 'rtsp://h/x', fps: fast}\n", "streams.cam.fps: expected a number"),
    ("streams:\n  cam: {url: 'rtsp://h/x', output: 'srt://h:1'}\n", "streams.cam.output: srt:// needs FFmpeg"),
    ("streams:\n  a: {url: 'rtsp://h/x', record: r}\n  b: {url: 'rtsp://h/y', record: r}\n", "a and b both write r"),
    ("streams:\n  cam: {url: footage.mp4}\n", "streams.cam.url: a stream URL"),
    ("streams: [\n", "not valid YAML"),
    ("cameras:\n  cam: rtsp://h/x\n", "unknown key 'cameras'"),
]


@pytest.mark.parametrize("text,message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_a_bad_config_file_is_one_line_naming_the_stream_and_key(tmp_path: Path, text: str, message: str,
                                                                  tiny_model: Path) -> None:
    config = tmp_path / "cameras.yml"
    config.write_text(f"model: {tiny_model}\n" + text)
    env = {k: v for k, v in os.environ.items() if k != "VIDSEG_TOKEN"}
    one_line_error(run_vidseg("serve", config, "--listen", f"127.0.0.1:{free_port()}", env=env, timeout=120),
                   2, message)


@pytest.mark.fast
def test_credentials_in_urls_are_redacted_and_names_checked() -> None:
    assert redact("rtsp://admin:hunter2@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact("rtsp://10.0.0.6/live") == "rtsp://10.0.0.6/live"
    config = parse({"streams": {"gate": {"url": "rtsp://u:p@h/s", "fps": 2, "reuse": True, "record": "r/gate"},
                                "lobby": "rtsp://h/live", "usb": 0}})
    assert config.streams["gate"].fps == 2.0 and config.streams["gate"].reuse
    assert config.streams["lobby"].fps is None and config.streams["usb"].url == "0"
    with pytest.raises(VidsegError, match="reaches beyond this machine"):
        parse({"listen": "0.0.0.0:8765", "streams": {}})
    assert parse({"listen": "0.0.0.0:8765", "token": "t", "streams": {}}).token == "t"
