"""The converter (``vidseg convert``): official checkpoint -> our PyTorch model -> ONNX -> OpenVINO IR.

It imports vidseg first so that vidseg's process settings (no OpenVINO or NNCF telemetry, one BLAS thread)
hold before torch, OpenVINO or NNCF load, also when a converter module is the first one a program imports.
"""

import vidseg  # noqa: F401
