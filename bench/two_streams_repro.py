"""Standalone check: do two concurrent CPU streams return the same logits as one stream?

Uses only OpenVINO and numpy, so it can go into an upstream bug report as it is. In each fresh process:
compile the IR once with one CPU stream (the reference) and once with two streams (THROUGHPUT hint,
f32 arithmetic), push the same fixed u8 inputs through an AsyncInferQueue of 4 requests, and compare
every output with the reference. A fresh process each time because the failure, when seen, came and went
between processes.

    python bench/two_streams_repro.py models/seg_tiny_mask/model.xml [--processes 20] [--rounds 6]

Prints one line per process and a verdict; exit 1 if any output differed. While this reproduces on the
OpenVINO release in use, vidseg checks every stream when it compiles a model (engine.streams_agree).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import openvino as ov


def one_process(xml: str, rounds: int, seed: int) -> dict:
    core = ov.Core()
    model = core.read_model(xml)
    shape = [1] + [d.get_length() for d in model.inputs[0].get_partial_shape()[1:]]
    model.reshape({model.inputs[0]: shape})
    inputs = [np.random.default_rng(seed + i).integers(0, 256, shape, dtype=np.uint8) for i in range(4)]
    base = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
    single = core.compile_model(model, "CPU", {**base, "NUM_STREAMS": 1}).create_infer_request()
    reference = [single.infer({0: x})[0].copy() for x in inputs]
    dual = core.compile_model(model, "CPU", {**base, "NUM_STREAMS": 2})
    queue = ov.AsyncInferQueue(dual, 4)
    results: list[tuple[int, np.ndarray]] = []
    queue.set_callback(lambda request, k: results.append((k, request.get_output_tensor(0).data.copy())))
    for _ in range(rounds):
        for k in range(len(inputs)):
            queue.start_async({0: inputs[k]}, k)
    queue.wait_all()
    diffs = [float(np.abs(out - reference[k]).max()) for k, out in results]
    return {"inferences": len(results), "differing": sum(d > 1e-3 for d in diffs), "max_abs_diff": max(diffs),
            "streams": int(dual.get_property("NUM_STREAMS"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml", help="an IR (model.xml) with a u8 [N, H, W, C] input")
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6, help="passes over the 4 inputs per process")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_process(args.xml, args.rounds, args.child)))
        return 0
    failing, total = 0, 0
    print(f"OpenVINO {ov.get_version()}, {args.processes} fresh processes x {args.rounds * 4} inferences")
    for p in range(args.processes):
        out = subprocess.run([sys.executable, __file__, args.xml, "--rounds", str(args.rounds), "--child", str(p)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total += r["inferences"]
        failing += r["differing"] > 0
        print(f"process {p:2d}: {r['streams']} streams, {r['differing']}/{r['inferences']} outputs differ "
              f"(max |diff| {r['max_abs_diff']:.3g})")
    print(f"verdict: {failing} of {args.processes} processes returned differing logits ({total} inferences)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
