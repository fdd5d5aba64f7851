"""An IR whose right answer is known: each patch's label is the palette colour nearest its mean colour.

Built with OpenVINO's opset API in the model directory format ``vidseg convert`` writes (u8 NHWC BGR in,
patch-grid logits out, metadata in rt_info). Media painted in palette colours then has a known label map,
so end-to-end tests can check channel order, rescaling, window placement, stitching, upsampling and frame
order on real encoded video.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from vidseg.model.modeldir import IR_NAME, METADATA_RT_PATH, ModelInfo

# BGR. Swapping R and B turns red<->blue and yellow<->cyan, so a channel-order bug changes labels.
PALETTE_BGR = np.array([(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0),
                        (255, 255, 255), (0, 0, 0)], dtype=np.float32)
NAMES = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "black"]
WINDOW, PATCH = 512, 16


def build_oracle(model_dir: Path, window: int = WINDOW, stride: int = WINDOW) -> Path:
    x = ops.parameter([-1, window, window, 3], ov.Type.u8, name="image")
    nchw = ops.transpose(ops.convert(x, ov.Type.f32), ops.constant(np.array([0, 3, 1, 2], dtype=np.int64)))
    pooled = ops.avg_pool(nchw, [PATCH, PATCH], [0, 0], [0, 0], [PATCH, PATCH], exclude_pad=True)
    # -|x - p|^2 up to the per-pixel constant |x|^2: 2 p.x - |p|^2 (scaled down to keep logits small).
    scale = 1.0 / 255.0**2
    weights = (2 * PALETTE_BGR * scale)[:, :, None, None]
    bias = (-(PALETTE_BGR**2).sum(axis=1) * scale).reshape(1, -1, 1, 1).astype(np.float32)
    conv = ops.convolution(pooled, ops.constant(weights), [1, 1], [0, 0], [0, 0], [1, 1])
    logits = ops.add(conv, ops.constant(bias))
    logits.output(0).get_tensor().set_names({"logits"})
    model = ov.Model([logits], [x], "oracle")
    info = ModelInfo(
        name="oracle", dataset="oracle", class_names=NAMES,
        class_colors=[(int(c[2]), int(c[1]), int(c[0])) for c in PALETTE_BGR],
        window_size=window, window_stride=stride, short_side=window, long_side_cap=4 * window, patch_size=PATCH,
        normalization={"name": "none", "mean": [0, 0, 0], "std": [1, 1, 1]}, precision="FP32",
    )
    model.set_rt_info(json.dumps(info.to_dict()), METADATA_RT_PATH)
    model_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(model_dir / IR_NAME))
    return model_dir


def paint(labels: np.ndarray) -> np.ndarray:
    """The BGR image whose oracle label map is ``labels``."""
    return PALETTE_BGR.astype(np.uint8)[labels]


def interior(labels: np.ndarray, margin: int) -> np.ndarray:
    """Pixels at least ``margin`` away from any label change (where patch averaging cannot blur)."""
    import cv2

    keep = np.ones(labels.shape, dtype=bool)
    for value in np.unique(labels):
        region = (labels == value).astype(np.uint8)
        eroded = cv2.erode(region, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
        keep &= (region == 0) | (eroded == 1)
    return keep
