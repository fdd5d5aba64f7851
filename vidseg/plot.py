"""``vidseg plot``: a run's per-frame class shares (``--stats`` JSON lines) as a picture people can read.

A stacked-area timeline (time in seconds, or image number for image batches) in the dataset's own colours,
the main classes named in a legend with their mean share, everything else summed as "other", and beside
it a bar chart of each main class's share over the whole run. PNG or SVG, by the output's suffix.
matplotlib is the optional ``[plot]`` extra: the runtime does not need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.errors import InputError, VidsegError
from vidseg.files import atomic_path
from vidseg.model.classes import colors_by_name

OTHER_COLOR = (0.75, 0.75, 0.75)
FORMATS = {".png": "png", ".svg": "svg"}


@dataclass
class Timeline:
    x: np.ndarray  # seconds, or frame/image number
    x_label: str
    names: list[str]  # classes by mean share, largest first
    shares: np.ndarray  # (len(names), len(x))
    title: str


def read_stats(path: Path, input_name: str | None = None) -> Timeline:
    """The records of one input (a collection's stats hold several: ``input_name``, default the first)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["classes"].items()
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f"{path}:{number}: not a vidseg --stats line") from None
        records.append(record)
    if not records:
        raise InputError(f"{path} holds no frames")
    inputs = list(dict.fromkeys(r.get("input") for r in records))
    chosen = input_name if input_name is not None else inputs[0]
    if chosen not in inputs:
        raise VidsegError(f"no input {chosen!r} in {path} (it has: {', '.join(str(i) for i in inputs)})")
    records = [r for r in records if r.get("input") == chosen]
    totals: dict[str, float] = {}
    for r in records:
        for name, share in r["classes"].items():
            totals[name] = totals.get(name, 0.0) + share
    names = sorted(totals, key=totals.__getitem__, reverse=True)
    shares = np.array([[r["classes"].get(n, 0.0) for r in records] for n in names])
    if all("time" in r for r in records):
        x, x_label = np.array([r["time"] for r in records], dtype=float), "time (s)"
    else:
        x, x_label = np.arange(len(records), dtype=float), "image" if "name" in records[0] else "frame"
    title = f"{path.name}" + (f": {chosen}" if chosen is not None else "") + f" ({len(records)} frames)"
    return Timeline(x, x_label, names, shares, title)


def plot(timeline: Timeline, colors: dict[str, tuple[int, int, int]], out: Path, top: int = 8) -> Path:
    """Draw and write the figure; the file appears under its name only when complete."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise VidsegError(f"plot output must end in {' or '.join(FORMATS)}: {out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, smaller
        import matplotlib.pyplot as plt
    except ImportError:
        raise VidsegError("vidseg plot needs matplotlib: pip install 'vidseg[plot]'") from None
    main, rest = timeline.names[:top], timeline.names[top:]
    bands = list(timeline.shares[: len(main)])
    band_colors = [tuple(c / 255 for c in colors.get(n, (128, 128, 128))) for n in main]
    labels = [f"{short(n)} ({timeline.shares[i].mean():.0%})" for i, n in enumerate(main)]
    if rest:
        other = timeline.shares[len(main):].sum(axis=0)
        bands.append(other)
        band_colors.append(OTHER_COLOR)
        labels.append(f"other: {len(rest)} classes ({other.mean():.0%})")

    fig, (ax, bars) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]},
                                   layout="constrained")
    x = timeline.x if len(timeline.x) > 1 else np.array([timeline.x[0], timeline.x[0] + 1])
    ys = [b if len(timeline.x) > 1 else np.repeat(b, 2) for b in bands]
    ax.stackplot(x, *ys, colors=band_colors, labels=labels, edgecolor="white", linewidth=0.3)
    ax.set(xlim=(x[0], x[-1]), ylim=(0, 1), xlabel=timeline.x_label, ylabel="share of the frame",
           title=timeline.title)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), ncol=3, fontsize=8, frameon=False)
    means = [b.mean() for b in bands]
    bars.barh(range(len(bands))[::-1], means, color=band_colors)
    bars.set_yticks(range(len(bands))[::-1], [short(n) for n in main] + (["other"] if rest else []), fontsize=8)
    bars.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    bars.set_title("share of the whole run")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)
    return out


def short(name: str) -> str:
    """ADE20K names are synonym lists ("person, individual, someone, ..."): the first one names it."""
    return name.split(",")[0]


def class_colors(labels_json: Path, names: list[str]) -> dict[str, tuple[int, int, int]]:
    """Colours for the classes a stats file names: from the class table ``vidseg process --labels`` writes
    (``labels.json``) when there is one, else from the dataset table that knows those names."""
    if not labels_json.exists():
        return colors_by_name(names)
    try:
        table = json.loads(labels_json.read_text())
        return {c["name"]: tuple(c["color"]) for c in table}  # type: ignore[misc]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot read class colours from {labels_json}: {e}") from None
