"""--preview in a real browser (Debian's chromium, headless) during a real run, and the server's answers
to what it does not serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, Browser
from conftest import free_port, start_vidseg, wait_for
from PIL import Image

# CI installs chromium (.ci/run) and must run these; elsewhere they need Debian's chromium package.
pytestmark = pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                                reason="needs chromium (apt-get install chromium)")



def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def live_run(tmp_path: Path, tiny_model: Path, media: Path):
    """A long real clip being segmented with the preview on (stopped with Ctrl-C by the test)."""
    port = free_port()
    labels = tmp_path / "labels"
    proc = start_vidseg("process", media / "vtest.avi", "--model", tiny_model, "--labels", labels,
                  "--preview", f"127.0.0.1:{port}", "--quiet")
    url = f"http://127.0.0.1:{port}/"

    def serving() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return json.loads(get(url + "state.json")[1])["frame"] >= 1
        except OSError:
            return False

    wait_for(serving, timeout=300)
    yield proc, url, labels
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_the_page_shows_the_run_live_in_a_browser(tmp_path: Path, live_run) -> None:
    proc, url, labels = live_run
    browser = Browser(tmp_path / "profile")
    try:
        browser.goto(url)
        shown: dict = {}

        def legend_filled() -> bool:
            found = browser.evaluate(  # None while the page is still loading
                "JSON.stringify({seq: document.getElementById('view').dataset.seq || null,"
                " frame: document.getElementById('legend').dataset.frame || null,"
                " names: [...document.querySelectorAll('#legend li')].map(li => li.dataset.name)})")
            shown.update(json.loads(found) if found else {})
            return bool(found) and shown["seq"] is not None and shown["frame"] is not None and bool(shown["names"])

        wait_for(legend_filled, timeout=120)  # video frames arrived and the legend describes one
        # The legend lists exactly the classes covering >= 0.5% of that frame, as its label PNG says.
        table = {c["id"]: c["name"] for c in json.loads((labels / "labels.json").read_text())}
        frame = np.asarray(Image.open(labels / f"{int(shown['frame']):06d}.png"))
        shares = np.bincount(frame.ravel(), minlength=len(table)) / frame.size
        assert shown["names"] == [table[i] for i in np.argsort(-shares, kind="stable") if shares[i] >= 0.005]

        shot = browser.screenshot(tmp_path / "preview.png")
    finally:
        browser.close()
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 400
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # a photograph-like frame, not a blank page

    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    with pytest.raises(OSError):
        get(url + "state.json")  # the server ended with the run


def test_the_server_refuses_what_it_does_not_serve(live_run) -> None:
    proc, url, _ = live_run
    assert get(url + "state.json", method="POST")[0] == 405
    assert get(url + "../../etc/passwd")[0] == 404
    assert get(url + "frame.jpg?after=x")[0] == 400
    assert get(url + "state.json", headers={"Host": "attacker.example:80"})[0] == 403  # DNS rebinding
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1 junk\r\n\r\n")  # malformed request line
        assert b"Error code: 400" in s.recv(4096)  # http.server's answer (no status line: HTTP/0.9 style)
    status, jpeg = get(url + "frame.jpg?after=-1")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    before = json.loads(get(url + "state.json")[1])["frame"]
    wait_for(lambda: json.loads(get(url + "state.json")[1])["frame"] > before, timeout=120)  # still running
    assert proc.poll() is None
