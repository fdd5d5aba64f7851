"""Where vidseg keeps its files: the models it converts and looks for, and what it can fetch or rebuild.

A checkout keeps its models in ``models/`` (``make convert`` puts them there); an installed package has no
checkout, so models also live in a per-user data folder. The default model is looked up in that order.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "seg_tiny_mask"
LOCAL_MODELS = Path("models")  # relative to the current folder


def cache_dir() -> Path:
    """Downloads and compiled-model caches: ``$XDG_CACHE_HOME/vidseg``, by default ``~/.cache/vidseg``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidseg"


def data_dir() -> Path:
    """Converted models: ``$VIDSEG_HOME``, else ``$XDG_DATA_HOME/vidseg``, by default ``~/.local/share/vidseg``."""
    if os.environ.get("VIDSEG_HOME"):
        return Path(os.environ["VIDSEG_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "vidseg"


def models_dir() -> Path:
    """Where ``vidseg convert`` writes by default: ``models/`` when the current folder has one, else the
    data folder's ``models/``."""
    return LOCAL_MODELS if LOCAL_MODELS.is_dir() else data_dir() / "models"


def default_model_dir() -> Path:
    """The model used when none is named: ``models/seg_tiny_mask`` here if it holds a model, else the one
    in the data folder (which may not exist yet: the error then says how to make it)."""
    local = LOCAL_MODELS / DEFAULT_MODEL
    return local if (local / "model.xml").exists() else data_dir() / "models" / DEFAULT_MODEL
