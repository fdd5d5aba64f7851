"""Where results go: overlay video, overlay images, label PNGs, per-frame stats.

Every file appears under its final name only when complete: images and JSON are written to a temporary
name and renamed, and the video is muxed into a temporary file that is closed properly (encoder flushed,
trailer written) on success, error and interrupt alike before it is renamed. A run that dies leaves
only valid files and, at worst, a ``.partial`` file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np
from PIL import Image

from vidseg.errors import VidsegError
from vidseg.render import Palette
from vidseg.x264 import x264_options

MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}
BT601 = 6  # AVCOL_SPC/PRI/TRC_SMPTE170M
MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited (16-235)
VIDEO_SUFFIXES = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".m4v": "mp4"}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling to write to; renamed over ``path`` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_label_png(path: Path, labels: np.ndarray, palette: Palette) -> None:
    """8-bit palette PNG: pixel value = class id, the dataset's colours as the palette."""
    image = Image.fromarray(labels)
    image.putpalette(palette.rgb.tobytes())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)


def write_image(path: Path, bgr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(path.suffix or ".png", bgr)
        if not ok:
            raise VidsegError(f"cannot encode {path}")
        tmp.write_bytes(data.tobytes())


def labels_json(class_names: list[str], palette: Palette) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "color": [int(c) for c in palette.rgb[i]]} for i, n in enumerate(class_names)]


class VideoSink:
    """H.264 yuv420p overlay video that keeps every frame's timestamp and copies the audio track.

    Opened on the first frame, when the displayed frame size is known. Odd sizes are padded by one
    replicated row or column: yuv420p, which browsers require, needs even dimensions.
    """

    def __init__(self, path: Path, time_base: Fraction, fps: Fraction | None, crf: int, preset: str,
                 audio: Any = None):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise VidsegError(f"output video must end in {', '.join(VIDEO_SUFFIXES)}: {path}")
        self.path, self.time_base, self.fps = path, time_base, fps
        self.crf, self.preset = crf, preset
        self.audio_template = audio
        self.audio_skipped: str | None = None
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._last_pts: int | None = None
        self.frames = 0

    def _open(self, width: int, height: int) -> None:
        fmt = VIDEO_SUFFIXES[self.path.suffix.lower()]
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as e:
            raise VidsegError(f"cannot write {self.path}: {getattr(e, 'strerror', None) or e}") from None
        rate = self.fps if self.fps and self.fps > 0 else Fraction(30)
        self._video = self._container.add_stream("libx264", rate=rate)
        self._video.width, self._video.height = width + width % 2, height + height % 2
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = self.time_base
        self._video.codec_context.time_base = self.time_base
        self._video.options = x264_options(self.preset, self.crf)
        # Frames are converted by OpenCV (BT.601, limited range: 0.6 ms at 1080p where swscale takes 11 ms);
        # say so in the stream, or players assume BT.709 for HD and shift the colours.
        cc = self._video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = BT601, BT601, BT601, MPEG_RANGE
        if self.audio_template is not None:
            codec = self.audio_template.codec_context.name
            if fmt == "matroska" or codec in MP4_AUDIO_CODECS:
                self._audio = self._container.add_stream_from_template(self.audio_template)
            else:
                self.audio_skipped = f"audio codec {codec} cannot be copied into {self.path.suffix}"

    def write(self, image: np.ndarray, pts: int | None, audio_packets: list[Any]) -> None:
        if self._container is None:
            self._open(image.shape[1], image.shape[0])
        for packet in audio_packets:
            self.mux_audio(packet)
        if image.shape[0] % 2 or image.shape[1] % 2:
            image = cv2.copyMakeBorder(image, 0, image.shape[0] % 2, 0, image.shape[1] % 2, cv2.BORDER_REPLICATE)
        if pts is None:  # containers without timestamps (some AVI): derive them from the frame rate
            step = 1 / ((self.fps or Fraction(30)) * self.time_base)
            pts = int(self.frames * step)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # the encoder needs strictly increasing timestamps
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def mux_audio(self, packet: Any) -> None:
        if self._audio is None or packet.size == 0:
            return
        packet.stream = self._audio
        self._container.mux(packet)

    def close(self) -> None:
        """Flush and finish the file, then give it its final name. Safe to call on any path out."""
        if self._container is None:
            return
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
        os.replace(self._tmp, self.path)

    def abandon(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)


class StatsSink:
    """Per-frame class pixel fractions as JSON lines, flushed line by line."""

    def __init__(self, path: Path, append: bool = False):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file: IO[str] = path.open("a" if append else "w")
        except OSError as e:
            raise VidsegError(f"cannot write {path}: {e.strerror}") from None

    def write(self, record: dict[str, Any], fractions: dict[str, float]) -> None:
        record["classes"] = fractions
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise VidsegError(f"cannot write {self.path}: {e.strerror}") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # the write that failed already reported it
            pass
