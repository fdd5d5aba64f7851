"""A converted official-format checkpoint gives upstream's labels on real photographs of every shape."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_vidseg
from PIL import Image
from reference import protocol_labels

from convert.checkpoint import build_model, load_variant, read_state_dict

SHAPES = {
    "landscape": ("building.jpg", None),  # 868x600
    "portrait": ("aloeL.jpg", (400, 520)),
    "small-upscaled": ("baboon.jpg", (90, 70)),
    "panorama": ("leuvenA.jpg", (751, 120)),  # short side upsampled again to the window
    "wide-panorama": ("leuvenA.jpg", (5000, 500)),  # long side capped, then the short side upsampled again
    "square": ("fruits.jpg", (512, 512)),
}
# Upstream's second upsampling of a panorama works on floats; vidseg matches it with a float-input IR.
THRESHOLD = {"panorama": 0.999, "wide-panorama": 0.999}


@pytest.fixture(scope="module")
def torch_model(tiny_checkpoint: Path):
    variant = load_variant(tiny_checkpoint.parent / "variant.yml")
    return build_model(variant, read_state_dict(tiny_checkpoint), tiny_checkpoint)


@pytest.mark.parametrize("shape", SHAPES)
def test_labels_agree_with_upstream_protocol(tmp_path: Path, media: Path, tiny_model: Path, torch_model,
                                             shape: str) -> None:
    name, size = SHAPES[shape]
    image = cv2.imread(str(media / name))
    if size is not None:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    result = run_vidseg("process", tmp_path / "photo.png", "--model", tiny_model, "--labels", tmp_path / "labels",
                        "--device", "CPU", "--quiet")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "labels" / "photo.png") as im:
        got = np.asarray(im)
    expected = protocol_labels(torch_model, image, 512, 2048, 512, 512, (0.5,) * 3, (0.5,) * 3)
    agreement = (got == expected).mean()
    threshold = THRESHOLD.get(shape, 0.995)
    assert agreement >= threshold, f"{shape}: {agreement:.4%} of pixels agree with the upstream protocol"
