"""The overlay as a video file: every frame's timestamp kept (variable frame rate stays variable), the
input's audio copied, and the file under its final name only when it is finished and playable."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidseg.errors import VidsegError
from vidseg.outputs.encoder import H264Encoder, x264_options
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.sink import Sink, VideoFacts
from vidseg.result import FrameResult

MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}
VIDEO_SUFFIXES = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".m4v": "mp4"}


def audio_copyable(codec: str, fmt: str) -> bool:
    """Whether audio in ``codec`` can be copied as it is into a container of format ``fmt``."""
    return fmt == "matroska" or codec in MP4_AUDIO_CODECS


class VideoFileSink(Sink):
    """H.264 yuv420p in .mp4/.mov/.mkv, muxed into a hidden ``.partial`` file that is closed properly
    (encoder flushed, trailer written) on every way out, then renamed. Opened on the first frame, when the
    displayed size is known. ``keep_partial=False``: an unfinished video is removed instead of kept under its
    name (collections, so that ``--resume`` can tell it apart)."""

    def __init__(self, path: Path, options: OverlayOptions, keep_partial: bool = True):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise VidsegError(f"output video must end in {', '.join(VIDEO_SUFFIXES)}: {path}")
        self.path, self.options, self.keep_partial = path, options, keep_partial
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
        self._facts: VideoFacts | None = None
        self._container: Any = None
        self._encoder: H264Encoder | None = None
        self._audio: Any = None
        self.frames = 0

    def open(self, facts: VideoFacts) -> None:
        self._facts = facts

    def write(self, frame: FrameResult) -> None:
        if self._container is None:
            self._start(self._facts or VideoFacts.of(frame))
        assert self._encoder is not None and self._facts is not None
        for packet in frame.audio:
            self._mux_audio(packet)
        pts = frame.pts
        if pts is None:  # containers without timestamps (some AVI): derive them from the frame rate
            step = 1 / ((self._facts.fps or Fraction(30)) * self._facts.time_base)
            pts = int(self.frames * step)
        self._encoder.encode(self.options.bgr(frame), pts)
        self.frames += 1

    def _start(self, facts: VideoFacts) -> None:
        self._facts = facts
        fmt = VIDEO_SUFFIXES[self.path.suffix.lower()]
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as e:
            raise VidsegError(f"cannot write {self.path}: {getattr(e, 'strerror', None) or e}") from None
        rate = facts.fps if facts.fps and facts.fps > 0 else Fraction(30)
        self._encoder = H264Encoder(self._container, facts.width, facts.height, facts.time_base, rate,
                                    x264_options(self.options.preset, self.options.crf))
        if facts.audio is not None:
            codec = facts.audio.codec_context.name
            if audio_copyable(codec, fmt):
                self._audio = self._container.add_stream_from_template(facts.audio)
            else:
                self.audio_skipped = f"audio codec {codec} cannot be copied into {self.path.suffix}"

    def _mux_audio(self, packet: Any) -> None:
        if self._audio is None or packet.size == 0:
            return
        packet.stream = self._audio
        self._container.mux(packet)

    def close(self, complete: bool = True) -> None:
        """Finish the file and give it its final name, or remove it (no frame, or unfinished and not kept).
        Safe to call on any path out, and more than once."""
        if self._container is None:
            return
        keep = self.frames > 0 and (complete or self.keep_partial)
        try:
            if keep:
                assert self._encoder is not None and self._facts is not None
                if complete:
                    for packet in self._facts.trailing_audio():
                        self._mux_audio(packet)
                self._encoder.flush()
        finally:
            self._container.close()
            self._container = None
        if keep:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
