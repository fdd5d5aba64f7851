"""PyTorch Segmenter -> ONNX -> OpenVINO IR with the preprocessing built in.

The IR takes what OpenCV decodes (u8, NHWC, BGR) and does the colour conversion and normalisation itself,
so the runtime never touches pixel values. It returns window logits at patch-grid resolution: the upstream
upsampling to the full window costs about 30% of the model's time and 150 MiB of output per window, and the
runtime does it once per frame after stitching instead.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import openvino as ov
import torch
from openvino.preprocess import ColorFormat, PrePostProcessor

from convert.checkpoint import NORMALIZATION
from vidseg.model.modeldir import METADATA_RT_PATH, ModelInfo


def export_onnx(net: torch.nn.Module, window: int, path: Path) -> None:
    """Trace to ONNX with a dynamic batch axis and a static window."""
    example = torch.zeros(1, 3, window, window)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but exports this plain ViT graph to standard ops
        # without onnxscript; the trace warnings concern shapes that are static by design.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (example,), str(path), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )


def embed_preprocessing(model: ov.Model, normalization: str) -> ov.Model:
    """u8 NHWC BGR in, normalised f32 NCHW RGB inside: one less pass over every pixel in Python."""
    stats = NORMALIZATION[normalization]
    ppp = PrePostProcessor(model)
    ppp.input(0).tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.BGR)
    ppp.input(0).model().set_layout(ov.Layout("NCHW"))
    ppp.input(0).preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).mean(
        [255.0 * m for m in stats["mean"]]).scale([255.0 * s for s in stats["std"]])
    ppp.output(0).tensor().set_element_type(ov.Type.f32)
    return ppp.build()


def onnx_to_ir(onnx_path: Path, normalization: str) -> ov.Model:
    model = ov.convert_model(str(onnx_path))
    model = embed_preprocessing(model, normalization)
    model.inputs[0].get_tensor().set_names({"image"})
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def attach_metadata(model: ov.Model, info: ModelInfo) -> None:
    """Store the metadata in the IR itself so an ``.xml`` copied alone still describes itself."""
    model.set_rt_info(json.dumps(info.to_dict()), METADATA_RT_PATH)
    model.set_rt_info("segmentation", ["model_info", "model_type"])


def save_ir(model: ov.Model, xml_path: Path, compress_to_fp16: bool = False) -> None:
    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)
