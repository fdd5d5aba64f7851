"""``vidseg``: the command line. Parses and validates, builds the pieces, runs them, maps errors to exits.

    vidseg convert [NAME | --checkpoint PTH] [-o DIR] [--int8 --calibration MEDIA]
    vidseg process INPUT [-o OUTPUT] [-o udp://|rtmp://...] [--labels DIR] [--preview] [--ray [ADDRESS]] ...
    vidseg info [--model DIR]
    vidseg plot STATS.jsonl -o timeline.png [--classes labels.json | --model DIR]
    vidseg bench [...]

Data flow for ``process``: ``sources.open_source`` -> ``api.Segmenter`` (compiles an ``engine.Engine``) ->
``Segmenter.stream`` -> ``pipeline.Stream`` (uses ``stitch``, ``render``; yields ``result.FrameResult``) ->
``writer.Writer`` (uses ``sinks``) -> ``summary.Summary``. With ``--ray``, ``cluster.stream.RayStream``
takes the place of ``Segmenter.stream``; both are ``streaming.FrameStream``. The live outputs
(``preview.server.Preview``, ``netout.StreamOutput``) are offered each frame after the writer. Python
programs use the same pieces.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

import vidseg
from convert import options as convert_options
from vidseg import bench_options, cpu
from vidseg.cluster.units import DEFAULT_SEGMENT_FRAMES
from vidseg.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, VidsegError
from vidseg.modeldir import DEFAULT_MODEL_DIR
from vidseg.netout import StreamOutput, is_stream_output
from vidseg.outputs import plan_collection, plan_outputs
from vidseg.preview.server import DEFAULT_ADDRESS
from vidseg.reuse import ReusePolicy
from vidseg.sinks import write_json
from vidseg.sources import CollectionSource, Source
from vidseg.writer import CollectionWriter, Writer
from vidseg.x264 import PRESETS

if TYPE_CHECKING:
    from vidseg.result import FrameResult
    from vidseg.streaming import FrameStream
    from vidseg.summary import Summary


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise VidsegError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vidseg", description="Semantic segmentation of video and images with Segmenter "
                                                 "on OpenVINO.")
    parser.add_argument("--version", action="version", version=f"vidseg {vidseg.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("process", help="segment a video, image(s), camera or stream")
    p.add_argument("input", help="video file, image, folder or glob (videos and images), @list.txt (one path or "
                        "URL a line), camera index (0) or stream URL")
    p.add_argument("-o", "--output", action="append", help="overlay video (.mp4/.mov/.mkv); a folder for images and "
                                                      "collections")
    p.add_argument("--labels", type=Path, help="folder for label PNGs (pixel value = class id)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help=f"model dir (default {DEFAULT_MODEL_DIR})")
    p.add_argument("--device", default="AUTO", help="CPU, GPU, NPU, AUTO... (default AUTO)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    p.add_argument("--stride", type=int, help="window stride in pixels (default: the model's; smaller overlaps)")
    p.add_argument("--nireq", type=int, default=0, help="infer requests (default: OpenVINO's optimum)")
    p.add_argument("--hint", choices=["THROUGHPUT", "LATENCY"],
                   help="OpenVINO hint (default THROUGHPUT for files, LATENCY for live)")
    p.add_argument("--precision-hint", choices=["f32", "bf16", "f16"], default="f32",
                   help="CPU arithmetic for non-INT8 layers (default f32, upstream's; bf16 is faster on CPUs "
                        "with AVX512_BF16/AMX but labels drift)")
    p.add_argument("--cpu-streams", type=int, default=0,
                   help="CPU inference streams (default 0: OpenVINO's choice, each stream checked; "
                        "see README: Devices)")
    p.add_argument("--crf", type=int, default=20, help="overlay video quality, x264 CRF 0..51 (default 20)")
    p.add_argument("--preset", default="overlay", choices=PRESETS,
                   help="x264 speed/size trade-off (default overlay: ultrafast with CABAC, B-frames, deblocking; "
                        "the encoder shares the CPU with the model)")
    p.add_argument("--start", type=float, help="video: start at this time (s)")
    p.add_argument("--end", type=float, help="video: stop after this time (s)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--recursive", action="store_true", help="folders: include subfolders")
    p.add_argument("--resume", action="store_true",
                   help="folders, globs, lists: skip inputs whose outputs are complete")
    p.add_argument("--stats", type=Path, help="per-frame class pixel fractions (JSON lines)")
    p.add_argument("--summary", type=Path, help="write the run summary as JSON")
    p.add_argument("--reconnect-attempts", type=int, default=5, help="live: reopen tries before giving up")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary screen")
    p.add_argument("--preview", nargs="?", const=DEFAULT_ADDRESS, metavar="HOST:PORT",
                   help=f"watch the run in a web browser (default {DEFAULT_ADDRESS}; binding to another address "
                        "exposes the video to that network, see README: Live preview)")
    ru = p.add_argument_group("reuse between frames (an approximation; see README: Reuse between frames)")
    ru.add_argument("--reuse", action="store_true",
                    help="video: recompute only the patches that changed since they were last computed")
    ru.add_argument("--reuse-threshold", type=float, default=ReusePolicy.threshold, metavar="LEVELS",
                    help="mean change (0-255) of a patch's 8x8-averaged pixels that makes it recompute "
                         f"(default {ReusePolicy.threshold:g}; lower is closer to exact, slower)")
    ru.add_argument("--reuse-refresh", type=int, default=ReusePolicy.refresh, metavar="FRAMES",
                    help=f"recompute every frame in full at least this often (default {ReusePolicy.refresh})")
    r = p.add_argument_group("cluster (the [ray] extra; see README: Collections and clusters)")
    r.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run inference on a Ray cluster: its address (host:port), none for the cluster 'ray "
                        "start' made on this machine, or 'local' for a new one-machine cluster")
    r.add_argument("--ray-cpus", type=int, help="CPUs per Ray task (default: as many as the smallest node has)")
    r.add_argument("--segment-frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                   help=f"split videos at the first keyframe after this many frames (default {DEFAULT_SEGMENT_FRAMES})")

    c = sub.add_parser("convert", help="checkpoint -> verified OpenVINO model directory")
    convert_options.add_arguments(c)

    i = sub.add_parser("info", help="show devices and a model's metadata")
    i.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)

    pl = sub.add_parser("plot", help="per-frame class shares (--stats) as a timeline picture (PNG or SVG)")
    pl.add_argument("stats", type=Path, help="JSON lines written by vidseg process --stats")
    pl.add_argument("-o", "--output", type=Path, required=True, help="timeline.png or timeline.svg")
    pl.add_argument("--classes", type=Path, help="labels.json written by --labels, for the class colours")
    pl.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                    help=f"else the colours come from this model (default {DEFAULT_MODEL_DIR})")
    pl.add_argument("--top", type=int, default=8, help="classes drawn on their own (default 8; the rest: other)")
    pl.add_argument("--input", help="a collection's stats: which input to plot (default the first)")

    b = sub.add_parser("bench", help="throughput benchmark; writes bench/results.json")
    bench_options.add_arguments(b)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "process":
            return process(args)
        if args.command == "convert":
            try:
                from convert.cli import run
            except ImportError as e:
                raise VidsegError(f"the converter needs the [convert] extra ({e.name} is missing): "
                                  "pip install 'vidseg[convert]'") from None

            return run(args)
        if args.command == "info":
            return info(args)
        if args.command == "plot":
            return plot_stats(args)
        from vidseg import bench

        return bench.run(args)
    except VidsegError as e:
        print(f"vidseg: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the disk filled up, a mount went away...: the environment, not a bug
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"vidseg: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vidseg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def _check_flags(args: argparse.Namespace) -> None:
    if not 0.0 <= args.alpha <= 1.0:
        raise VidsegError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.stride is not None and args.stride <= 0:
        raise VidsegError(f"--stride must be a positive number of pixels, got {args.stride}")
    if args.cpu_streams < 0:
        raise VidsegError(f"--cpu-streams must be 0 (automatic) or more, got {args.cpu_streams}")
    if not 0 <= args.crf <= 51:
        raise VidsegError(f"--crf must be between 0 and 51, got {args.crf}")
    if args.nireq < 0:
        raise VidsegError(f"--nireq must be 0 (automatic) or more, got {args.nireq}")
    if args.max_frames is not None and args.max_frames < 1:
        raise VidsegError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.start is not None and args.start < 0:
        raise VidsegError(f"--start must be >= 0, got {args.start}")
    if args.end is not None and args.end <= (args.start or 0):
        raise VidsegError("--end must be after --start")
    if args.reuse_threshold < 0 or args.reuse_refresh < 1:
        raise VidsegError("--reuse-threshold must be >= 0 and --reuse-refresh at least 1")
    if args.reuse and args.ray is not None:
        raise VidsegError("--reuse runs locally only; drop --ray or --reuse")
    if args.output is None and args.labels is None and args.stats is None and args.preview is None \
            and not args.streams:
        raise VidsegError("nothing to write: pass -o OUTPUT, --labels DIR, --stats FILE and/or --preview")
    if args.resume and args.output is None and args.labels is None:
        raise VidsegError("--resume needs -o or --labels: it tells finished inputs by their files")


def _split_outputs(args: argparse.Namespace) -> None:
    """``-o`` may be given twice: one file or folder, and live stream URLs (``args.streams``)."""
    targets = args.output or []
    args.streams = [t for t in targets if is_stream_output(t)]
    for url in args.streams:  # an unsupported scheme is refused before anything starts
        StreamOutput.check(url)
    files = [Path(t) for t in targets if not is_stream_output(t)]
    if len(files) > 1:
        raise VidsegError(f"-o takes one file or folder (and stream URLs), got {', '.join(map(str, files))}")
    args.output = files[0] if files else None


def _live_outputs(args: argparse.Namespace) -> list[LiveOutput]:
    """The preview and the stream outputs: they watch the run and never hold it back."""
    outputs: list[LiveOutput] = []
    if args.preview is not None:
        from vidseg.preview.server import Preview

        preview = Preview(args.preview, title=args.input, alpha=args.alpha)
        print(f"vidseg: preview at {preview.url}", file=sys.stderr)
        outputs.append(preview)
    outputs += [StreamOutput(url, args.alpha, args.crf, args.preset) for url in args.streams]
    return outputs


def _stream(args: argparse.Namespace, source: Source, writer: Writer | CollectionWriter) -> FrameStream:
    """The run's stream of labelled frames: inferred here (``Segmenter``) or on a Ray cluster."""
    overlay_alpha = args.alpha if writer.wants_overlay or args.streams else None
    skip = writer.done if args.resume and source.kind in ("images", "collection") else None
    if args.ray is not None:
        from vidseg.cluster.stream import cluster_stream

        stream = cluster_stream(source, args.ray, args.model, args.device, stride=args.stride,
                                precision=args.precision_hint, cpu_streams=args.cpu_streams,
                                cpus_per_task=args.ray_cpus, segment_frames=args.segment_frames,
                                start=args.start, end=args.end, max_frames=args.max_frames,
                                overlay_alpha=overlay_alpha, skip=skip)
        if not args.quiet:
            print(f"vidseg: {stream.summary.device}", file=sys.stderr)
        return stream
    from vidseg.api import Segmenter

    seg = Segmenter(args.model, args.device, nireq=args.nireq, stride=args.stride,
                    performance=args.hint or ("LATENCY" if source.live else "THROUGHPUT"),
                    precision=args.precision_hint, cpu_streams=args.cpu_streams)
    if not args.quiet:
        streams = f"{seg.cpu_streams} CPU stream{'s' * (seg.cpu_streams > 1)}, " if seg.cpu_streams else ""
        print(f"vidseg: {args.device} -> {', '.join(seg.execution_devices)}, {streams}{seg.nireq} requests, "
              f"model {seg.model_info.name} {seg.model_info.precision}", file=sys.stderr)
    # Warnings print even with --quiet: scripted runs are the ones that repeat a slow choice every day.
    note = cpu.advice().warning(seg.model_info.precision, seg.execution_devices)
    if note:
        print(f"vidseg: {note}", file=sys.stderr)
    reuse = ReusePolicy(args.reuse_threshold, args.reuse_refresh) if args.reuse else None
    return seg.stream(source, max_frames=args.max_frames, overlay_alpha=overlay_alpha, skip=skip, reuse=reuse)


