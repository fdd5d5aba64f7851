"""The exceptions users see, and the exit codes docs/cli.md documents.

Everything a user can get wrong (paths, media, flags, models, arrays) is raised as a ``VidsegError`` with a
message that names the problem; ``cli.main`` prints it as one line. The subclasses let Python callers tell
a bad model from a bad input without parsing messages. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SKIPPED = 1  # finished, but some inputs or frames were skipped
EXIT_USAGE = 2  # bad arguments, bad input, missing model, failed conversion
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; outputs hold what was done


class VidsegError(Exception):
    """A problem with the user's input or environment, reported as one line.

    >>> import vidseg
    >>> try:
    ...     Segmenter("no/such/model")
    ... except vidseg.VidsegError as e:           # or the precise subclass, vidseg.ModelError
    ...     print(type(e).__name__, e)
    ModelError no model at no/such/model: run 'vidseg convert' (downloads the default checkpoint) or ...
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class ModelError(VidsegError):
    """The model directory is missing, incomplete, corrupt or cannot be compiled for the device."""


class DeviceError(VidsegError):
    """The OpenVINO device asked for does not exist on this machine."""


class InputError(VidsegError):
    """An input (file, folder, glob, camera, URL) cannot be found or opened."""


class ImageError(VidsegError, ValueError):
    """An image or array that cannot be segmented: unreadable file, wrong dtype, shape or channel count."""


def describe(e: BaseException) -> str:
    """The informative line of a library's exception (OpenVINO puts it last), kept short."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:200]
