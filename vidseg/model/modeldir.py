"""The model directory that ``vidseg convert`` writes and ``vidseg process`` reads.

    seg_tiny_mask/               (models/ in a checkout, else the data folder: see ``vidseg.home``)
        model.xml, model.bin   OpenVINO IR: u8 NHWC BGR windows in, (N, n_cls, H/ps, W/ps) logits out
        model.onnx             the ONNX graph the IR came from (without the embedded preprocessing)
        model_reuse.xml, .bin  the same weights as a token-reuse model, for --reuse (``vidseg.runs.reuse``)
        model.yml              the metadata below, for people and other tools

The IR's rt_info carries the same metadata as JSON (``vidseg/metadata``); that copy is the one the runtime
trusts, so a model is self-describing even when only the ``.xml``/``.bin`` pair is moved around.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openvino as ov

from vidseg.errors import ModelError, describe

METADATA_RT_PATH = ["vidseg", "metadata"]
IR_NAME = "model.xml"


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know to run a converted Segmenter faithfully.

    >>> info = seg.model_info
    >>> info.window_size, info.n_classes, info.class_names[0], info.class_colors[0]
    (512, 150, 'wall', (120, 120, 120))
    """

    name: str
    dataset: str
    class_names: list[str]
    class_colors: list[tuple[int, int, int]]  # RGB
    window_size: int
    window_stride: int
    short_side: int  # the evaluation protocol rescales the short side to this...
    long_side_cap: int  # ...unless the long side would exceed this
    patch_size: int
    normalization: dict[str, list[float]]
    precision: str  # FP32 or INT8
    full_resolution_output: bool = False  # upstream-style IR: logits already at window size
    source: dict[str, Any] = field(default_factory=dict)
    converter_version: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_colors"] = [list(c) for c in self.class_colors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        d = dict(d)
        d["class_colors"] = [tuple(int(v) for v in c) for c in d["class_colors"]]
        return cls(**d)


def read_model(model_dir: Path, core: ov.Core) -> tuple[ov.Model, ModelInfo]:
    """Load the IR and its metadata, or explain in one line what is wrong with the directory."""
    xml = model_dir / IR_NAME if model_dir.is_dir() else model_dir
    if not xml.exists():
        if not model_dir.exists():
            raise ModelError(
                f"no model at {model_dir}: run 'vidseg convert' (downloads the default checkpoint) or "
                f"'vidseg convert --checkpoint PATH -o {model_dir}' offline, or pass --model DIR")
        raise ModelError(f"{model_dir} is not a vidseg model directory (no {IR_NAME})")
    if not xml.with_suffix(".bin").exists():
        raise ModelError(f"model {xml} is incomplete: {xml.with_suffix('.bin').name} is missing")
    try:  # checked first: on a broken file OpenVINO tries every frontend, and some log noise to stderr
        ElementTree.parse(xml)
    except ElementTree.ParseError as e:
        raise ModelError(f"model {xml} is corrupt: not valid IR XML ({e})") from None
    try:
        model = core.read_model(str(xml))
    except RuntimeError as e:
        raise ModelError(f"model {xml} is corrupt: {describe(e)}") from None
    if not model.has_rt_info(METADATA_RT_PATH):
        raise ModelError(f"model {xml} has no vidseg metadata: convert it with 'vidseg convert'")
    try:
        info = ModelInfo.from_dict(json.loads(model.get_rt_info(METADATA_RT_PATH).astype(str)))
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"model {xml} has unreadable metadata: {e}") from None
    return model, info