def process(args: argparse.Namespace) -> int:
    from vidseg.sources import open_source

    _split_outputs(args)
    _check_flags(args)
    # The input is opened first: a wrong camera, URL or file is a one-line error before the model compiles.
    source = open_source(args.input, args.recursive, args.start, args.end, args.reconnect_attempts,
                         exclude=[p for p in (args.output, args.labels) if p is not None])
    try:
        writer: Writer | CollectionWriter
        if isinstance(source, CollectionSource):
            writer = plan_collection(args, source)
        else:
            writer = plan_outputs(args, source.kind, None if source.live else Path(args.input))
        if args.streams and source.kind not in ("video", "stream", "camera"):
            raise VidsegError(f"-o URL streams the overlay of one video, camera or stream, not of {source.kind}")
        stream = _stream(args, source, writer)
        live = _live_outputs(args)
    except BaseException:
        source.close()
        raise
    summary = write_all(stream, writer, args.quiet, live)
    if summary.stream_note:  # a warning: printed even with --quiet
        print(f"vidseg: {summary.stream_note}", file=sys.stderr)
    if args.summary is not None:
        write_json(args.summary, summary.to_dict())
    if not args.quiet:
        print(summary.report(), file=sys.stderr)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.frames_out == 0 and summary.resumed == 0:
        why = ""
        if summary.failures:
            why = f": {summary.failures[0]['error']}"
        elif args.start and not summary.frames_in:
            why = f": none at or after --start {args.start:g} s"
        raise VidsegError(f"no frames could be segmented from {args.input}{why}")
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


