"""H.264 for every video vidseg writes, to a file or to the network: one encoder, one set of x264 settings.

The encoder shares the cores with the model, so every millisecond it spends is taken from inference. The
default preset, ``overlay``, is x264's ultrafast with CABAC, B-frames, deblocking and 8x8 transforms turned
back on: close to superfast's size and quality at a much lower cost (docs/performance.md has the figures).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from vidseg.errors import VidsegError

OVERLAY = "cabac=1:deblock=1:8x8dct=1:partitions=i8x8,i4x4"
PRESETS = ("overlay", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
BT601 = 6  # AVCOL_SPC/PRI/TRC_SMPTE170M
MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited (16-235)


def x264_options(preset: str, crf: int, live: bool = False) -> dict[str, str]:
    """libx264 options, one encoder thread: the model already keeps every core busy, so more threads add
    contention, not speed. ``live``: no B-frames or lookahead (each frame leaves as soon as it is encoded)
    and a keyframe every 60 frames, so a receiver that joins starts within 2 s."""
    if preset not in PRESETS:
        raise VidsegError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if not 0 <= crf <= 51:
        raise VidsegError(f"crf must be between 0 and 51, got {crf}")
    options = {"crf": str(crf), "threads": "1"}
    if preset == "overlay":
        options.update({"preset": "ultrafast", "x264-params": OVERLAY if live else OVERLAY + ":bframes=3"})
    else:
        options["preset"] = preset
    if live:
        options.update({"tune": "zerolatency", "g": "60"})
    return options


class H264Encoder:
    """A yuv420p H.264 stream in an open PyAV container, fed BGR images with their timestamps.

    Odd sizes are padded by one replicated row or column (yuv420p, which browsers require, needs even
    dimensions). Colours are converted by OpenCV (BT.601, limited range), much cheaper than swscale, and the
    stream says so, or players would assume BT.709 for HD and shift the colours. Timestamps are made strictly
    increasing, as the encoder requires."""

    def __init__(self, container: Any, width: int, height: int, time_base: Fraction, rate: Fraction | int,
                 options: dict[str, str]):
        self._container = container
        self._stream = container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = self._stream.codec_context.time_base = time_base
        self._stream.options = options
        cc = self._stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = BT601, BT601, BT601, MPEG_RANGE
        self.time_base = time_base
        self.last_pts: int | None = None

    def encode(self, bgr: np.ndarray, pts: int) -> None:
        if bgr.shape[0] % 2 or bgr.shape[1] % 2:
            bgr = cv2.copyMakeBorder(bgr, 0, bgr.shape[0] % 2, 0, bgr.shape[1] % 2, cv2.BORDER_REPLICATE)
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def flush(self) -> None:
        """Send the frames the encoder still holds (B-frames, lookahead)."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
