"""Label maps as files: one 8-bit palette PNG a frame (pixel value = class id), the class table beside
them (``labels.json``) and, for a video, each PNG's timestamp (``frames.json``, written once the video
is complete, so its presence says the folder is whole)."""

from __future__ import annotations

import math
from array import array
from pathlib import Path

from vidseg.files import labels_json, write_json, write_label_png
from vidseg.outputs.sink import Sink
from vidseg.result import FrameResult

FRAMES_JSON = "frames.json"
LABELS_JSON = "labels.json"


class LabelsSink(Sink):
    """``folder/<name>.png`` for images, ``folder/000000.png``... for video frames. ``class_table=False``
    leaves ``labels.json`` to whoever owns the folder above (a collection writes one at its top)."""

    def __init__(self, folder: Path, class_table: bool = True):
        self.folder, self.class_table = folder, class_table
        self._times = array("d")  # video frames' timestamps, 8 bytes a frame (NaN: none)
        self._started = False

    def write(self, frame: FrameResult) -> None:
        if not self._started:
            self._started = True
            if self.class_table:
                write_json(self.folder / LABELS_JSON, labels_json(list(frame.class_names), frame.palette))
        name = frame.name.with_suffix(".png") if frame.name is not None else Path(f"{frame.index:06d}.png")
        write_label_png(self.folder / name, frame.labels, frame.palette)
        if frame.name is None:
            self._times.append(math.nan if frame.time is None else frame.time)

    def close(self, complete: bool = True) -> None:
        if complete and self._times:
            times = [None if math.isnan(t) else t for t in self._times]
            write_json(self.folder / FRAMES_JSON, {"frames": len(times), "times": times})
            self._times = array("d")

    def done(self, name: Path) -> bool:
        """``--resume``: the label PNG of image ``name`` exists (written atomically: existing means complete)."""
        return (self.folder / name.with_suffix(".png")).exists()
