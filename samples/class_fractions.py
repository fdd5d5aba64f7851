"""How much of a video each class covers: mean and peak share of the frame, over every frame.

    python samples/class_fractions.py input.mp4 [--model DIR] [--device AUTO] [--top 15]

An example of vidseg's Python API: one Segmenter, one stream, per-frame fractions, a table at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import vidseg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="video, folder of images, camera index or stream URL")
    parser.add_argument("--model", help="model directory (default: the one vidseg process uses)")
    parser.add_argument("--device", default="AUTO")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--top", type=int, default=15, help="classes to list (default 15)")
    args = parser.parse_args()

    total: dict[str, float] = defaultdict(float)
    peak: dict[str, float] = defaultdict(float)
    present: dict[str, int] = defaultdict(int)
    try:
        with vidseg.Segmenter(args.model, args.device) as seg, seg.stream(args.input,
                                                                          max_frames=args.max_frames) as frames:
            for frame in frames:
                for name, share in frame.fractions().items():
                    total[name] += share
                    peak[name] = max(peak[name], share)
                    present[name] += 1
    except vidseg.VidsegError as e:
        print(f"class_fractions: {e}", file=sys.stderr)
        return 2
    n = frames.summary.frames_out
    if n == 0:
        print("class_fractions: no frames segmented", file=sys.stderr)
        return 1
    mean = {name: t / n for name, t in total.items()}
    width = max(len(name) for name in mean)
    print(f"{'class':<{width}}  {'mean':>6}  {'max':>6}  {'frames':>6}")
    for name in sorted(mean, key=mean.get, reverse=True)[: args.top]:
        print(f"{name:<{width}}  {mean[name]:>6.1%}  {peak[name]:>6.1%}  {present[name]:>6}")
    summary = frames.summary
    print(f"\n{n} frames, {len(mean)} classes seen, {summary.fps:.2f} frames/s on "
          f"{','.join(summary.execution_devices)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
