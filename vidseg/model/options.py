"""How a model is compiled and run, checked in one place for the command line and for Python."""

from __future__ import annotations

from dataclasses import dataclass

from vidseg.errors import VidsegError

PERFORMANCE_HINTS = ("THROUGHPUT", "LATENCY")
PRECISIONS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class EngineOptions:
    """``device``: any OpenVINO device or virtual device (CPU, GPU, NPU, AUTO...). ``performance``:
    OpenVINO's hint, THROUGHPUT for files and batches, LATENCY for a live loop that wants each frame back
    soonest. ``nireq``: infer requests (0: OpenVINO's optimum, at least 2). ``stride``: window stride in
    pixels (None: the model's; smaller overlaps). ``precision``: CPU arithmetic for non-INT8 layers (f32,
    upstream's; bf16/f16 faster, labels drift). ``cpu_streams``: CPU inference streams (0: OpenVINO's
    choice, each stream checked). ``cpu_threads``: CPU threads inference may use (0: every core)."""

    device: str = "AUTO"
    performance: str = "THROUGHPUT"
    nireq: int = 0
    stride: int | None = None
    precision: str = "f32"
    cpu_streams: int = 0
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        if self.performance not in PERFORMANCE_HINTS:
            raise VidsegError(f"performance must be one of {', '.join(PERFORMANCE_HINTS)}, got {self.performance!r}")
        if self.precision not in PRECISIONS:
            raise VidsegError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.stride is not None and self.stride <= 0:
            raise VidsegError(f"stride must be a positive number of pixels, got {self.stride}")
        for name in ("nireq", "cpu_streams", "cpu_threads"):
            if getattr(self, name) < 0:
                raise VidsegError(f"{name} must be 0 (automatic) or more, got {getattr(self, name)}")
