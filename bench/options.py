"""The flags of ``python -m bench`` (``make bench``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("models/seg_tiny_mask"), help="FP32 model directory")
    p.add_argument("--int8-model", type=Path, default=Path("models/seg_tiny_mask-int8"))
    p.add_argument("--baseline-model", type=Path, default=Path("models/seg_tiny_mask-fullres"),
                   help="upstream-style IR (vidseg convert --full-resolution-output)")
    p.add_argument("--clips", type=Path, nargs="+",
                   default=[Path("samples/media/pan_1080p.mp4"), Path("samples/media/pan_720p.mp4")])
    p.add_argument("--device", default="CPU")
    p.add_argument("--seconds", type=int, default=20, help="benchmark_app run time per IR (default 20)")
    p.add_argument("--target-runs", type=int, default=3,
                   help="extra runs of the first clip in FP32, each between two ceilings (default 3)")
    p.add_argument("--baseline-frames", type=int, default=4, help="frames for the notebook baseline (default 4)")
    p.add_argument("--agreement-frames", type=int, default=8, help="frames for INT8-vs-FP32 label agreement")
    data = Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data")
    p.add_argument("--reuse-clips", type=Path, nargs="+", default=[data / "vtest.avi", data / "Megamind.avi"],
                   help="real footage for --reuse vs exact (default opencv-doc's vtest.avi and Megamind.avi)")
    p.add_argument("--reuse-frames", type=int, default=200, help="frames of each reuse clip (default 200)")
    p.add_argument("--reuse-thresholds", type=float, nargs="+", default=[0.5, 0.8, 2.0],
                   help="--reuse-threshold values to compare (default 0.5 0.8 2)")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="live stream counts of the multi-stream row (default 1 2 4 8)")
    p.add_argument("--multi-seconds", type=int, default=20, help="measured seconds per multi-stream run")
    p.add_argument("--out", type=Path, default=Path("bench/results.json"))
