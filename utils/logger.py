"""Logging setup: coloured console on rank 0, one plain log file per rank.

Modules log through ``logging.getLogger(__name__)``; :func:`setup_logging` attaches the handlers
to the root logger once per process.
"""
from __future__ import annotations

import logging
import os
import sys

from termcolor import colored

_FORMAT = "[%(asctime)s %(name)s] (%(filename)s %(lineno)d): %(levelname)s %(message)s"
_DATE = "%m/%d %H:%M:%S"
_LEVEL_COLORS = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "red"}


class _ColorFormatter(logging.Formatter):
    """Short coloured console lines: green time and name, coloured level for warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        head = colored(f"[{self.formatTime(record, _DATE)} {record.name}]", "green")
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        color = _LEVEL_COLORS.get(record.levelno)
        if color:
            text = colored(f"{record.levelname} ", color, attrs=["blink"]) + text
        return f"{head} {text}"


def setup_logging(output_dir: str | None, rank: int = 0, name: str = "log",
                  level: int = logging.INFO) -> logging.Logger:
    """Configures the root logger for this process.

    Args:
        output_dir: folder of the log file (``log.txt`` on rank 0, ``log_rank{r}.txt`` elsewhere);
            ``None`` logs to the console only.
        rank: global rank; only rank 0 writes to the console.
        name: base name of the log file.
        level: logging level of the handlers.

    Returns:
        The root logger.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_lps_har", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    handlers: list[logging.Handler] = []
    if rank == 0:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(_ColorFormatter())
        handlers.append(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        file_name = f"{name}.txt" if rank == 0 else f"{name}_rank{rank}.txt"
        file_handler = logging.FileHandler(os.path.join(output_dir, file_name), mode="a")
        file_handler.setFormatter(logging.Formatter(_FORMAT, datefmt=_DATE))
        handlers.append(file_handler)
    for handler in handlers:
        handler.setLevel(level)
        handler._lps_har = True  # marks handlers this function owns, so a second call replaces them
        root.addHandler(handler)
    return root


def log_traceback_to_file(message: str) -> None:
    """Writes ``message`` and the traceback being handled to the log files only (the console got
    its one line already)."""
    record = logging.getLogger(__name__).makeRecord(__name__, logging.ERROR, __file__, 0, message, None,
                                                    sys.exc_info())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
