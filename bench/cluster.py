"""The cluster row of ``make bench``: a 720p archive through a local run and through Ray on this machine.

The archive is the 720p sample looped (a keyframe a second, as cameras write). Each run is a separate
``vidseg process`` (every output written: overlay, labels, stats), timed from the first frame to the last
(the summary's wall time: the model compiled and Ray joined before it starts; the compile inside the
first task of each worker process is counted separately, as ``compile_s``). Measured:

* ``--ray local`` (a one-node cluster of this machine) against the local run, at two segment lengths; from
  the two, the cost of a segment (seek, pipeline refill and drain, task dispatch);
* the driver's CPU per frame (its process's CPU time from the run's start to its end, planning and joins
  included) on that one node and on two nodes (``ray.cluster_utils.Cluster``, one CPU each);
* the join: seconds per GB of overlay written; the planner: frames per second it cuts into segments;
* ``--reuse`` against the exact path, both on the cluster, on opencv-doc's static CCTV clip;
* the throughput model for 1-256 nodes of this machine's speed, and which bound comes next.

    python -m bench.cluster --model models/seg_tiny_mask     # or: make bench (all rows)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.ceiling import machine
from vidseg.errors import VidsegError
from vidseg.runs.cluster.units import keyframe_boundaries

NODES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STORAGE_GBPS = 1.0  # assumed shared storage: a 10 GbE NFS server, about 1 GB/s of payload


def make_archive(clip: Path, loops: int, out: Path, gop: int = 30) -> Path:
    """``clip`` played ``loops`` times as one H.264 file with a keyframe every ``gop`` frames."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(clip), "-c:v",
                        "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(gop), "-pix_fmt", "yuv420p", "-an",
                        str(out)], check=True)
    return out


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def process(src: Path, model: Path, device: str, out: Path, *extra: str, env: dict[str, str] | None = None
            ) -> dict[str, Any]:
    """One ``vidseg process`` run writing overlay, labels and stats; its summary plus launch-to-exit time."""
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidseg", "process", str(src), "--model", str(model), "--device",
                           device, "-o", str(out / "overlay.mp4"), "--labels", str(out / "labels"), "--stats",
                           str(out / "stats.jsonl"), "--summary", str(summary), "--quiet", *extra],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise VidsegError(f"vidseg process {' '.join(extra)} failed: {proc.stderr.strip()[-300:]}")
    s = json.loads(summary.read_text())
    s["launch_to_exit_s"] = round(time.perf_counter() - started, 2)
    s["overlay_bytes"] = (out / "overlay.mp4").stat().st_size
    s["label_bytes"] = sum(p.stat().st_size for p in (out / "labels").glob("*.png"))
    return s


def row(s: dict[str, Any], local: dict[str, Any] | None = None) -> dict[str, Any]:
    c = s.get("cluster", {})
    r = {"fps": s["fps"], "wall_s": s["wall_s"], "launch_to_exit_s": s["launch_to_exit_s"]}
    if c:
        r.update(units=c["units"], compile_s=c["compile_s"], task_s=c["task_s"], join_s=c["join_s"],
                 driver_cpu_s=c["driver_cpu_s"], driver_cpu_ms_per_frame=c["driver_cpu_ms_per_frame"],
                 units_by_node=list(c["units_by_node"].values()))
        # A segment's start beyond a steady frame: seek, decode to its first frame, the pipeline's fill.
        steady = (c["task_s"] - c["compile_s"] - c["first_frame_s"]) / (s["frames_out"] - c["units"])
        r["segment_start_s"] = round(c["first_frame_s"] / c["units"] - steady, 3)
    if local is not None:
        r["ratio"] = round(s["fps"] / local["fps"], 3)
    if s.get("reuse"):
        r["tokens_computed"] = round(s["reuse"]["tokens_computed"] / s["reuse"]["tokens_total"], 3)
    return r


