"""The flags of ``vidseg convert``, importable without torch so the runtime CLI can list them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

MIRROR_ENV = "VIDSEG_WEIGHTS_URL"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="catalog checkpoint to download (default: ade20k/seg_tiny_mask)")
    p.add_argument("--checkpoint", type=Path, help="local checkpoint.pth (offline; variant.yml beside it)")
    p.add_argument("--variant", type=Path, help="variant.yml, if not beside the checkpoint")
    p.add_argument("-o", "--output", type=Path,
                   help="model directory to write (default: models/NAME[-int8] if ./models exists, else in the data "
                        "folder: $VIDSEG_HOME/models or ~/.local/share/vidseg/models)")
    p.add_argument("--weights-url", default=os.environ.get(MIRROR_ENV),
                   help=f"base URL of a mirror holding NAME/checkpoint.pth (env {MIRROR_ENV})")
    p.add_argument("--int8", action="store_true", help="quantise to INT8 with NNCF (needs --calibration)")
    p.add_argument("--calibration", type=Path, help="video, image or folder of your footage for --int8")
    p.add_argument("--calibration-frames", type=int, default=60, help="frames to sample (default 60)")
    p.add_argument("--full-resolution-output", action="store_true",
                   help="upstream-style IR with logits upsampled inside (benchmark baseline only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
