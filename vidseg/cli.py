"""``vidseg``: the command line, a thin layer over the library. Parses flags, builds the pieces, runs them,
maps errors to exit codes.

    vidseg convert [NAME | --checkpoint PTH] [-o DIR] [--int8 --calibration MEDIA]
    vidseg process INPUT [-o OUTPUT] [-o udp://|rtmp://...] [--labels DIR] [--preview] [--ray [ADDRESS]] ...
    vidseg serve CAMERAS.yml [--listen HOST:PORT]
    vidseg info [--model DIR]
    vidseg plot STATS.jsonl -o timeline.png [--classes labels.json]

``process``: ``inputs.sources.open_source`` -> ``outputs.plan.plan_outputs`` (the sinks) -> a stream
(``Segmenter.stream``) -> ``runs.loop.run``, the loop ``Segmenter.process`` runs too; with ``--ray``,
``runs.cluster.job.ClusterJob`` takes the place of the last two. docs/design.md draws the whole way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import vidseg
from convert import options as convert_options
from vidseg.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, VidsegError
from vidseg.files import write_json
from vidseg.home import default_model_dir
from vidseg.model import cpu
from vidseg.model.options import PERFORMANCE_HINTS, PRECISIONS, EngineOptions
from vidseg.outputs.encoder import PRESETS
from vidseg.outputs.network import NetworkSink, is_network_url
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.plan import plan_outputs
from vidseg.outputs.preview.server import DEFAULT_ADDRESS
from vidseg.outputs.sink import Sink
from vidseg.runs import loop
from vidseg.runs.cluster.units import DEFAULT_SEGMENT_FRAMES
from vidseg.runs.reuse import ReusePolicy

if TYPE_CHECKING:
    from vidseg.inputs.sources import Source
    from vidseg.outputs.writer import CollectionWriter, Writer
    from vidseg.runs.stream import Stream
    from vidseg.summary import Summary


MODEL_HELP = ("model directory (default: models/seg_tiny_mask if the current folder has it, else the data "
              "folder's: $VIDSEG_HOME/models or ~/.local/share/vidseg/models)")


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
    p.add_argument("--model", type=Path, help=MODEL_HELP)
    p.add_argument("--device", default="AUTO", help="CPU, GPU, NPU, AUTO... (default AUTO)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    p.add_argument("--stride", type=int, help="window stride in pixels (default: the model's; smaller overlaps)")
    p.add_argument("--nireq", type=int, default=0, help="infer requests (default: OpenVINO's optimum)")
    p.add_argument("--hint", choices=PERFORMANCE_HINTS,
                   help="OpenVINO hint (default THROUGHPUT for files, LATENCY for live)")
    p.add_argument("--precision-hint", choices=PRECISIONS, default="f32",
                   help="CPU arithmetic for non-INT8 layers (default f32, upstream's; bf16 is faster on CPUs "
                        "with AVX512_BF16/AMX but labels drift)")
    p.add_argument("--cpu-streams", type=int, default=0,
                   help="CPU inference streams (default 0: OpenVINO's choice, each stream checked; "
                        "see docs/cli.md: Devices and precision)")
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
                        "exposes the video to that network, see docs/live.md)")
    ru = p.add_argument_group("reuse between frames (an approximation; see docs/reuse.md)")
    ru.add_argument("--reuse", action="store_true",
                    help="video: recompute only the patches that changed since they were last computed")
    ru.add_argument("--reuse-threshold", type=float, default=ReusePolicy.threshold, metavar="LEVELS",
                    help="mean change (0-255) of a patch's 8x8-averaged pixels that makes it recompute "
                         f"(default {ReusePolicy.threshold:g}; lower is closer to exact, slower)")
    ru.add_argument("--reuse-refresh", type=int, default=ReusePolicy.refresh, metavar="FRAMES",
                    help=f"recompute every frame in full at least this often (default {ReusePolicy.refresh})")
    r = p.add_argument_group("cluster (the [ray] extra; see docs/cluster.md)")
    r.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run inference on a Ray cluster: its address (host:port), none for the cluster 'ray "
                        "start' made on this machine, or 'local' for a new one-machine cluster")
    r.add_argument("--ray-cpus", type=int, help="CPUs per Ray task (default: as many as the smallest node has)")
    r.add_argument("--segment-frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                   help=f"split videos at the first keyframe after this many frames (default {DEFAULT_SEGMENT_FRAMES})")

    sv = sub.add_parser("serve", help="many cameras and streams in one process: dashboard, control API, metrics")
    sv.add_argument("config", type=Path, help="YAML file of streams (see docs/serve.md)")
    sv.add_argument("--listen", metavar="HOST:PORT",
                    help="dashboard and API address (default: the file's listen, else 127.0.0.1:8765; beyond "
                         "loopback the control API needs the file's token)")

    c = sub.add_parser("convert", help="checkpoint -> verified OpenVINO model directory")
    convert_options.add_arguments(c)

    i = sub.add_parser("info", help="show devices and a model's metadata")
    i.add_argument("--model", type=Path, help=MODEL_HELP)

    pl = sub.add_parser("plot", help="per-frame class shares (--stats) as a timeline picture (PNG or SVG)")
    pl.add_argument("stats", type=Path, help="JSON lines written by vidseg process --stats")
    pl.add_argument("-o", "--output", type=Path, required=True, help="timeline.png or timeline.svg")
    pl.add_argument("--classes", type=Path, help="labels.json written by --labels, for the class colours "
                    "(default: labels.json beside the stats file if there is one, else the dataset's colours)")
    pl.add_argument("--top", type=int, default=8, help="classes drawn on their own (default 8; the rest: other)")
    pl.add_argument("--input", help="a collection's stats: which input to plot (default the first)")

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
        if args.command == "serve":
            return serve(args)
        return plot_stats(args)
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
    """What only the command line can get wrong: flags that contradict each other or ask for nothing. Each
    value is checked where it is used (``EngineOptions``, ``OverlayOptions``, ``ReusePolicy``...)."""
    if args.max_frames is not None and args.max_frames < 1:
        raise VidsegError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.start is not None and args.start < 0:
        raise VidsegError(f"--start must be >= 0, got {args.start}")
    if args.end is not None and args.end <= (args.start or 0):
        raise VidsegError("--end must be after --start")
    if args.ray is not None:
        for flag, given in (("--max-frames", args.max_frames is not None), ("--preview", args.preview is not None),
                            ("-o URL", bool(args.network))):
            if given:
                raise VidsegError(f"{flag} runs locally only: a cluster run writes files; drop --ray or {flag}")
    if args.output is None and args.labels is None and args.stats is None and args.preview is None \
            and not args.network:
        raise VidsegError("nothing to write: pass -o OUTPUT, --labels DIR, --stats FILE and/or --preview")
    if args.resume and args.output is None and args.labels is None:
        raise VidsegError("--resume needs -o or --labels: it tells finished inputs by their files")


def _split_outputs(args: argparse.Namespace) -> None:
    """``-o`` may be given twice: one file or folder, and network URLs (``args.network``)."""
    targets = args.output or []
    args.network = [t for t in targets if is_network_url(t)]
    for url in args.network:  # an unsupported scheme is refused before anything starts
        NetworkSink.check(url)
    files = [Path(t) for t in targets if not is_network_url(t)]
    if len(files) > 1:
        raise VidsegError(f"-o takes one file or folder (and network URLs), got {', '.join(map(str, files))}")
    args.output = files[0] if files else None


def _live_sinks(args: argparse.Namespace, overlay: OverlayOptions) -> list[Sink]:
    """The preview and the network outputs: they watch the run and never hold it back."""
    sinks: list[Sink] = []
    if args.preview is not None:
        from vidseg.outputs.preview.server import Preview

        preview = Preview(args.preview, title=args.input, alpha=overlay.alpha)
        print(f"vidseg: preview at {preview.url}", file=sys.stderr)
        sinks.append(preview)
    sinks += [NetworkSink(url, overlay) for url in args.network]
    return sinks


def _stream(args: argparse.Namespace, source: Source, engine: EngineOptions, overlay_alpha: float | None,
            skip: Callable[[Path], bool] | None) -> Stream:
    """The run's stream of labelled frames, inferred here by a ``Segmenter``."""
    from vidseg.api import Segmenter

    seg = Segmenter(args.model, **vars(engine))
    if not args.quiet:
        streams = f"{seg.cpu_streams} CPU stream{'s' * (seg.cpu_streams > 1)}, " if seg.cpu_streams else ""
        print(f"vidseg: {engine.device} -> {', '.join(seg.execution_devices)}, {streams}{seg.nireq} requests, "
              f"model {seg.model_info.name} {seg.model_info.precision}", file=sys.stderr)
    # Warnings print even with --quiet: scripted runs are the ones that repeat a slow choice every day.
    note = cpu.advice().warning(seg.model_info.precision, seg.execution_devices)
    if note:
        print(f"vidseg: {note}", file=sys.stderr)
    return seg.stream(source, max_frames=args.max_frames, overlay_alpha=overlay_alpha, skip=skip,
                      reuse=_reuse(args))