class LiveOutput(Protocol):
    """What watches a run without holding it back: the preview, a stream output."""

    def publish(self, frame: FrameResult) -> None: ...

    def close(self) -> None: ...

    def report(self) -> dict[str, Any]: ...


def write_all(stream: FrameStream, writer: Writer | CollectionWriter, quiet: bool,
              live: Sequence[LiveOutput] = ()) -> Summary:
    """Every frame of the stream through the writer (and offered to the live outputs), with a progress bar
    (and the file being written, for collections). Ctrl-C or SIGTERM stops intake and lets the frames in
    flight be written (exit 130); a second one drops them."""

    def on_signal(signum: int, _frame: object) -> None:
        stream.stop(now=stream.stopping)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    progress = tqdm(total=stream.frame_count, unit="frame", disable=True if quiet else None, leave=False)
    try:
        with stream:
            try:
                current = None
                for frame in stream:
                    t0 = time.thread_time()
                    writer.write(frame)
                    stream.summary.add_time("write", time.thread_time() - t0)
                    for output in live:
                        output.publish(frame)
                    if frame.input != current and stream.input_count:
                        current = frame.input
                        progress.set_postfix_str(f"file {len(stream.summary.inputs)}/{stream.input_count}: "
                                                 f"{current}")
                    progress.update(1)
            except BaseException:
                writer.close(complete=False)
                raise
            writer.close(complete=not stream.summary.interrupted)
    finally:
        progress.close()
        for output in live:
            output.close()
        stream.summary.live_outputs = [output.report() for output in live]
        for s, handler in previous.items():
            signal.signal(s, handler)
        stream.summary.audio_skipped = writer.audio_skipped
    return stream.summary


