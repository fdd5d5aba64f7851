"""vidseg: semantic segmentation of video and image batches with Segmenter on OpenVINO.

    import vidseg
    with vidseg.Segmenter("models/seg_tiny_mask", device="AUTO") as seg:
        result = seg(image)                      # labels, fractions(), mask("person"), overlay(image)
        for frame in seg.stream("input.mp4"):    # files, folders, globs, cameras, URLs, arrays
            ...

The names below are the public API (``__all__``); everything else in the package may change. They load
on first use, so ``import vidseg`` alone does not pull in OpenVINO, OpenCV or PyAV.
"""

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

# OpenVINO already keeps every core busy; numpy's BLAS threads would only fight it for the same cores
# (the stitcher's small matrix products run 3x slower with them). Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# OpenVINO's pip package reports every `import openvino` to Google Analytics unless the user has opted out
# (openvino_telemetry, loaded by its model converter; NNCF uses it too): a client ID in ~/intel and a forked
# process per run, which exit waits for (its code allows 3 s). vidseg
# touches no network at run time, so OpenVINO and NNCF get the stub they fall back to without the package.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[assignment]

from vidseg.errors import DeviceError, ImageError, InputError, ModelError, VidsegError  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "Segmenter": "vidseg.api",
    "Stream": "vidseg.runs.stream",
    "Result": "vidseg.result",
    "FrameResult": "vidseg.result",
    "Writer": "vidseg.outputs.writer",
    "Summary": "vidseg.summary",
    "ModelInfo": "vidseg.model.modeldir",
}

__all__ = ["Segmenter", "Stream", "Result", "FrameResult", "Writer", "Summary", "ModelInfo", "VidsegError",
           "ModelError", "DeviceError", "InputError", "ImageError", "__version__"]

if TYPE_CHECKING:
    from vidseg.api import Segmenter
    from vidseg.model.modeldir import ModelInfo
    from vidseg.outputs.writer import Writer
    from vidseg.result import FrameResult, Result
    from vidseg.runs.stream import Stream
    from vidseg.summary import Summary


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
