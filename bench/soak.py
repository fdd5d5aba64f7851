"""The soak benchmark of ``vidseg serve``: eight live cameras for half an hour, and what must stay flat.

The cameras are opencv-doc's vtest.avi at 25 fps, looped, each published by its own ``ffmpeg -re`` on
127.0.0.1 (as in ``bench.multi``); the service records each into short segments (so segments rotate
many times) and writes stats. Every ``--every`` seconds the service process's RSS, threads and open files
are sampled; at the end every stream's frames received must equal its frames written, dropped and left
out by its fps, but for the few in flight.

    python -m bench.soak --minutes 30 --streams 8        # writes bench/soak_results.json
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.ceiling import machine
from bench.multi import publishers

IN_FLIGHT = 10  # frames a stream may hold between intake and its sinks (slot, requests, queues)


def status(base: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(base + "api/streams", timeout=30) as r:
        return {s["name"]: s for s in json.loads(r.read())["streams"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vidseg-soak-"))
    procs, urls = publishers(args.clip, args.streams, work)
    port = 18765
    base = f"http://127.0.0.1:{port}/"
    lines = [f"model: {args.model}", f"device: {args.device}", f"listen: 127.0.0.1:{port}", "streams:"]
    for i, url in enumerate(urls):
        fps = f", fps: {args.fps}" if args.fps else ""
        lines.append(f"  cam{i}: {{url: \"{url}\"{fps}, reuse: {str(args.reuse).lower()}, record: {work}/rec{i}, "
                     f"stats: {work}/cam{i}.jsonl, segment_minutes: {args.segment_minutes}}}")
    (work / "cameras.yml").write_text("\n".join(lines) + "\n")
    log = (work / "serve.log").open("w")
    service = subprocess.Popen([sys.executable, "-m", "vidseg", "serve", str(work / "cameras.yml")], stderr=log)
    samples: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if all(s["state"] == "live" for s in status(base).values()):
                    break
            except OSError:
                pass
            time.sleep(1)
        proc = psutil.Process(service.pid)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.minutes * 60:
            streams = status(base)
            samples.append({"t_s": round(time.monotonic() - t0), "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                            "threads": proc.num_threads(), "open_files": proc.num_fds(),
                            "frames": sum(s["frames"] for s in streams.values()),
                            "dropped": sum(s["dropped"] for s in streams.values())})
            print(f"soak: {samples[-1]}", file=sys.stderr, flush=True)
            time.sleep(args.every)
        final = status(base)
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=120)
        for p in procs:
            p.kill()
            p.wait()
    accounts = {name: {"received": s["received"], "frames": s["frames"], "dropped": s["dropped"],
                       "sampled_out": s["sampled_out"], "reconnects": s["reconnects"],
                       "unaccounted": s["received"] - s["frames"] - s["dropped"] - s["sampled_out"]}
                for name, s in final.items()}
    settled = samples[len(samples) // 10:]  # after the first tenth: caches and pools are warm
    first, last = settled[0], settled[-1]
    segments = sum(len(list((work / f"rec{i}").glob("*.mp4"))) for i in range(args.streams))
    return {
        "machine": machine(), "minutes": args.minutes, "streams": args.streams, "reuse": args.reuse,
        "fps": args.fps, "exit_code": code, "segments_written": segments, "samples": samples,
        "rss_mb": {"settled_first": first["rss_mb"], "last": last["rss_mb"],
                   "max": max(s["rss_mb"] for s in settled)},
        "threads": sorted({s["threads"] for s in settled}), "open_files": sorted({s["open_files"] for s in settled}),
        "accounts": accounts,
        "every_frame_accounted": all(0 <= a["unaccounted"] <= IN_FLIGHT for a in accounts.values()),
        "frames_per_s": round((last["frames"] - first["frames"]) / max(1, last["t_s"] - first["t_s"]), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/seg_tiny_mask"))
    data = Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data")
    parser.add_argument("--clip", type=Path, default=data / "vtest.avi")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=15, help="seconds between samples")
    parser.add_argument("--fps", type=float, help="each stream's fps (default: as fast as the model allows)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--segment-minutes", type=float, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/soak_results.json"))
    args = parser.parse_args()
    result = run(args)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("samples", "accounts", "machine")}
    print(json.dumps(summary, indent=2))
    return 0 if result["every_frame_accounted"] and result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
