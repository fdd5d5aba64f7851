"""Upstream's evaluation protocol written plainly in PyTorch, as the yardstick for the runtime's labels.

Follows SEGMENTER.md step by step with full-size tensors (slow and memory-hungry by design): rescale with
OpenCV's bilinear resize as upstream's data pipeline does, upsample panoramas whose short side is still
below the window, normalise, cut windows, upsample each window's logits to the window, average on a canvas,
resize to the original size, softmax, argmax.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from convert.segmenter import Segmenter


def window_anchors(length: int, window: int, stride: int) -> list[int]:
    return [a for a in range(0, length, stride) if a < length - window] + [length - window]


def protocol_labels(model: Segmenter, bgr: np.ndarray, short: int, long_cap: int, window: int, stride: int,
                    mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    h, w = bgr.shape[:2]
    s = min(long_cap / max(h, w), short / min(h, w))
    rescaled = cv2.resize(bgr, (int(w * s + 0.5), int(h * s + 0.5)), interpolation=cv2.INTER_LINEAR)
    im = torch.from_numpy(rescaled[:, :, ::-1].copy()).permute(2, 0, 1).float()[None] / 255.0
    im = (im - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    ih, iw = im.shape[2:]
    if min(ih, iw) < window:  # upstream's resize(): short side up to the window
        if ih < iw:
            size = (window, int(iw / ih * window))
        else:
            size = (int(ih / iw * window), window)
        im = F.interpolate(im, size, mode="bilinear", align_corners=False)
    H, W = im.shape[2:]
    canvas = torch.zeros(model.cfg.n_cls, H, W)
    count = torch.zeros(1, H, W)
    with torch.no_grad():
        for y in window_anchors(H, window, stride):
            for x in window_anchors(W, window, stride):
                logits = model(im[:, :, y:y + window, x:x + window])
                up = F.interpolate(logits, (window, window), mode="bilinear", align_corners=False)[0]
                canvas[:, y:y + window, x:x + window] += up
                count[:, y:y + window, x:x + window] += 1
        canvas = F.interpolate((canvas / count)[None], (h, w), mode="bilinear", align_corners=False)[0]
        return F.softmax(canvas, dim=0).argmax(dim=0).numpy().astype(np.uint8)
