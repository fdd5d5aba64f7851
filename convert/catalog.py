"""The catalog of published checkpoints (``vidseg/configs/catalog.yml``) and the class tables beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

import vidseg
from vidseg.errors import VidsegError
from vidseg.model import classes

CONFIGS = Path(vidseg.__file__).parent / "configs"


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # e.g. "ade20k/seg_tiny_mask"
    dataset: str
    window: int
    stride: int
    short_side: int
    long_side_cap: int
    urls: tuple[str, ...]  # base URLs of the directory holding checkpoint.pth and variant.yml

    @property
    def short_name(self) -> str:
        return self.name.split("/")[-1]


def _load() -> dict:
    return yaml.safe_load((CONFIGS / "catalog.yml").read_text())


def default_name() -> str:
    return _load()["default"]


def lookup(name: str, mirror: str | None = None) -> CatalogEntry:
    """The catalog entry for ``name``; ``mirror`` (a base URL) is tried before the catalog's own hosts."""
    doc = _load()
    models = doc["models"]
    if name not in models:
        matches = [m for m in models if m.split("/")[-1] == name]
        if len(matches) != 1:
            raise VidsegError(f"unknown checkpoint {name!r}; known: {', '.join(models)}")
        name = matches[0]
    m = models[name]
    bases = [mirror] if mirror else []
    bases += [doc["mirrors"][k] for k in m["mirrors"]]
    return CatalogEntry(name, m["dataset"], m["window"], m["stride"], m["short_side"], m["long_side_cap"],
                        tuple(f"{b.rstrip('/')}/{name}" for b in bases))


def long_side_cap_for(dataset: str, short_side: int) -> int:
    """The protocol's long-side cap for a local checkpoint that the catalog does not list."""
    ratio = _load()["datasets"].get(dataset, {}).get("short_side_ratio_cap", 4)
    return short_side * ratio


def class_table(dataset: str, n_cls: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Class names and RGB colours; a class count the table does not match gets generic names."""
    table = classes.class_table(dataset)
    if len(table) == n_cls:
        return [name for name, _ in table], [color for _, color in table]
    names = [f"class_{i}" for i in range(n_cls)]
    colors = [((i * 67) % 256, (i * 151 + 80) % 256, (i * 37 + 160) % 256) for i in range(n_cls)]
    return names, colors
