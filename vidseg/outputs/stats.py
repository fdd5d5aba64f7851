"""Per-frame class shares as JSON lines (``--stats``): one line a frame, flushed as it is written, so a
file cut short by a crash still holds every frame before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from vidseg.errors import VidsegError
from vidseg.outputs.sink import Sink
from vidseg.result import FrameResult


def stats_record(frame: FrameResult) -> dict[str, Any]:
    """A frame's line: where it comes from (index, input, name, time) and its class shares."""
    record: dict[str, Any] = {"frame": frame.index}
    if frame.input is not None and frame.name is None:
        record["input"] = frame.input
    if frame.name is not None:
        record["name"] = str(frame.name)
    if frame.time is not None:
        record["time"] = round(frame.time, 6)
    record["classes"] = frame.fractions()
    return record


class StatsSink(Sink):
    """``append``: add to an existing file (``--resume``) instead of starting it anew. The file is created
    with the first frame: a run that segments nothing leaves none."""

    def __init__(self, path: Path, append: bool = False):
        self.path, self.append = path, append
        self._file: IO[str] | None = None

    def write(self, frame: FrameResult) -> None:
        self.write_record(stats_record(frame))

    def write_record(self, record: dict[str, Any]) -> None:
        """One line as ``stats_record`` makes it (a cluster run's driver has records, not frames)."""
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a" if self.append else "w")
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise VidsegError(f"cannot write {self.path}: {e.strerror}") from None

    def close(self, complete: bool = True) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # the write that failed already reported it
                pass
            self._file = None
