"""Errors that stand for a user mistake: the launcher prints their one-line message and exits 2."""
from __future__ import annotations

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A mistake the user can fix (bad path, bad value, unreadable file).

    The message is one line that names the thing (key, file, sample) and says what to do.
    """
