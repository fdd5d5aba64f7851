"""``vidseg bench``: model-only ceilings, end-to-end throughput and the notebook baseline, side by side.

Everything runs in one invocation on one machine so the ratios compare like with like:

* ceiling: OpenVINO's ``benchmark_app`` on our FP32 and INT8 IRs and on the upstream-style IR, in windows/s
  (f32 arithmetic, as ``vidseg process`` runs by default); FP32 and INT8 measured right before each of their
  end-to-end runs (the target runs included) and once more after them, and the highest figure kept, so that a
  slow spell of a shared host (seen: 18% between 20-second runs minutes apart) cannot flatter the ratios;
* end to end: ``vidseg process`` on each clip, wall time including start-up, and its peak RSS;
* the target: the first clip in FP32 a few more times, each run between two ceilings (``target_runs``);
* baseline: what the original OpenVINO notebook does: synchronous inference of the upstream-style IR
  window by window, then full-size upsampling, averaging and argmax of all 150 classes on the host;
* INT8 vs FP32 label agreement on frames of the first clip;
* ``--reuse`` vs the exact path on real footage: speed-up and per-frame label agreement.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import openvino as ov
import psutil
from PIL import Image

from bench import cluster, multi
from bench.ceiling import ceiling, machine
from vidseg.errors import VidsegError
from vidseg.files import write_json
from vidseg.inputs.sources import VideoSource
from vidseg.model.engine import Engine
from vidseg.model.modeldir import read_model
from vidseg.model.protocol import FrameGeometry, frame_geometry, frame_windows


def run(args: argparse.Namespace) -> int:
    for path in [args.model, args.int8_model, args.baseline_model, *args.clips]:
        if not path.exists():
            raise VidsegError(f"bench needs {path}: run 'make bench' (it converts the models and makes the clips)")
    if args.target_runs < 1:
        raise VidsegError(f"--target-runs must be at least 1, got {args.target_runs}")
    results: dict[str, Any] = {"machine": machine(), "models": {}, "ceiling": {}, "end_to_end": [], "baseline": {}}
    core = ov.Core()
    shapes: dict[str, tuple[Path, int, int]] = {}
    for key, path in (("fp32", args.model), ("int8", args.int8_model), ("upstream", args.baseline_model)):
        _, info = read_model(path, core)
        results["models"][key] = {"dir": str(path), "precision": info.precision, "source": info.source}
        batch = 2 if info.full_resolution_output else 1  # the notebook export runs two windows per request
        shapes[key] = (path, info.window_size, batch)
    samples: dict[str, list[float]] = {key: [] for key in shapes}

    def measure(key: str) -> float:
        path, window, batch = shapes[key]
        print(f"bench: benchmark_app on {path} ...", file=sys.stderr)
        samples[key].append(ceiling(path, window, batch, args.device, args.seconds))
        return samples[key][-1]

    measure("upstream")
    for clip in args.clips:
        for key, path in (("fp32", args.model), ("int8", args.int8_model)):
            before = measure(key)
            print(f"bench: vidseg process {clip.name} ({key}) ...", file=sys.stderr)
            results["end_to_end"].append({**end_to_end(clip, path, key, args.device), "ceiling_before": before})
    for key in ("int8", "fp32"):  # FP32 last: the first ceiling of the target runs below
        measure(key)
    print(f"bench: the target, {args.clips[0].name} FP32 between two ceilings, {args.target_runs} times ...",
          file=sys.stderr)
    results["target"] = target_runs(args.clips[0], args.model, args.device, args.target_runs,
                                    samples["fp32"][-1], lambda: measure("fp32"))
    results["ceiling"] = {key: {"windows_per_s": max(runs), "runs": runs, "batch": shapes[key][2],
                                "window": shapes[key][1]} for key, runs in samples.items()}

    print("bench: a collection of 10 short clips vs one long clip ...", file=sys.stderr)
    results["collection"] = collection_vs_long(args.clips[-1], args.model, args.device)

    print("bench: a 720p archive on Ray (one node, two nodes) vs locally ...", file=sys.stderr)
    results["cluster"] = cluster.run(args.model, args.clips[-1], args.reuse_clips[0], args.device)

    print("bench: reuse between frames vs the exact path ...", file=sys.stderr)
    results["reuse"] = [row for clip in args.reuse_clips for row in
                        reuse_vs_exact(clip, args.model, args.device, args.reuse_frames, args.reuse_thresholds)]

    print("bench: live streams on one model, exact and with reuse ...", file=sys.stderr)
    results["multistream"] = multi.run(args.model, args.reuse_clips[0], args.device, args.streams,
                                       args.multi_seconds, 12, args.seconds)

    print("bench: notebook-style baseline ...", file=sys.stderr)
    results["baseline"] = notebook_baseline(args.clips[0], args.baseline_model, args.device, args.baseline_frames)
    print("bench: INT8 vs FP32 label agreement ...", file=sys.stderr)
    results["int8_label_agreement"] = int8_agreement(args.clips[0], args.model, args.int8_model, args.device,
                                                     args.agreement_frames)
    results["ratios"] = ratios(results)
    write_json(args.out, results)
    print(table(results))
    print(f"\nwritten to {args.out}")
    return 0


def collection_vs_long(clip: Path, model_dir: Path, device: str, parts: int = 10) -> dict[str, Any]:
    """The same frames as one long clip and as ``parts`` short clips in a folder, each through one
    ``vidseg process`` run: what file boundaries cost (the queue should stay full across them)."""
    work = Path("bench/work/collection")
    shutil.rmtree(work, ignore_errors=True)
    (work / "clips").mkdir(parents=True)
    source = VideoSource(clip)
    frames = [f.image for f in source.frames()]
    rate = source.fps or Fraction(30)
    source.close()
    per = len(frames) // parts
    frames = frames[: per * parts]
    _encode(work / "long.mp4", frames, rate)
    for k in range(parts):
        _encode(work / "clips" / f"part{k:02d}.mp4", frames[k * per:(k + 1) * per], rate)
    runs = {name: _timed_run(src, model_dir, device, out, len(frames))
            for name, src, out in (("long", work / "long.mp4", work / "long_out.mp4"),
                                   ("collection", work / "clips", work / "collection_out"))}
    return {"clip": clip.name, "parts": parts, "long_clip": str(work / "long.mp4"), **runs,
            "ratio": round(runs["collection"]["fps"] / runs["long"]["fps"], 3)}


def _timed_run(src: Path, model_dir: Path, device: str, out: Path, frames: int, *extra: str) -> dict[str, Any]:
    """One ``vidseg process`` run in its own process, timed from launch to exit (start-up included)."""
    summary = out.with_name(out.stem + "_summary.json")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidseg", "process", str(src), "--model", str(model_dir),
                           "--device", device, "-o", str(out), "--summary", str(summary), "--quiet", *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise VidsegError(f"vidseg process failed on {src}: {proc.stderr.strip()[-300:]}")
    return {"frames": frames, "wall_s": round(wall, 2), "fps": round(frames / wall, 3),
            "summary": json.loads(summary.read_text())}


def reuse_vs_exact(clip: Path, model_dir: Path, device: str, frames: int,
                   thresholds: tuple[float, ...] = (0.8,)) -> list[dict[str, Any]]:
    """``vidseg process`` without and with ``--reuse`` (at each threshold) on the same frames, overlay
    video and label PNGs written, wall time incl. start-up; and how many pixels of each frame the label
    maps share with the exact run's."""
    work = Path("bench/work/reuse") / clip.stem
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    def run(name: str, *extra: str) -> dict[str, Any]:
        return _timed_run(clip, model_dir, device, work / f"{name}.mp4", frames, "--max-frames", str(frames),
                          "--labels", str(work / name), *extra)

    exact = run("exact")
    rows = []
    for threshold in thresholds:
        name = f"reuse_{threshold:g}"
        reuse = run(name, "--reuse", "--reuse-threshold", str(threshold))
        pairs = zip(sorted((work / "exact").glob("*.png")), sorted((work / name).glob("*.png")))
        agreement = np.array([np.mean(np.asarray(Image.open(a)) == np.asarray(Image.open(b))) for a, b in pairs])
        stats = reuse["summary"]["reuse"]
        rows.append({"clip": clip.name, "frames": int(agreement.size), "threshold": threshold,
                     "exact_fps": exact["fps"], "reuse_fps": reuse["fps"],
                     "speed_up": round(reuse["fps"] / exact["fps"], 2),
                     "agreement_mean": round(float(agreement.mean()), 4),
                     "agreement_worst": round(float(agreement.min()), 4),
                     "frames_below_98": int((agreement < 0.98).sum()),
                     "tokens_computed": round(stats["tokens_computed"] / stats["tokens_total"], 3),
                     "full_frames": stats["full_frames"]})
    return rows


