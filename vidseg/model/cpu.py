"""What this CPU can do fast, and what follows for the model's precision.

INT8 pays off only where the CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX): without
them OpenVINO emulates them and INT8 ran at 0.59x and 0.77x of FP32 on two AVX2-only AMD EPYC machines
(SEGMENTER.md), while an AVX-512 VNNI machine ran it at ~1.8x. bfloat16 arithmetic is fast with
AVX512_BF16 or AMX, and moves labels away from upstream's (docs/cli.md: Devices and precision).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The instruction sets that decide which precision is fastest.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
             "amx_int8", "amx_tile")
INT8_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))


@dataclass(frozen=True)
class PrecisionAdvice:
    """What the flags say about FP32, INT8 and bf16 here."""

    flags: frozenset[str]

    @property
    def int8_fast(self) -> bool:
        return bool(self.flags & INT8_FLAGS)

    @property
    def bf16_fast(self) -> bool:
        return bool(self.flags & BF16_FLAGS)

    def lines(self) -> list[str]:
        simd = "AVX-512" if "avx512f" in self.flags else "AVX2" if "avx2" in self.flags else "no AVX2"
        int8 = ("INT8: fast here (8-bit dot products: " + ", ".join(sorted(self.flags & INT8_FLAGS)) + ")"
                if self.int8_fast else
                "INT8: likely SLOWER than FP32 here: no VNNI/AMX (measured 0.6-0.8x FP32 on AVX2-only CPUs); "
                "use the FP32 model")
        bf16 = ("bf16: available (--precision-hint bf16: faster, labels drift from upstream's)"
                if self.bf16_fast else "bf16: no hardware support; keep f32")
        return [f"FP32: {simd} kernels", int8, bf16]

    def warning(self, precision: str, execution_devices: list[str]) -> str | None:
        """One line for ``vidseg process`` when an INT8 model is the slower choice on this CPU."""
        if precision.upper() == "INT8" and any(d.startswith("CPU") for d in execution_devices) \
                and self.flags and not self.int8_fast:
            return ("warning: INT8 model on a CPU without VNNI/AMX: INT8 ran at 0.6-0.8x of FP32 on such CPUs; "
                    "the FP32 model is likely faster and closer to upstream here (see 'vidseg info')")
        return None


def advice() -> PrecisionAdvice:
    return PrecisionAdvice(frozenset(cpu_flags()))
