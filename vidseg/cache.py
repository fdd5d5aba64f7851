"""Where vidseg keeps what it can fetch or rebuild: downloaded checkpoints and compiled models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vidseg``, by default ``~/.cache/vidseg``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidseg"
