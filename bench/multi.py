"""The multi-stream row of ``make bench``: N live cameras on one model, exact and with ``--reuse``.

Each camera is opencv-doc's vtest.avi (a static CCTV view) played at 25 fps and looped, published by its
own ``ffmpeg -re`` as MPEG-TS over UDP on 127.0.0.1; the streams take frames as fast as the model allows
(no fps cap), so every stream always has a newest frame waiting. Each configuration runs in a process
of its own (its peak memory is its own) through ``Segmenter.streams``, the scheduler ``vidseg serve``
uses, writing each stream's class shares as stats lines (the latency is capture to written). Reported:
aggregate windows/s against ``benchmark_app``'s ceiling measured before and after, fairness (the slowest
stream's fps over the fastest's, each from its own frame intervals), latency p50/p95, peak RSS, and for
``--reuse`` the speed-up over the exact path at the same N and the agreement of sampled frames with their
exact labels.

    python -m bench.multi --model models/seg_tiny_mask --streams 1 2 4 8     # or: make bench
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.ceiling import ceiling, machine
from vidseg.errors import VidsegError
from vidseg.model.protocol import frame_geometry

RATE = 25
SAMPLE_EVERY = 10  # reuse: every 10th frame of a stream is checked against its exact labels


def publishers(clip: Path, n: int, work: Path) -> tuple[list[subprocess.Popen], list[str]]:
    """``n`` looped 25 fps copies of ``clip`` on UDP ports of 127.0.0.1 (one ffmpeg each, stream copy)."""
    live = work / "vtest_25fps.mp4"
    if not live.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-r", str(RATE), "-i", str(clip), "-c:v", "libx264",
                        "-preset", "veryfast", "-g", str(RATE), "-bf", "0", "-pix_fmt", "yuv420p", "-an",
                        str(live)], check=True)
    procs, urls = [], []
    for i in range(n):
        port = 23000 + 2 * i
        procs.append(subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(live),
                                       "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
                                      stdin=subprocess.DEVNULL))
        urls.append(f"udp://127.0.0.1:{port}?fifo_size=100000&overrun_nonfatal=1")
    return procs, urls


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this process: the streams for ``warmup`` seconds, then measured."""
    import vidseg
    from vidseg.outputs.stats import StatsSink
    from vidseg.runs.reuse import ReusePolicy

    seg = vidseg.Segmenter(args.model, args.device)
    policy = ReusePolicy() if args.reuse else None
    names = [f"cam{i}" for i in range(len(args.urls))]
    stats = {n: StatsSink(Path(args.work) / f"{n}{'_reuse' if args.reuse else ''}.jsonl") for n in names}
    written: dict[str, list[float]] = {n: [] for n in names}
    latency: list[float] = []
    samples: list[tuple[np.ndarray, np.ndarray]] = []
    windows = 0
    t_start = time.perf_counter()
    t_measure, t_end = t_start + args.warmup, t_start + args.warmup + args.seconds
    for name, frame in seg.streams(dict(zip(names, args.urls)), reuse=policy):
        stats[name].write(frame)
        now = time.perf_counter()
        if now >= t_end:
            break
        if now < t_measure:
            continue
        written[name].append(now)
        latency.append(now - frame.received)
        if not windows:
            i = seg.model_info
            h, w = frame.labels.shape
            windows = frame_geometry(w, h, i.short_side, i.long_side_cap, i.window_size, i.window_stride).n_windows
        if args.reuse and len(written[name]) % SAMPLE_EVERY == 0:
            samples.append((frame.image.copy(), frame.labels.copy()))
    for sink in stats.values():
        sink.close()
    fps = {n: len(t) / args.seconds for n, t in written.items()}
    # Each stream's rate from its own frame intervals: counting whole frames in a fixed window reads 5 against
    # 6 as unfair when every stream is served in turn.
    rates = {n: (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0 for n, t in written.items()}
    result: dict[str, Any] = {
        "streams": len(names), "reuse": args.reuse, "seconds": args.seconds,
        "frames_per_s": round(sum(fps.values()), 3), "windows_per_frame": windows,
        "windows_per_s": round(sum(fps.values()) * windows, 3),
        "fairness": round(min(rates.values()) / max(rates.values()), 3) if max(rates.values()) else 0.0,
        "fairness_by_count": round(min(fps.values()) / max(fps.values()), 3) if max(fps.values()) else 0.0,
        "stream_fps": {n: round(v, 3) for n, v in fps.items()},
        "latency_p50_ms": round(1000 * float(np.percentile(latency, 50)), 1) if latency else None,
        "latency_p95_ms": round(1000 * float(np.percentile(latency, 95)), 1) if latency else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if samples:
        agreement = [float((seg(image).labels == labels).mean()) for image, labels in samples]
        result.update(agreement_mean=round(float(np.mean(agreement)), 5), agreement_worst=round(min(agreement), 5),
                      frames_checked=len(agreement))
    seg.close()
    return result


def run(model: Path, clip: Path, device: str, counts: list[int], seconds: int, warmup: int,
        ceiling_seconds: int) -> dict[str, Any]:
    """Every configuration, between two ceilings; the rows and the checks against the targets."""
    import openvino as ov

    from vidseg.model.modeldir import read_model

    _, info = read_model(model, ov.Core())
    work = Path(tempfile.mkdtemp(prefix="vidseg-bench-multi-"))
    procs, urls = publishers(clip, max(counts), work)
    rows: list[dict[str, Any]] = []
    ceilings = [ceiling(model, info.window_size, 1, device, ceiling_seconds)]
    try:
        time.sleep(2)
        for n in counts:
            for reuse in (False, True):
                print(f"bench: {n} live stream{'s' * (n > 1)}{', reuse' if reuse else ''} ...", file=sys.stderr)
                cmd = [sys.executable, "-m", "bench.multi", "worker", "--model", str(model), "--device", device,
                       "--seconds", str(seconds), "--warmup", str(warmup), "--work", str(work),
                       "--urls", *urls[:n]] + (["--reuse"] if reuse else [])
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    raise VidsegError(f"bench worker failed: {out.stderr.strip()[-400:]}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    ceilings.append(ceiling(model, info.window_size, 1, device, ceiling_seconds))
    mean_ceiling = sum(ceilings) / len(ceilings)
    exact = {r["streams"]: r for r in rows if not r["reuse"]}
    for r in rows:
        r["of_ceiling"] = round(r["windows_per_s"] / mean_ceiling, 3)
        if r["reuse"]:
            r["speed_up"] = round(r["frames_per_s"] / exact[r["streams"]]["frames_per_s"], 2)
    base_rss = exact[min(exact)]["peak_rss_mb"]
    for n, r in exact.items():
        r["rss_per_added_stream_mb"] = round((r["peak_rss_mb"] - base_rss) / (n - min(exact)), 1) if n > min(exact) \
            else None
    return {"machine": machine(), "model": str(model), "clip": clip.name, "ceilings": ceilings,
            "ceiling_mean": round(mean_ceiling, 2), "rows": rows}


def table(r: dict[str, Any]) -> str:
    lines = [f"| live streams ({r['clip']} at {RATE} fps, as fast as the model allows) | reuse | frames/s | "
             f"windows/s | of ceiling {r['ceiling_mean']} | fairness | latency p50 / p95 ms | peak RSS MB | "
             "reuse speed-up | agreement mean / worst |", "|---" * 10 + "|"]
    for x in r["rows"]:
        agreement = (f"{x['agreement_mean']:.2%} / {x['agreement_worst']:.2%}" if "agreement_mean" in x else "")
        lines.append(f"| {x['streams']} | {'yes' if x['reuse'] else 'no'} | {x['frames_per_s']} | {x['windows_per_s']} "
                     f"| {x['of_ceiling']} | {x['fairness']} | {x['latency_p50_ms']} / {x['latency_p95_ms']} | "
                     f"{x['peak_rss_mb']} | {x.get('speed_up', '')} | {agreement} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.multi", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")
    w.add_argument("--model", type=Path, required=True)
    w.add_argument("--device", default="CPU")
    w.add_argument("--urls", nargs="+", required=True)
    w.add_argument("--seconds", type=int, default=20)
    w.add_argument("--warmup", type=int, default=5)
    w.add_argument("--work", required=True)
    w.add_argument("--reuse", action="store_true")
    parser.add_argument("--model", type=Path, default=Path("models/seg_tiny_mask"))
    data = Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data")
    parser.add_argument("--clip", type=Path, default=data / "vtest.avi")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=int, default=12, help="seconds before measuring: a stream settles its "
                        "intake (keyframes only or every frame) within two 5-s windows")
    parser.add_argument("--ceiling-seconds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/multi_results.json"))
    args = parser.parse_args()
    if args.command == "worker":
        print(json.dumps(worker(args)))
        return 0
    results = run(args.model, args.clip, args.device, args.streams, args.seconds, args.warmup, args.ceiling_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
