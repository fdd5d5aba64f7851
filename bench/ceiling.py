"""What a machine is and what its model can do at most: the facts every benchmark row is judged against."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import openvino as ov
import psutil

from vidseg.errors import VidsegError
from vidseg.model.cpu import ISA_FLAGS, cpu_flags


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = cpu_flags()
    return {"cpu": cpu, "cores": psutil.cpu_count(logical=True),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_flags": sorted(flags & set(ISA_FLAGS)), "avx512_vnni": "avx512_vnni" in flags,
            "openvino": ov.get_version(), "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}



# OpenVINO's benchmark_app, started after `import vidseg` so that it sends no telemetry either (its own
# launcher imports OpenVINO first, which reports to Google Analytics: see vidseg/__init__.py).
BENCHMARK_APP = ("import sys, vidseg; from openvino.tools.benchmark.main import main; "
                 "sys.argv[0] = 'benchmark_app'; sys.exit(main())")


def ceiling(model_dir: Path, window: int, batch: int, device: str, seconds: int) -> float:
    """Windows/s by ``benchmark_app`` (it counts batch elements)."""
    cmd = [sys.executable, "-c", BENCHMARK_APP, "-m", str(model_dir / "model.xml"), "-d", device,
           "-hint", "throughput", "-t", str(seconds),
           "-shape", f"[{batch},{window},{window},3]", "-infer_precision", "f32"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    match = re.search(r"Throughput:\s*([\d.]+)\s*FPS", out.stdout)
    if out.returncode != 0 or not match:
        raise VidsegError(f"benchmark_app failed on {model_dir}: {(out.stderr or out.stdout).strip()[-300:]}")
    return round(float(match.group(1)), 2)
