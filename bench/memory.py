"""Where a long-running service's memory goes: each native part run alone, its RSS sampled over time.

The soak of ``vidseg serve`` showed RSS rising 2-5 MB a minute while Python's own heap stayed flat, so the
growth is native. This runs the service's native parts side by side, each in a process of its own, for the
same minutes, so that a part whose RSS keeps rising names itself:

* ``decode``: eight live streams (ffmpeg publishers over UDP, as ``bench.multi``) read through the
  service's stream intake, a frame of each taken every 2.5 s (as eight cameras share the model);
* ``infer``: the compiled model segmenting one 768x576 frame after another (``Engine.segment``);
* ``encode``: eight H.264 recordings of 768x576 overlays, a new segment file every 20 s.

    python -m bench.memory --minutes 10      # bench/memory_results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.ceiling import machine
from bench.multi import publishers

PARTS = ("decode", "infer", "encode")
SETTLE_S = 180  # decoders' and encoders' pools fill over the first two minutes


def part_decode(urls: list[str], seconds: float) -> None:
    from vidseg.inputs.sources import NetworkSource
    from vidseg.runs.intake import KeyframeIntake
    from vidseg.summary import Summary

    stop = threading.Event()

    def read(url: str) -> None:
        source = NetworkSource(url, None)
        summary = Summary(source="stream", device="", execution_devices=[], nireq=0)
        intake, taken_at = KeyframeIntake(source, summary), 0.0
        for frame in source.frames():
            summary.frames_in += 1
            if time.monotonic() - taken_at >= 2.5:
                frame.materialize()
                taken_at = time.monotonic()
            else:
                summary.dropped += 1
            intake.update()
            if stop.is_set():
                break
        source.close()

    for url in urls:
        threading.Thread(target=read, args=(url,), daemon=True).start()
    time.sleep(seconds)
    stop.set()


def part_infer(model: Path, seconds: float) -> None:
    from vidseg import Segmenter

    seg = Segmenter(model, "CPU")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (576, 768, 3), dtype=np.uint8) for _ in range(4)]
    t0, i = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        seg(frames[i % 4])
        i += 1


def part_encode(work: Path, seconds: float) -> None:
    import av

    from vidseg.outputs.encoder import H264Encoder, x264_options

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)
    t0, n = time.monotonic(), 0
    open_: list[tuple[Any, H264Encoder]] = []
    segment_at = 0.0
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        if now - segment_at >= 20:  # a new segment for every camera
            for container, encoder in open_:
                encoder.flush()
                container.close()
            open_ = []
            for cam in range(8):
                container = av.open(str(work / f"cam{cam}.mp4"), "w")
                open_.append((container, H264Encoder(container, 768, 576, Fraction(1, 1000), Fraction(25),
                                                     x264_options("overlay", 20))))
            segment_at = now
        for _, encoder in open_:
            encoder.encode(np.roll(image, n, axis=1), int(1000 * (now - t0)) + n)
        n += 1
        time.sleep(0.25)
    for container, encoder in open_:
        encoder.flush()
        container.close()


def sample(args: argparse.Namespace, urls: list[str], work: Path) -> list[dict[str, Any]]:
    """Every part at once, each in its own process (their RSS are their own), sampled until they end."""
    procs = {part: subprocess.Popen([sys.executable, "-m", "bench.memory", "part", part, "--model", str(args.model),
                                     "--minutes", str(args.minutes), "--work", str(work), "--urls", *urls])
             for part in PARTS}
    samples: dict[str, list[tuple[int, float]]] = {part: [] for part in PARTS}
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        for part, proc in procs.items():
            try:
                samples[part].append((round(time.monotonic() - t0), round(psutil.Process(proc.pid).memory_info().rss
                                                                          / 2**20, 1)))
            except psutil.NoSuchProcess:
                pass
        time.sleep(args.every)
    rows = []
    for part, rss in samples.items():
        settled = [s for s in rss if s[0] >= SETTLE_S]
        span = (settled[-1][0] - settled[0][0]) / 60 if len(settled) > 1 else 0
        growth = (settled[-1][1] - settled[0][1]) / span if span else 0.0
        rows.append({"part": part, "rss_mb": rss, "mb_per_min_settled": round(growth, 2)})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", default="all", choices=("all", "part"))
    p.add_argument("part", nargs="?", choices=PARTS)
    p.add_argument("--model", type=Path, default=Path("models/seg_tiny_mask"))
    data = Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data")
    p.add_argument("--clip", type=Path, default=data / "vtest.avi")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--every", type=float, default=15)
    p.add_argument("--work", type=Path)
    p.add_argument("--urls", nargs="*", default=[])
    p.add_argument("--out", type=Path, default=Path("bench/memory_results.json"))
    args = p.parse_args()
    seconds = args.minutes * 60
    if args.command == "part":
        {"decode": lambda: part_decode(args.urls, seconds), "infer": lambda: part_infer(args.model, seconds),
         "encode": lambda: part_encode(args.work, seconds)}[args.part]()
        return 0
    work = Path(tempfile.mkdtemp(prefix="vidseg-bench-memory-"))
    procs, urls = publishers(args.clip, 8, work)
    try:
        rows = sample(args, urls, work)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    results = {"machine": machine(), "minutes": args.minutes, "parts": rows}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for r in rows:
        first, last = r["rss_mb"][0], r["rss_mb"][-1]
        print(f"{r['part']}: RSS {first[1]} MB at {first[0]} s -> {last[1]} MB at {last[0]} s; "
              f"{r['mb_per_min_settled']} MB/min after the first {SETTLE_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
