"""Errors that stand for a user mistake: the launcher prints their one-line message and exits 2."""
from __future__ import annotations

USER_ERROR_EXIT_CODE = 2
WORKER_TRACEBACK = "Original Traceback (most recent call last):"  # torch's wrapper of a worker's error


class UserError(Exception):
    """A mistake the user can fix (bad path, bad value, unreadable file).

    The message is one line that names the thing (key, file, sample) and says what to do. Raised
    in a data-loader worker, the error reaches the main process rebuilt by torch from a message
    that wraps the worker's traceback; the message is then the original line again, and the
    traceback stays in :attr:`worker_traceback` (for the log file).

    Args:
        message: the one line.
    """

    def __init__(self, message: str = "") -> None:
        text = str(message)
        self.worker_traceback = text if WORKER_TRACEBACK in text else ""
        if self.worker_traceback:
            last = text.rstrip().splitlines()[-1]  # "package.module.ErrorName: the original line"
            text = last.partition(": ")[2] or last
        super().__init__(text)