def _reuse(args: argparse.Namespace) -> ReusePolicy | None:
    return ReusePolicy(args.reuse_threshold, args.reuse_refresh) if args.reuse else None


def _run_on_cluster(args: argparse.Namespace, source: Source, writer: Writer | CollectionWriter,
                    engine: EngineOptions) -> Summary:
    """``--ray``: the nodes label and write; this process plans, tracks and joins (docs/cluster.md)."""
    from vidseg.runs.cluster.job import cluster_job, stop_on_signals

    job = cluster_job(source, writer, args.ray, args.model, engine, reuse=_reuse(args), cpus_per_task=args.ray_cpus,
                      segment_frames=args.segment_frames, start=args.start, end=args.end, resume=args.resume,
                      progress=not args.quiet)
    if not args.quiet:
        print(f"vidseg: {job.summary.device}", file=sys.stderr)
    with stop_on_signals(job):
        return job.run()


def process(args: argparse.Namespace) -> int:
    from vidseg.inputs.sources import open_source

    _split_outputs(args)
    _check_flags(args)
    args.model = args.model or default_model_dir()
    engine = EngineOptions(args.device, args.hint or "THROUGHPUT", args.nireq, args.stride, args.precision_hint,
                           args.cpu_streams)
    overlay = OverlayOptions(args.alpha, args.crf, args.preset)
    _reuse(args)  # a bad policy is a one-line error before any work
    # The input is opened first: a wrong camera, URL or file is a one-line error before the model compiles.
    source = open_source(args.input, args.recursive, args.start, args.end, args.reconnect_attempts,
                         exclude=[p for p in (args.output, args.labels) if p is not None])
    try:
        writer = plan_outputs(args, source, overlay)
        if args.network and source.kind not in ("video", "stream", "camera"):
            raise VidsegError(f"-o URL streams the overlay of one video, camera or stream, not of {source.kind}")
        if args.hint is None and source.live:
            engine = replace(engine, performance="LATENCY")
        if args.ray is None:
            sinks: list[Sink] = [writer]
            sinks += _live_sinks(args, overlay)
            skip = writer.done if args.resume and source.kind in ("images", "collection") else None
            stream = _stream(args, source, engine, loop.overlay_alpha(sinks), skip)
    except BaseException:
        source.close()
        raise
    if args.ray is None:
        summary = loop.run(stream, sinks, progress=not args.quiet, signals=True)
    else:
        try:  # the driver only plans from the source: it is closed here, never read
            summary = _run_on_cluster(args, source, writer, engine)
        finally:
            source.close()
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


