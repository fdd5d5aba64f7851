"""Precision advice from the CPU's instruction sets: INT8 is only worth it with 8-bit dot products."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import run_vidseg

from vidseg.model.cpu import PrecisionAdvice, cpu_flags

# Flags lines as two of the project's machine kinds report them (abridged).
AVX2_ONLY = "fpu vme sse4_2 avx f16c fma avx2 bmi2 sha_ni"
AVX512_VNNI = "fpu sse4_2 avx fma avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni"


def advice_for(tmp_path: Path, flags: str) -> PrecisionAdvice:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return PrecisionAdvice(frozenset(cpu_flags(cpuinfo)))


def test_int8_on_an_avx2_only_cpu_gets_one_warning(tmp_path: Path) -> None:
    advice = advice_for(tmp_path, AVX2_ONLY)
    assert not advice.int8_fast and not advice.bf16_fast
    warning = advice.warning("INT8", ["CPU"])
    assert warning is not None and "without VNNI/AMX" in warning
    assert advice.warning("FP32", ["CPU"]) is None
    assert advice.warning("INT8", ["GPU.0"]) is None  # the CPU's instruction sets say nothing about a GPU
    assert any("SLOWER than FP32" in line for line in advice.lines())


def test_vnni_cpu_recommends_int8_and_offers_bf16(tmp_path: Path) -> None:
    advice = advice_for(tmp_path, AVX512_VNNI)
    assert advice.int8_fast and advice.bf16_fast
    assert advice.warning("INT8", ["CPU"]) is None
    assert advice.lines()[0] == "FP32: AVX-512 kernels"


def test_unknown_cpu_gives_no_warning(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == set()
    assert PrecisionAdvice(frozenset()).warning("INT8", ["CPU"]) is None


def test_info_lists_this_cpu_without_a_model(tmp_path: Path) -> None:
    result = run_vidseg("info", cwd=tmp_path)  # no models/ here
    assert result.returncode == 0, result.stderr
    assert "instruction sets:" in result.stdout and "OpenVINO capabilities:" in result.stdout
    assert f"model: none at {os.environ['VIDSEG_HOME']}/models/seg_tiny_mask" in result.stdout
