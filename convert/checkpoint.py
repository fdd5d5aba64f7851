"""Reading official Segmenter checkpoints safely: ``variant.yml`` and ``checkpoint.pth``.

Both files may come from the internet, so neither is allowed to run code: YAML goes through the safe
loader (taught the one non-standard tag upstream writes, ``!!python/tuple``) and the pickle through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from convert.segmenter import Segmenter, SegmenterConfig
from vidseg.errors import VidsegError

NORMALIZATION = {
    "vit": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    "deit": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}


class _VariantLoader(yaml.SafeLoader):
    """SafeLoader plus ``!!python/tuple``, which ``yaml.dump`` writes for ``image_size``."""


_VariantLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
)


@dataclass(frozen=True)
class Variant:
    """What a ``variant.yml`` says about the network and how upstream runs inference with it."""

    config: SegmenterConfig
    dataset: str
    normalization: str
    short_side: int
    window_size: int
    window_stride: int


def load_variant(path: Path) -> Variant:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise VidsegError(f"variant file not found: {path} (pass --variant FILE)") from None
    except OSError as e:
        raise VidsegError(f"cannot read variant file {path}: {e.strerror}") from None
    try:
        doc = yaml.load(text, Loader=_VariantLoader)  # noqa: S506 - a SafeLoader subclass
        net = doc["net_kwargs"]
        dec = net["decoder"]
        norm = net.get("normalization") or doc.get("dataset_kwargs", {}).get("normalization", "vit")
        inference = doc.get("inference_kwargs", {})
        image_size = tuple(int(v) for v in net["image_size"])
        config = SegmenterConfig(
            image_size=(image_size[0], image_size[1]),
            patch_size=int(net["patch_size"]),
            d_model=int(net["d_model"]),
            n_heads=int(net["n_heads"]),
            n_layers=int(net["n_layers"]),
            n_cls=int(net["n_cls"]),
            distilled=bool(net.get("distilled", False)),
            decoder=str(dec["name"]),
            decoder_layers=int(dec.get("n_layers", 2)),
        )
        window = int(inference.get("window_size", image_size[0]))
        variant = Variant(
            config=config,
            dataset=str(doc.get("dataset_kwargs", {}).get("dataset", "ade20k")),
            normalization=str(norm),
            short_side=int(inference.get("im_size", window)),
            window_size=window,
            window_stride=int(inference.get("window_stride", window)),
        )
    except yaml.YAMLError as e:
        raise VidsegError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise VidsegError(f"{path} is not a Segmenter variant.yml (bad or missing key {e})") from None
    if config.decoder not in ("mask_transformer", "linear"):
        raise VidsegError(f"{path}: unsupported decoder {config.decoder!r} (mask_transformer or linear)")
    if variant.normalization not in NORMALIZATION:
        raise VidsegError(f"{path}: unknown normalization {variant.normalization!r} (vit or deit)")
    return variant


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``model`` tensors of a checkpoint, refusing anything that is not a weights-only pickle."""
    if not path.is_file():
        raise VidsegError(f"checkpoint not found: {path}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - arbitrary bytes make the unpickler raise almost anything
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VidsegError(f"{path} is not a readable PyTorch checkpoint ({reason[:160]})") from None
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VidsegError(f"{path} holds no 'model' state dict of tensors")
    return state


def _short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def build_model(variant: Variant, state: dict[str, torch.Tensor], source: Path) -> Segmenter:
    """Our Segmenter with the checkpoint's weights, loaded strictly so any mismatch is named."""
    model = Segmenter(variant.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected {_short_list(unexpected)}")
        raise VidsegError(f"{source} does not match its variant.yml: {'; '.join(parts)}")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if state[k].shape != v.shape]
    if wrong:
        raise VidsegError(f"{source} does not match its variant.yml: shape {_short_list(wrong, 3)}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()