def serve(args: argparse.Namespace) -> int:
    """Runs until SIGTERM or Ctrl-C; SIGHUP re-reads the file and applies only what changed."""
    import signal
    import threading

    from vidseg.service import config as service_config
    from vidseg.service.service import Service, say

    service = Service(service_config.load(args.config), args.listen)
    say(f"dashboard and API at {service.url}")
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    try:
        while not stop.wait(0.2):
            if reload.is_set():
                reload.clear()
                try:
                    say(f"reloaded {args.config}: {service.apply(service_config.load(args.config))}")
                except VidsegError as e:
                    say(f"reload refused, nothing changed: {e}")
    finally:
        say("stopping: closing every recording")
        service.stop()
    return EXIT_OK


def plot_stats(args: argparse.Namespace) -> int:
    from vidseg import plot

    if args.top < 1:
        raise VidsegError(f"--top must be at least 1, got {args.top}")
    timeline = plot.read_stats(args.stats, args.input)
    colors = plot.class_colors(args.classes or args.stats.parent / "labels.json", timeline.names)
    print(f"wrote {plot.plot(timeline, colors, args.output, args.top)}")
    return EXIT_OK


def info(args: argparse.Namespace) -> int:
    import openvino as ov

    from vidseg.model.modeldir import read_model

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
    if args.model is None:
        args.model = default_model_dir()
        if not (args.model / "model.xml").exists():
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
