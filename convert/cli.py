"""``vidseg convert``: a published or local checkpoint -> a verified, self-describing model directory.

The model directory is assembled in a temporary sibling and renamed into place only after verification
passed, so a failed or interrupted conversion never leaves a directory the runtime would load.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml

import vidseg
from convert import catalog, checkpoint, export, reuse_export, verify
from convert.download import fetch_checkpoint
from convert.segmenter import SegmenterUpsampled
from vidseg.errors import VidsegError
from vidseg.home import cache_dir, models_dir
from vidseg.model import cpu
from vidseg.model.modeldir import IR_NAME, ModelInfo
from vidseg.runs.reuse.model import REUSE_IR_NAME


def run(args: argparse.Namespace) -> int:
    if args.int8 and args.calibration is None:
        raise VidsegError("--int8 needs --calibration VIDEO_OR_DIR (frames like the ones you will process)")
    if args.int8 and args.full_resolution_output:
        raise VidsegError("--int8 and --full-resolution-output cannot be combined")
    if args.calibration is not None and not args.calibration.exists():
        raise VidsegError(f"calibration input not found: {args.calibration}")

    entry = None
    if args.checkpoint is None:
        entry = catalog.lookup(args.name or catalog.default_name(), args.weights_url)
        ckpt = fetch_checkpoint(entry.urls, cache_dir() / "checkpoints" / entry.name, args.quiet)
        source_url = entry.urls[0]
    else:
        ckpt, source_url = args.checkpoint, None
    variant = checkpoint.load_variant(args.variant or ckpt.parent / "variant.yml")
    state = checkpoint.read_state_dict(ckpt)
    model = checkpoint.build_model(variant, state, ckpt)

    name = entry.short_name if entry else ckpt.parent.name
    suffix = "-int8" if args.int8 else ("-fullres" if args.full_resolution_output else "")
    out = args.output or models_dir() / f"{name}{suffix}"
    info = model_info(name, variant, entry, ckpt, source_url, args)

    staging = _staging_dir(out)
    try:
        onnx_path = staging / "model.onnx"
        net = SegmenterUpsampled(model) if args.full_resolution_output else model
        export.export_onnx(net, variant.window_size, onnx_path)
        ir = export.onnx_to_ir(onnx_path, variant.normalization)
        verify.require_parity(verify.check_parity(net, ir, variant.normalization, variant.window_size))
        calibration = []  # frames, read once for the plain IR's and the reuse IR's INT8 calibration
        if args.int8:
            from convert import quantize  # nncf is slow to import; only INT8 needs it

            calibration = quantize.sample_frames(args.calibration, args.calibration_frames)
            ir = _quantize(ir, info, calibration)
        export.attach_metadata(ir, info)
        export.save_ir(ir, staging / IR_NAME)
        if not args.full_resolution_output and reuse_export.supports(model):
            _write_reuse_ir(model, variant, staging, info, calibration)
        (staging / "model.yml").write_text(yaml.safe_dump(info.to_dict(), sort_keys=False))
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {out}/ ({info.precision}, {info.n_classes} classes, window {info.window_size})")
    return 0


def model_info(name: str, variant: checkpoint.Variant, entry: catalog.CatalogEntry | None, ckpt: Path,
               url: str | None, args: argparse.Namespace) -> ModelInfo:
    names, colors = catalog.class_table(variant.dataset, variant.config.n_cls)
    long_cap = entry.long_side_cap if entry else catalog.long_side_cap_for(variant.dataset, variant.short_side)
    stats = checkpoint.NORMALIZATION[variant.normalization]
    return ModelInfo(
        name=name, dataset=variant.dataset, class_names=names, class_colors=colors,
        window_size=variant.window_size, window_stride=variant.window_stride,
        short_side=variant.short_side, long_side_cap=long_cap, patch_size=variant.config.patch_size,
        normalization={"name": variant.normalization, "mean": list(stats["mean"]), "std": list(stats["std"])},
        precision="INT8" if args.int8 else "FP32", full_resolution_output=args.full_resolution_output,
        source={"checkpoint": str(ckpt), "url": url, "sha256": checkpoint.sha256_of(ckpt)},
        converter_version=vidseg.__version__,
    )


def _quantize(ir, info: ModelInfo, frames: list):
    from convert import quantize

    held_out = frames[::5] if len(frames) >= 5 else frames[-1:]
    calibration = [f for i, f in enumerate(frames) if i % 5 or len(frames) < 5]
    print(f"int8: calibrating on {len(calibration)} frames, holding out {len(held_out)}")
    int8 = quantize.quantize(ir, calibration, info)
    report = quantize.label_agreement(ir, int8, held_out, info)
    print(f"int8: label agreement with FP32 on {report.frames} held-out frames: "
          f"mean {report.mean:.2%}, worst {report.worst:.2%}")
    speed = quantize.window_speed(ir, int8, info)
    print(speed.verdict("this CPU has no VNNI/AMX 8-bit dot products (see 'vidseg info')"
                        if not cpu.advice().int8_fast else "unexpected with VNNI/AMX: was the machine busy?"))
    return int8


def _write_reuse_ir(model, variant: checkpoint.Variant, staging: Path, info: ModelInfo,
                    calibration: list) -> None:
    """The token-reuse IR beside the plain one (``vidseg process --reuse``), checked to compute the plain
    model exactly when given every token; quantised like the plain one when there are INT8 calibration
    frames."""
    onnx_path = staging / "model_reuse.onnx"
    reuse_export.export_reuse_onnx(model, variant.window_size, onnx_path)
    ir = reuse_export.reuse_ir(onnx_path, variant.normalization)
    diff = reuse_export.check_full_recompute(model, ir, variant.window_size, variant.normalization)
    if diff > 1e-3:
        raise VidsegError(f"token-reuse IR differs from PyTorch by {diff:.2e} with every token computed")
    print(f"verify: token-reuse IR with every token vs PyTorch max |logit diff| {diff:.2e}")
    onnx_path.unlink()
    if calibration:
        from convert import quantize

        ir = quantize.quantize_reuse(ir, calibration[:8], info)
    export.attach_metadata(ir, info)
    export.save_ir(ir, staging / REUSE_IR_NAME)


def _staging_dir(out: Path) -> Path:
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise VidsegError(f"cannot write output directory {out}: {e.strerror}") from None


def _publish(staging: Path, out: Path) -> None:
    """Swap the finished directory into place; an existing model is replaced only once the new one is whole."""
    old = None
    if out.exists():
        if not (out / IR_NAME).exists() and any(out.iterdir()):
            raise VidsegError(f"{out} exists and is not a model directory; choose another -o")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.chmod(0o755)  # mkdtemp makes it private; a model directory is for everyone
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