def _encode(path: Path, frames: list[np.ndarray], rate: Fraction) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18", "preset": "veryfast"}
        stream.codec_context.gop_size = 30  # a keyframe a second, as cameras write
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def end_to_end(clip: Path, model_dir: Path, key: str, device: str) -> dict[str, Any]:
    out_dir = Path("bench/work")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / f"{clip.stem}-{key}.json"
    cmd = [sys.executable, "-m", "vidseg", "process", str(clip), "--model", str(model_dir), "--device", device,
           "-o", str(out_dir / f"{clip.stem}-{key}.mp4"), "--summary", str(summary_path), "--quiet"]
    started, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    peak = _peak_rss(proc)
    stderr = proc.communicate()[1]
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = usage.ru_utime + usage.ru_stime - children.ru_utime - children.ru_stime
    if proc.returncode != 0:
        raise VidsegError(f"vidseg process failed on {clip}: {stderr.strip()[-300:]}")
    summary = json.loads(summary_path.read_text())
    source = VideoSource(clip)
    width, height = source.stream.width, source.stream.height
    source.close()
    engine_geo = _geometry(model_dir, width, height)
    return {"clip": clip.name, "model": key, "size": f"{width}x{height}", "frames": summary["frames_out"],
            "windows_per_frame": engine_geo.n_windows, "wall_s": round(wall, 2),
            "fps": round(summary["frames_out"] / wall, 3), "fps_excluding_startup": summary["fps"],
            "peak_rss_mb": round(peak / 2**20), "stage_ms_per_frame": summary["stage_ms_per_frame"],
            **cpu_accounts(cpu_s, wall, summary)}


