"""Overlays as image files: a folder of them named like the input images, or one file for one image."""

from __future__ import annotations

from pathlib import Path

from vidseg.errors import VidsegError
from vidseg.files import write_image
from vidseg.outputs.overlay import OverlayOptions
from vidseg.outputs.sink import Sink
from vidseg.result import FrameResult


class OverlayImagesSink(Sink):
    """``folder``: ``folder/<name>.png`` for each named frame (image inputs). ``file``: every frame to that
    one file (a single image input); its suffix picks the format."""

    def __init__(self, options: OverlayOptions, *, folder: Path | None = None, file: Path | None = None):
        if (folder is None) == (file is None):
            raise VidsegError("overlay images go to a folder or to one file")
        self.options, self.folder, self.file = options, folder, file

    def write(self, frame: FrameResult) -> None:
        if self.file is not None:
            write_image(self.file, self.options.bgr(frame))
            return
        if frame.name is None:
            raise VidsegError("overlay images need named frames (image inputs); use video= for videos")
        assert self.folder is not None
        write_image(self.folder / frame.name.with_suffix(".png"), self.options.bgr(frame))

    def done(self, name: Path) -> bool:
        """``--resume``: the overlay of image ``name`` exists."""
        return self.folder is not None and (self.folder / name.with_suffix(".png")).exists()
