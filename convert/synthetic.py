"""Official-format Segmenter checkpoints with random weights, for offline tests and benchmarks.

The files are laid out exactly as upstream writes them (``checkpoint.pth`` holding ``{"model": ...}`` and a
``variant.yml`` dumped by ``yaml.dump`` with its ``!!python/tuple``), so the converter is exercised on the real
format. The weights are random: the segmentation is meaningless, the compute is the real model's.

    python -m convert.synthetic OUT_DIR [--variant tiny|deit-linear]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import yaml

from convert.segmenter import Segmenter, SegmenterConfig

VARIANTS = {
    "tiny": dict(d_model=192, n_heads=3, n_layers=12, distilled=False, decoder="mask_transformer",
                 normalization="vit", n_cls=150, dataset="ade20k", backbone="vit_tiny_patch16_384"),
    "deit-linear": dict(d_model=192, n_heads=3, n_layers=4, distilled=True, decoder="linear",
                        normalization="deit", n_cls=150, dataset="ade20k",
                        backbone="deit_tiny_distilled_patch16_224"),
}


def variant_document(name: str, window: int = 512, patch: int = 16, n_layers: int | None = None) -> dict:
    """The ``variant.yml`` content upstream's training script would have written."""
    v = VARIANTS[name]
    layers = n_layers if n_layers is not None else v["n_layers"]
    return {
        "algorithm_kwargs": {"batch_size": 8, "eval_freq": 2, "num_epochs": 64},
        "amp": False,
        "dataset_kwargs": {"batch_size": 8, "crop_size": window, "dataset": v["dataset"],
                           "image_size": window, "normalization": v["normalization"], "split": "train"},
        "inference_kwargs": {"im_size": window, "window_size": window, "window_stride": window},
        "net_kwargs": {
            "backbone": v["backbone"], "d_model": v["d_model"],
            "decoder": {"drop_path_rate": 0.0, "dropout": 0.1, "n_cls": v["n_cls"], "n_layers": 2,
                        "name": v["decoder"]},
            "distilled": v["distilled"], "drop_path_rate": 0.1, "dropout": 0.0,
            "image_size": (window, window), "n_cls": v["n_cls"], "n_heads": v["n_heads"],
            "n_layers": layers, "normalization": v["normalization"], "patch_size": patch,
        },
    }


def random_state(cfg: SegmenterConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights with roughly trained-model scales, deterministic for a seed."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in Segmenter(cfg).state_dict().items():
        if "norm" in name and t.dim() == 1:
            base = 1.0 if name.endswith("weight") else 0.0
            state[name] = base + 0.1 * torch.randn(t.shape, generator=gen)
        else:
            fan_in = math.prod(t.shape[1:]) if t.dim() > 1 else t.numel()
            state[name] = torch.randn(t.shape, generator=gen) / math.sqrt(fan_in)
    return state


def write_checkpoint(out_dir: Path, name: str = "tiny", seed: int = 0, window: int = 512,
                     patch: int = 16, n_layers: int | None = None) -> Path:
    """Write ``checkpoint.pth`` and ``variant.yml`` into ``out_dir``; return the checkpoint path."""
    from convert.checkpoint import load_variant

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "variant.yml").write_text(yaml.dump(variant_document(name, window, patch, n_layers)))
    cfg = load_variant(out_dir / "variant.yml").config
    state = random_state(cfg, seed)
    torch.save({"model": state, "n_cls": cfg.n_cls, "epoch": 0}, out_dir / "checkpoint.pth")
    return out_dir / "checkpoint.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_checkpoint(args.out_dir, args.variant, args.seed))


if __name__ == "__main__":
    main()