def cpu_accounts(cpu_s: float, wall: float, summary: dict[str, Any]) -> dict[str, float]:
    """Where a run's CPU time went, which a host's drift hardly moves (the ratio to a ceiling measured at
    another moment does): the share of the cores the run kept busy, and the share of its CPU time spent
    outside inference (decoding, preprocessing, stitching, rendering, encoding). busy x (1 - outside) bounds
    the end-to-end ratio from above, when inference runs at the ceiling's pace: the stage timers miss the
    threads' glue and OpenCV's and FFmpeg's helper threads (about 10 CPU ms a 1080p frame on the AVX2 host,
    from per-thread CPU in /proc: 8.5% outside inference where the timers say 7%)."""
    stages = summary["stage_ms_per_frame"]
    outside = sum(ms for stage, ms in stages.items() if stage != "inference") * summary["frames_out"] / 1000
    return {"cpu_s": round(cpu_s, 1), "cores_busy": round(cpu_s / wall / psutil.cpu_count(logical=True), 3),
            "outside_inference": round(outside / cpu_s, 3)}


def target_runs(clip: Path, model_dir: Path, device: str, runs: int, first_ceiling: float,
                measure: Callable[[], float]) -> dict[str, Any]:
    """The issue's target (end to end >= 0.9 of the ceiling at 1080p) on a shared host whose speed drifts by
    up to 18% within minutes: the clip ``runs`` times, each between two ceilings, each run judged against
    the mean of the two beside it (and, more strictly, the higher one), and the median reported."""
    ceilings, rows = [first_ceiling], []
    for _ in range(runs):
        e = end_to_end(clip, model_dir, "fp32", device)
        ceilings.append(measure())
        before, after = ceilings[-2:]
        mean, n = (before + after) / 2, e["windows_per_frame"]
        rows.append({"fps": e["fps"], "fps_excluding_startup": e["fps_excluding_startup"], "wall_s": e["wall_s"],
                     "ceilings": [before, after], "cores_busy": e["cores_busy"],
                     "outside_inference": e["outside_inference"], "ratio": round(e["fps"] * n / mean, 3),
                     "ratio_vs_higher": round(e["fps"] * n / max(before, after), 3),
                     "ratio_run_only": round(e["fps_excluding_startup"] * n / mean, 3)})
    return {"clip": clip.name, "runs": rows, **{f"median_{k}": round(float(np.median([r[k] for r in rows])), 3)
                                                for k in ("ratio", "ratio_vs_higher", "ratio_run_only")}}


