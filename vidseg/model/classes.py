"""The datasets' class tables, names and colours (``vidseg/configs/classes/*.csv``), shipped with the package:
the converter writes them into each model, and ``vidseg plot`` colours a stats file by them when no
``labels.json`` is at hand."""

from __future__ import annotations

import csv
from importlib import resources

RGB = tuple[int, int, int]


def datasets() -> list[str]:
    """The datasets with a class table, by file name."""
    folder = resources.files("vidseg") / "configs" / "classes"
    return sorted(p.name.removesuffix(".csv") for p in folder.iterdir() if p.name.endswith(".csv"))


def class_table(dataset: str) -> list[tuple[str, RGB]]:
    """(name, RGB) by class id; empty for a dataset without a table."""
    path = resources.files("vidseg") / "configs" / "classes" / f"{dataset}.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [(row["name"], (int(row["r"]), int(row["g"]), int(row["b"]))) for row in csv.DictReader(f)]


def colors_by_name(names: list[str]) -> dict[str, RGB]:
    """Colours for class names from the dataset table that knows the most of them (ties: the first by
    name); names it does not know are left out."""
    best: dict[str, RGB] = {}
    for dataset in datasets():
        table = dict(class_table(dataset))
        known = {n: table[n] for n in names if n in table}
        if len(known) > len(best):
            best = known
    return best