def plot_stats(args: argparse.Namespace) -> int:
    from vidseg import plot

    if args.top < 1:
        raise VidsegError(f"--top must be at least 1, got {args.top}")
    timeline = plot.read_stats(args.stats, args.input)
    if args.classes is not None:
        colors = plot.class_colors(args.classes)
    else:
        import openvino as ov

        from vidseg.modeldir import read_model

        _, meta = read_model(args.model, ov.Core())
        colors = dict(zip(meta.class_names, meta.class_colors, strict=True))
    print(f"wrote {plot.plot(timeline, colors, args.output, args.top)}")
    return EXIT_OK


def info(args: argparse.Namespace) -> int:
    import openvino as ov

    from vidseg.modeldir import read_model

    core = ov.Core()
    print(f"vidseg {vidseg.__version__}, OpenVINO {ov.get_version()}")
    for d in core.available_devices:
        print(f"device {d}: {core.get_property(d, 'FULL_DEVICE_NAME')}")
        if d == "CPU":
            here = cpu.advice()
            print(f"  instruction sets: {' '.join(f for f in cpu.ISA_FLAGS if f in here.flags) or 'unknown'}")
            print(f"  OpenVINO capabilities: {' '.join(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}")
            for line in here.lines():
                print(f"  {line}")
    if not (args.model / "model.xml").exists() and args.model == DEFAULT_MODEL_DIR:
        print(f"model: none at {args.model} (run 'vidseg convert', or pass --model DIR)")
        return EXIT_OK
    model, meta = read_model(args.model, core)
    print(f"model {args.model}: {meta.name} ({meta.dataset}, {meta.n_classes} classes), {meta.precision}")
    print(f"  input {model.inputs[0].get_partial_shape()} u8 NHWC BGR, output {model.outputs[0].get_partial_shape()}")
    print(f"  window {meta.window_size}, stride {meta.window_stride}, patch {meta.patch_size}, "
          f"short side {meta.short_side} (long side cap {meta.long_side_cap}), "
          f"normalisation {meta.normalization.get('name')}")
    print(f"  source {meta.source.get('checkpoint')} sha256 {meta.source.get('sha256')}")
    print(f"  converter {meta.converter_version}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