def _geometry(model_dir: Path, width: int, height: int) -> FrameGeometry:
    _, info = read_model(model_dir, ov.Core())
    return frame_geometry(width, height, info.short_side, info.long_side_cap, info.window_size, info.window_stride)


def _peak_rss(proc: subprocess.Popen) -> int:
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return peak


def notebook_baseline(clip: Path, model_dir: Path, device: str, frames: int) -> dict[str, Any]:
    """Per frame: sync inference of each window at full resolution, then host-side stitch/resize/argmax."""
    core = ov.Core()
    model, info = read_model(model_dir, core)
    w = info.window_size
    model.reshape({model.inputs[0]: [1, w, w, 3]})
    core.set_property("CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = core.compile_model(model, device).create_infer_request()
    source = VideoSource(clip)
    done, started = 0, time.perf_counter()
    for frame in source.frames():
        if done == frames:
            break
        geo, windows = frame_windows(frame.image, info.short_side, info.long_side_cap, w, info.window_stride)
        canvas = np.zeros((info.n_classes, geo.scaled_height, geo.scaled_width), np.float32)
        count = np.zeros((geo.scaled_height, geo.scaled_width), np.float32)
        for (y, x), window in zip(((y, x) for y in geo.ys for x in geo.xs), windows):
            canvas[:, y:y + w, x:x + w] += request.infer({0: window[None]})[0][0]
            count[y:y + w, x:x + w] += 1
        canvas /= count
        full = np.stack([cv2.resize(c, (geo.width, geo.height), interpolation=cv2.INTER_LINEAR) for c in canvas])
        full.argmax(axis=0)
        done += 1
    source.close()
    wall = time.perf_counter() - started
    return {"clip": clip.name, "frames": done, "wall_s": round(wall, 2), "fps": round(done / wall, 4)}


def int8_agreement(clip: Path, fp32: Path, int8: Path, device: str, frames: int) -> dict[str, float]:
    engines = [Engine(fp32, device, "LATENCY"), Engine(int8, device, "LATENCY")]
    source = VideoSource(clip)
    step = max(1, (source.frame_count or frames) // frames)
    scores = []
    for frame in source.frames():
        if frame.index % step:
            continue
        a, b = (e.segment(frame.image) for e in engines)
        scores.append(float((a == b).mean()))
        if len(scores) == frames:
            break
    source.close()
    return {"frames": len(scores), "mean": round(float(np.mean(scores)), 4), "worst": round(float(np.min(scores)), 4)}


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    ceil = {k: v["windows_per_s"] for k, v in r["ceiling"].items()}
    out: dict[str, Any] = {"int8_vs_fp32_ceiling": round(ceil["int8"] / ceil["fp32"], 3),
                           "--ray local vs local, one node": r["cluster"]["ray_local_120"]["ratio"]}
    for e in r["end_to_end"]:
        name = f"{e['clip']}:{e['model']}"
        out[f"{name} of own ceiling"] = round(e["fps"] * e["windows_per_frame"] / ceil[e["model"]], 3)
        out[f"{name} of the ceiling measured just before it"] = round(
            e["fps"] * e["windows_per_frame"] / e["ceiling_before"], 3)
        out[f"{name} vs upstream-style ceiling"] = round(e["fps"] * e["windows_per_frame"] / ceil["upstream"], 3)
        if e["clip"] == r["baseline"]["clip"]:
            out[f"{name} vs notebook baseline"] = round(e["fps"] / r["baseline"]["fps"], 1)
    out[f"{r['target']['clip']}:fp32 of the ceilings beside it, median of {len(r['target']['runs'])} runs"] = \
        r["target"]["median_ratio"]
    by = {(e["clip"], e["model"]): e["fps"] for e in r["end_to_end"]}
    for clip in {e["clip"] for e in r["end_to_end"]}:
        out[f"{clip}: int8/fp32 end to end"] = round(by[(clip, "int8")] / by[(clip, "fp32")], 3)
    return out


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, flags {' '.join(m['cpu_flags'])}, "
             f"OpenVINO {m['openvino']}, {m['date']}",
             "", "| model-only ceiling (benchmark_app, f32) | windows/s |", "|---|---|"]
    for k, v in r["ceiling"].items():
        runs = f" (highest of {', '.join(map(str, v['runs']))})" if len(v["runs"]) > 1 else ""
        lines.append(f"| {k} IR (batch {v['batch']}) | {v['windows_per_s']}{runs} |")
    lines += ["", "| end to end (vidseg process, wall incl. start-up) | frames | fps | windows/frame | peak RSS MB "
              "| cores busy | CPU outside inference |", "|---" * 7 + "|"]
    for e in r["end_to_end"]:
        lines.append(f"| {e['clip']} {e['size']} {e['model']} | {e['frames']} | {e['fps']} | "
                     f"{e['windows_per_frame']} | {e['peak_rss_mb']} | {e['cores_busy']:.1%} | "
                     f"{e['outside_inference']:.1%} |")
    t = r["target"]
    lines += ["", f"| target: {t['clip']} FP32 between two ceilings | fps | ceilings | of their mean | of the higher "
              "| of their mean, run only | cores busy | CPU outside inference |", "|---" * 8 + "|"]
    lines += [f"| run {i} | {x['fps']} | {x['ceilings'][0]} / {x['ceilings'][1]} | {x['ratio']} | "
              f"{x['ratio_vs_higher']} | {x['ratio_run_only']} | {x['cores_busy']:.1%} | {x['outside_inference']:.1%} |"
              for i, x in enumerate(t["runs"], 1)]
    lines.append(f"| median | | | {t['median_ratio']} | {t['median_ratio_vs_higher']} | {t['median_ratio_run_only']} "
                 "| | |")
    b = r["baseline"]
    c = r["collection"]
    lines += ["", f"collection of {c['parts']} clips ({c['clip']} cut up): {c['collection']['fps']} fps vs one long "
              f"clip {c['long']['fps']} fps: ratio {c['ratio']}"]
    lines += ["", cluster.table(r["cluster"])]
    lines += ["", "| reuse vs exact (vidseg process, same frames) | threshold | frames | exact fps | --reuse fps | "
              "speed-up | agreement mean / worst | frames < 98% | tokens computed |", "|---" * 9 + "|"]
    lines += [f"| {x['clip']} | {x['threshold']:g} | {x['frames']} | {x['exact_fps']} | {x['reuse_fps']} | "
              f"{x['speed_up']}x | {x['agreement_mean']:.2%} / {x['agreement_worst']:.2%} | {x['frames_below_98']} | "
              f"{x['tokens_computed']:.1%} |" for x in r["reuse"]]
    lines += ["", multi.table(r["multistream"])]
    lines += ["", f"notebook baseline on {b['clip']}: {b['fps']} fps ({b['frames']} frames in {b['wall_s']} s)",
              f"INT8 vs FP32 label agreement: mean {r['int8_label_agreement']['mean']:.2%}, "
              f"worst {r['int8_label_agreement']['worst']:.2%}", "", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["ratios"].items()]
    return "\n".join(lines)
