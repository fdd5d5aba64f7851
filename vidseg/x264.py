"""x264 settings for the overlay videos and streams vidseg writes.

The encoder shares two cores with the model, so every millisecond it spends is taken from inference.
vidseg's default, ``overlay``, is x264's ultrafast with CABAC, B-frames, deblocking and 8x8 transforms
turned back on: measured on the 1080p overlay clip of ``make bench`` (one thread, CRF 20, AVX-512 host),
16 ms a frame against superfast's 27 ms, for 1.07x superfast's bytes and 0.25 dB less PSNR (720p: 8 against
12 ms, 1.04x the bytes, 1 dB less); plain ultrafast takes 12 ms for 1.5x the bytes.
"""

from __future__ import annotations

from vidseg.errors import VidsegError

OVERLAY = "cabac=1:deblock=1:8x8dct=1:partitions=i8x8,i4x4"
PRESETS = ("overlay", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


def x264_options(preset: str, crf: int, live: bool = False) -> dict[str, str]:
    """libx264 options, one encoder thread: the model already keeps every core busy, so more threads add
    contention, not speed. ``live``: no B-frames or lookahead (each frame leaves as soon as it is encoded)
    and a keyframe every 60 frames, so a receiver that joins starts within 2 s."""
    if preset not in PRESETS:
        raise VidsegError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    options = {"crf": str(crf), "threads": "1"}
    if preset == "overlay":
        options.update({"preset": "ultrafast", "x264-params": OVERLAY if live else OVERLAY + ":bframes=3"})
    else:
        options["preset"] = preset
    if live:
        options.update({"tune": "zerolatency", "g": "60"})
    return options