def two_nodes(src: Path, model: Path, device: str, out: Path, segment_frames: int) -> dict[str, Any]:
    """The same run on a two-node cluster of this machine: a head without CPUs and two nodes of one CPU."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
        return process(src, model, device, out, "--ray", cluster.address, "--ray-cpus", "1", "--segment-frames",
                       str(segment_frames), env=env)
    finally:
        cluster.shutdown()


def overlay_psnr(reference: Path, joined: Path) -> dict[str, float]:
    """Per-frame PSNR (dB) of a joined overlay against one encoded in one piece: worst and mean."""
    with av.open(str(reference)) as a, av.open(str(joined)) as b:
        pairs = zip(a.decode(a.streams.video[0]), b.decode(b.streams.video[0]), strict=True)
        mse = [float(np.mean((x.to_ndarray(format="yuv420p").astype(np.float32)
                              - y.to_ndarray(format="yuv420p").astype(np.float32)) ** 2)) for x, y in pairs]
    db = [99.0 if m == 0 else 10 * math.log10(255**2 / m) for m in mse]
    return {"worst_db": round(min(db), 2), "mean_db": round(sum(db) / len(db), 2), "frames": len(db)}


def planner_fps(src: Path, segment_frames: int) -> float:
    t0 = time.perf_counter()
    keyframe_boundaries(src, segment_frames)
    return frames_in(src) / (time.perf_counter() - t0)


def model(node_fps: float, driver_fps: float, planner: float, bytes_per_frame: float) -> dict[str, Any]:
    """Frames/s of N nodes: each node as fast as the one measured, capped by the first shared bound (the
    driver's one core: its per-second cost, then planning and joining each frame; the planner alone;
    shared storage at ``STORAGE_GBPS``)."""
    bounds = {"driver": driver_fps, "planner": planner, "storage": STORAGE_GBPS * 1e9 / bytes_per_frame}
    first = min(bounds, key=bounds.__getitem__)
    return {"node_fps": round(node_fps, 3), "bounds_fps": {k: round(v, 1) for k, v in bounds.items()},
            "next_bound": first, "linear_up_to_nodes": int(bounds[first] // node_fps),
            "fps_by_nodes": {n: round(min(n * node_fps, bounds[first]), 1) for n in NODES}}


def run(model_dir: Path, clip: Path, reuse_clip: Path, device: str = "CPU", loops: int = 3,
        reuse_frames: int = 200) -> dict[str, Any]:
    work = Path("bench/work/cluster")
    archive = make_archive(clip, loops, work / "archive_720p.mp4")
    frames = frames_in(archive)
    print(f"bench.cluster: {archive} ({frames} frames) locally ...", file=sys.stderr)
    local = process(archive, model_dir, device, work / "local")
    results: dict[str, Any] = {"machine": machine(), "archive": str(archive), "frames": frames,
                               "local": row(local)}
    for s_frames in (120, 30):
        print(f"bench.cluster: --ray local, segments of {s_frames} frames ...", file=sys.stderr)
        ray = process(archive, model_dir, device, work / f"ray_{s_frames}", "--ray", "local", "--segment-frames",
                      str(s_frames))
        results[f"ray_local_{s_frames}"] = row(ray, local)
    long = results["ray_local_120"]
    results["overlay_psnr_vs_local"] = overlay_psnr(work / "local" / "overlay.mp4", work / "ray_30" / "overlay.mp4")
    print("bench.cluster: two nodes of one CPU ...", file=sys.stderr)
    results["two_nodes"] = row(two_nodes(archive, model_dir, device, work / "two_nodes", 30), local)
    overlay_gb = local["overlay_bytes"] / 1e9
    results["join_s_per_gb_overlay"] = round(long["join_s"] / overlay_gb, 1)
    results["planner_fps"] = round(planner_fps(archive, 120))
    print("bench.cluster: --reuse on the cluster vs exact ...", file=sys.stderr)
    cctv = work / "cctv.mp4"
    if not cctv.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(reuse_clip), "-frames:v", str(reuse_frames),
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "30", "-pix_fmt", "yuv420p",
                        str(cctv)], check=True)
    exact = process(cctv, model_dir, device, work / "cctv_exact", "--ray", "local")
    reuse = process(cctv, model_dir, device, work / "cctv_reuse", "--ray", "local", "--reuse")
    results["reuse"] = {"exact": row(exact), "reuse": row(reuse), "speed_up": round(reuse["fps"] / exact["fps"], 2)}
    # Bytes a frame moves on shared storage: input read, piece written, piece read and final written at the
    # join (twice for MP4's faststart), label PNG written then renamed (no copy).
    per_frame = (archive.stat().st_size + 4 * local["overlay_bytes"] + local["label_bytes"]) / frames
    # The driver's CPU: a cost per second of run (waiting on Ray, progress) and per frame (planning, joins).
    plan_s = frames / results["planner_fps"]
    idle_per_s = (long["driver_cpu_s"] - long["join_s"] - plan_s) / long["wall_s"]
    per_frame_ms = 1000 * (long["join_s"] + plan_s) / frames
    results["driver"] = {"cpu_ms_per_s_of_run": round(1000 * idle_per_s, 2),
                         "join_ms_per_frame": round(1000 * long["join_s"] / frames, 3),
                         "plan_ms_per_frame": round(1000 * plan_s / frames, 3)}
    node_fps = frames / (long["wall_s"] - long["compile_s"])
    results["model"] = model(node_fps, (1 - idle_per_s) * 1000 / per_frame_ms, results["planner_fps"], per_frame)
    results["model"]["bytes_per_frame"] = round(per_frame)
    return results


def table(r: dict[str, Any]) -> str:
    m = r["model"]
    lines = [f"cluster row, {r['machine']}: {r['frames']} frames of 720p",
             f"  local {r['local']['fps']} fps"]
    for key in ("ray_local_120", "ray_local_30", "two_nodes"):
        x = r[key]
        lines.append(f"  {key}: {x['fps']} fps (ratio {x['ratio']}), {x['units']} units, driver "
                     f"{x['driver_cpu_ms_per_frame']} CPU ms/frame, compile {x['compile_s']} s, segment start "
                     f"{x['segment_start_s']} s, join {x['join_s']} s")
    d = r["driver"]
    p = r["overlay_psnr_vs_local"]
    lines += [f"  joined overlay (segments of 30) vs local: PSNR worst {p['worst_db']} dB, mean {p['mean_db']} dB",
              f"  driver: {d['cpu_ms_per_s_of_run']} CPU ms per second of run + {d['join_ms_per_frame']} ms a frame "
              f"joining + {d['plan_ms_per_frame']} ms a frame planning",
              f"  join {r['join_s_per_gb_overlay']} s/GB; planner "
              f"{r['planner_fps']} frames/s; reuse speed-up on the cluster {r['reuse']['speed_up']}x",
              f"  model: {m['node_fps']} fps a node; bounds {m['bounds_fps']}; next bound {m['next_bound']}, linear "
              f"to {m['linear_up_to_nodes']} nodes"]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    data = Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data")
    p.add_argument("--model", type=Path, default=Path("models/seg_tiny_mask"))
    p.add_argument("--clip", type=Path, default=Path("samples/media/pan_720p.mp4"))
    p.add_argument("--reuse-clip", type=Path, default=data / "vtest.avi")
    p.add_argument("--device", default="CPU")
    p.add_argument("--loops", type=int, default=3, help="times the clip is played in the archive (default 3)")
    p.add_argument("--out", type=Path, default=Path("bench/cluster_results.json"))
    args = p.parse_args()
    results = run(args.model, args.clip, args.reuse_clip, args.device, args.loops)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
