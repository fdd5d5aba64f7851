"""Segmenter (ViT encoder + mask-transformer or linear decoder) in plain PyTorch.

Written from the published architecture rather than on top of timm: timm pulls in torchvision, which
replaces the pinned CPU torch with a multi-gigabyte CUDA build. Parameter names mirror the official
checkpoints so that ``load_state_dict(strict=True)`` proves the architecture matches.

``forward`` returns logits at patch-grid resolution (N, n_cls, H/ps, W/ps). The upstream model upsamples
them to the window size inside ``forward``; that is ``SegmenterUpsampled``, kept only as a benchmark baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class SegmenterConfig:
    """The architecture hyper-parameters that ``variant.yml`` describes."""

    image_size: tuple[int, int]
    patch_size: int
    d_model: int
    n_heads: int
    n_layers: int
    n_cls: int
    distilled: bool
    decoder: str  # "mask_transformer" or "linear"
    decoder_layers: int = 2

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # Explicit matmul/softmax rather than scaled_dot_product_attention: it exports to plain ONNX
        # ops that every OpenVINO version and NNCF's transformer patterns recognise.
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as upstream


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbedding(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        return self.proj(im).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        d = cfg.d_model
        self.patch_size = cfg.patch_size
        self.distilled = cfg.distilled
        self.stored_grid = cfg.grid
        self.patch_embed = PatchEmbedding(cfg.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
            self.head_dist = nn.Linear(d, 1000)
        n_extra = 2 if cfg.distilled else 1
        self.pos_embed = nn.Parameter(torch.zeros(1, n_extra + self.stored_grid[0] * self.stored_grid[1], d))
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, 4 * d) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(d, 1000)  # ImageNet head: present in checkpoints, unused for segmentation

    @property
    def n_extra_tokens(self) -> int:
        return 2 if self.distilled else 1

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The stored embedding, bilinearly resized when the window's patch grid differs from training."""
        if grid == self.stored_grid:
            return self.pos_embed
        extra = self.pos_embed[:, : self.n_extra_tokens]
        patches = self.pos_embed[:, self.n_extra_tokens :]
        gh, gw = self.stored_grid
        patches = patches.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=grid, mode="bilinear", align_corners=False)
        return torch.cat([extra, patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        b, _, h, w = im.shape
        x = self.patch_embed(im)
        tokens = [self.cls_token.expand(b, -1, -1)]
        if self.distilled:
            tokens.append(self.dist_token.expand(b, -1, -1))
        x = torch.cat(tokens + [x], dim=1)
        x = x + self.position_embedding((h // self.patch_size, w // self.patch_size))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class LinearDecoder(nn.Module):
    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.n_cls = cfg.n_cls
        self.head = nn.Linear(cfg.d_model, cfg.n_cls)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = self.head(x)
        return x.transpose(1, 2).reshape(x.shape[0], self.n_cls, grid[0], grid[1])


class MaskTransformer(nn.Module):
    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        d = cfg.d_model
        self.n_cls = cfg.n_cls
        self.scale = d**-0.5
        self.proj_dec = nn.Linear(d, d)
        self.cls_emb = nn.Parameter(torch.zeros(1, cfg.n_cls, d))
        self.blocks = nn.ModuleList(Block(d, d // 64, 4 * d) for _ in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.proj_patch = nn.Parameter(self.scale * torch.randn(d, d))
        self.proj_classes = nn.Parameter(self.scale * torch.randn(d, d))
        self.mask_norm = nn.LayerNorm(cfg.n_cls, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = self.proj_dec(x)
        x = torch.cat([x, self.cls_emb.expand(x.shape[0], -1, -1)], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches, classes = x[:, : -self.n_cls], x[:, -self.n_cls :]
        patches = F.normalize(patches @ self.proj_patch, dim=-1)
        classes = F.normalize(classes @ self.proj_classes, dim=-1)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))
        return masks.transpose(1, 2).reshape(x.shape[0], self.n_cls, grid[0], grid[1])


class Segmenter(nn.Module):
    """Image batch (N, 3, H, W), normalised RGB -> logits (N, n_cls, H/ps, W/ps)."""

    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = VisionTransformer(cfg)
        self.decoder = MaskTransformer(cfg) if cfg.decoder == "mask_transformer" else LinearDecoder(cfg)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        ps = self.cfg.patch_size
        grid = (im.shape[2] // ps, im.shape[3] // ps)
        x = self.encoder(im)[:, self.encoder.n_extra_tokens :]
        return self.decoder(x, grid)


class SegmenterUpsampled(nn.Module):
    """The upstream/notebook export: logits upsampled to the window inside the model (benchmark baseline)."""

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        self.segmenter = segmenter

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.segmenter(im), size=im.shape[2:], mode="bilinear", align_corners=False)

