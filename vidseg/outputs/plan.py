"""Where ``vidseg process`` writes, decided and checked before any work starts.

Every path problem (an output that would overwrite an input, a folder that cannot be created, two inputs
of a collection that would write the same file, the wrong kind of output for the input) is a one-line
error here, before the model compiles, rather than a failure half-way through a long run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidseg.errors import VidsegError
from vidseg.inputs.images import IMAGE_SUFFIXES
from vidseg.inputs.sources import CollectionSource, Source
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.video import VIDEO_SUFFIXES
from vidseg.outputs.writer import CollectionWriter, Writer


def _writable_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidsegError(f"cannot create {what} {path}: {e.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise VidsegError(f"cannot write to {what} {path}")
    return path


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def plan_outputs(args: argparse.Namespace, source: Source, overlay: OverlayOptions) -> Writer | CollectionWriter:
    """The file outputs ``vidseg process`` flags ask for, every path checked before any work starts."""
    if isinstance(source, CollectionSource):
        return _plan_collection(args, source, overlay)
    return _plan_single(args, source.kind, None if source.live else Path(args.input), overlay)


def _plan_collection(args: argparse.Namespace, source: CollectionSource, overlay: OverlayOptions) -> CollectionWriter:
    """Folders for a collection's outputs, checked before any work starts: no two inputs may share one."""
    if args.output is not None and args.output.suffix.lower() in VIDEO_SUFFIXES:
        raise VidsegError(f"for a collection of videos -o is a folder (one overlay per video), not {args.output}")
    for flag, folder in (("-o", args.output), ("--labels", args.labels)):
        if folder is not None and any(Path(e.spec).is_file() and _same(Path(e.spec).parent, folder)
                                      for e in source.entries):
            raise VidsegError(f"{flag} must not be an input folder: outputs would mix with the inputs")
    writer = CollectionWriter(videos=_writable_dir(args.output, "output folder") if args.output else None,
                              labels=_writable_dir(args.labels, "labels folder") if args.labels else None,
                              stats=args.stats, alpha=overlay.alpha, crf=overlay.crf, preset=overlay.preset,
                              append_stats=args.resume)
    claimed: dict[Path, str] = {}
    for e in source.entries:
        outputs = [e.name.with_suffix(".png")] if e.is_image else [p for p in writer.video_outputs(e.name) if p]
        for out in outputs:
            if out in claimed:
                raise VidsegError(f"{claimed[out]} and {e.name} would both write {out}: rename one of them")
            claimed[out] = str(e.name)
    for path in (args.stats, args.summary):
        if path is not None:
            _writable_dir(path.parent, "output folder")
    return writer


def _plan_single(args: argparse.Namespace, source_kind: str, input_path: Path | None,
                 overlay: OverlayOptions) -> Writer:
    """A ``Writer`` for what the flags ask, after checking every path before any work starts."""
    video = images = image = labels = None
    if args.output is not None:
        suffix = args.output.suffix.lower()
        if input_path is not None and input_path.exists() and _same(args.output, input_path):
            raise VidsegError(f"output {args.output} would overwrite the input")
        if source_kind == "images":
            if input_path is not None and input_path.is_file() and suffix in IMAGE_SUFFIXES:
                _writable_dir(args.output.parent, "output folder")
                image = args.output
            elif suffix in VIDEO_SUFFIXES:
                raise VidsegError(f"for image inputs -o is a folder of overlay images, not {args.output}")
            else:
                if input_path is not None and input_path.is_dir() and _same(args.output, input_path):
                    raise VidsegError("-o must not be the input folder: overlays would overwrite the images")
                images = _writable_dir(args.output, "output folder")
        else:
            if suffix not in VIDEO_SUFFIXES:
                raise VidsegError(f"for video inputs -o must be a video file ({', '.join(VIDEO_SUFFIXES)}), "
                                  f"got {args.output}")
            if args.output.is_dir():
                raise VidsegError(f"output {args.output} is a folder")
            _writable_dir(args.output.parent, "output folder")
            video = args.output
    if args.labels is not None:
        if input_path is not None and input_path.is_dir() and _same(args.labels, input_path):
            raise VidsegError("--labels must not be the input folder: label PNGs would overwrite the images")
        labels = _writable_dir(args.labels, "labels folder")
    if args.stats is not None:
        _writable_dir(args.stats.parent, "stats folder")
    if args.summary is not None:
        _writable_dir(args.summary.parent, "summary folder")
    return Writer(video=video, images=images, image=image, labels=labels, stats=args.stats, alpha=overlay.alpha,
                  crf=overlay.crf, preset=overlay.preset, append_stats=args.resume)
