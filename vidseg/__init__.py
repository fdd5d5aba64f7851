"""vidseg: semantic segmentation of video and image batches with Segmenter on OpenVINO."""

import os

# OpenVINO already keeps every core busy; numpy's BLAS threads would only fight it for the same cores
# (the stitcher's small matrix products run 3x slower with them). Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
