"""The token-reuse variant of a Segmenter window model, for ``vidseg process --reuse``.

Consecutive video frames differ in a few percent of their 16x16 patches. This model recomputes only the
tokens it is given (``tokens``: sorted indices into the encoder's sequence, the class token 0 first) and
takes the rest from the state of the previous run of the same window: every block's keys and values for
all rows, encoder and decoder, and the decoder's output for every patch. Selected rows attend to all keys
(fresh ones for themselves, cached ones for the rest); unselected rows keep their cached output. The
decoder's 150 class rows attend to every patch and are always recomputed. Given every token it computes
the plain model exactly, and it returns the state for the next run.


Inputs: ``image`` (the converter's u8 NHWC BGR window), ``tokens`` (M,) int64 and the state: ``kv0``..
``kv11`` (2, H, N+1, D) per encoder block, ``dec_kv0``, ``dec_kv1`` (2, H, N+150, D) per decoder block,
``dec_x`` (N, d), all f32. Outputs: ``logits`` as the plain IR, then the next state, each input's name
with ``_out``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import openvino as ov
import torch
import torch.nn.functional as F
from torch import nn

from convert.export import embed_preprocessing
from convert.segmenter import Segmenter


def supports(segmenter: Segmenter) -> bool:
    """Token reuse is built for the mask-transformer decoder of the published Segmenters (no dist token)."""
    return segmenter.cfg.decoder == "mask_transformer" and not segmenter.cfg.distilled


class ReuseSegmenter(nn.Module):
    """The plain Segmenter's weights, evaluated only at the given token rows (and the class rows)."""

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        if not supports(segmenter):
            raise ValueError("token reuse is implemented for mask-transformer Segmenters without a dist token")
        self.seg = segmenter

    def forward(self, im: torch.Tensor, tokens: torch.Tensor, *state: torch.Tensor):
        enc, dec = self.seg.encoder, self.seg.decoder
        n_enc = len(enc.blocks)
        kv, dec_kv, dec_x = state[:n_enc], state[n_enc:-1], state[-1]
        grid = (im.shape[2] // enc.patch_size, im.shape[3] // enc.patch_size)
        seq = torch.cat([enc.cls_token, enc.patch_embed(im)], dim=1) + enc.position_embedding(grid)
        h, kv_out = _blocks(enc.blocks, seq[0].index_select(0, tokens), tokens, kv)
        patches = tokens[1:] - 1  # tokens[0] is the class token, which the decoder does not see
        n_patches = dec_x.shape[0]
        rows = torch.cat([patches, n_patches + torch.arange(dec.n_cls)])
        h = torch.cat([dec.proj_dec(enc.norm(h[1:])), dec.cls_emb[0]])
        h, dec_kv_out = _blocks(dec.blocks, h, rows, dec_kv)
        dec_x_out = dec_x.index_copy(0, patches, h[:-dec.n_cls])
        x = dec.decoder_norm(torch.cat([dec_x_out, h[-dec.n_cls:]]))
        masks = F.normalize(x[:n_patches] @ dec.proj_patch, dim=-1) @ F.normalize(
            x[n_patches:] @ dec.proj_classes, dim=-1).transpose(0, 1)
        logits = dec.mask_norm(masks).transpose(0, 1).reshape(1, dec.n_cls, grid[0], grid[1])
        return (logits, *kv_out, *dec_kv_out, dec_x_out)


def _blocks(blocks: nn.ModuleList, h: torch.Tensor, rows: torch.Tensor, kv: tuple[torch.Tensor, ...]):
    """Transformer blocks on the rows ``rows`` of a sequence whose other rows' keys and values are ``kv``
    (one (2, H, N, D) tensor per block: separate tensors, because slicing one big one costs a copy each)."""
    kv_new = []
    for block, kv_layer in zip(blocks, kv):
        attn = block.attn
        heads, dim = attn.heads, h.shape[-1]
        qkv = attn.qkv(block.norm1(h)).reshape(-1, 3, heads, dim // heads).permute(1, 2, 0, 3)
        kv_layer = kv_layer.index_copy(2, rows, qkv[1:])  # fresh rows replace the cached ones
        kv_new.append(kv_layer)
        weights = ((qkv[0] @ kv_layer[0].transpose(-2, -1)) * attn.scale).softmax(dim=-1)
        h = h + attn.proj((weights @ kv_layer[1]).transpose(0, 1).reshape(-1, dim))
        h = h + block.mlp(block.norm2(h))
    return h, kv_new


def state_shapes(segmenter: Segmenter, window: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the state inputs for a window size, in the model's input order."""
    cfg = segmenter.cfg
    n = (window // cfg.patch_size) ** 2
    shapes = {f"kv{i}": (2, cfg.n_heads, n + 1, cfg.d_model // cfg.n_heads) for i in range(cfg.n_layers)}
    shapes |= {f"dec_kv{i}": (2, cfg.d_model // 64, n + cfg.n_cls, 64) for i in range(cfg.decoder_layers)}
    return shapes | {"dec_x": (n, cfg.d_model)}


def export_reuse_onnx(segmenter: Segmenter, window: int, path: Path) -> None:
    """Trace with a dynamic token count; everything else is static."""
    net = ReuseSegmenter(segmenter).eval()
    shapes = state_shapes(segmenter, window)
    n = shapes["kv0"][2]
    example = (torch.zeros(1, 3, window, window), torch.arange(n), *(torch.zeros(s) for s in shapes.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, example, str(path), input_names=["image", "tokens", *shapes],
            output_names=["logits", *(f"{name}_out" for name in shapes)], dynamic_axes={"tokens": {0: "selected"}},
            opset_version=17, dynamo=False,
        )


def reuse_ir(onnx_path: Path, normalization: str) -> ov.Model:
    onnx_model = ov.convert_model(str(onnx_path))
    names = [[p.get_any_name() for p in ports] for ports in (onnx_model.inputs, onnx_model.outputs)]
    model = embed_preprocessing(onnx_model, normalization)
    for ports, port_names in zip((model.inputs, model.outputs), names):
        for port, name in zip(ports, port_names):
            port.get_tensor().set_names({name})
    return model


def check_full_recompute(segmenter: Segmenter, ir: ov.Model, window: int, normalization: str) -> float:
    """Max |logit difference| between the plain PyTorch model and this IR given every token, on a real-
    looking window (a smooth gradient with edges); the converter requires it to be tiny."""
    import numpy as np

    from convert.checkpoint import NORMALIZATION

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:window, 0:window]
    image = np.stack([(xx * 255 // window), (yy * 255 // window), ((xx // 64 + yy // 64) % 2) * 200], -1)
    image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
    stats = NORMALIZATION[normalization]
    rgb = torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    mean, std = torch.tensor(stats["mean"]).view(1, 3, 1, 1), torch.tensor(stats["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = segmenter.eval()((rgb - mean) / std).numpy()
    shapes = state_shapes(segmenter, window)
    compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    state = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    got = compiled({"image": image[None], "tokens": np.arange(shapes["kv0"][2]), **state})[0]
    return float(np.abs(got - expected).max())
