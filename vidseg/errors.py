"""The one exception type users see, and the exit codes the README documents.

Everything a user can get wrong (paths, media, flags, models) is raised as ``VidsegError`` with a message
that names the problem; ``cli.main`` prints it as one line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SKIPPED = 1  # finished, but some inputs or frames were skipped
EXIT_USAGE = 2  # bad arguments, bad input, missing model, failed conversion
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; outputs hold what was done


class VidsegError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(Exception):
    """Raised in the main thread when SIGINT/SIGTERM asked the run to stop."""


def describe(e: BaseException) -> str:
    """The informative line of a library's exception (OpenVINO puts it last), kept short."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:200]
