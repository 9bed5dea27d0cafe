"""The shared end of the tools' ``main``: log into the output folder, run, one line and exit
status 2 for a user error, the result written atomically as JSON."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.logger import setup_logging
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)


def run_to_json(output: str | Path, run: Callable[[], dict | None], result_name: str) -> int:
    """Runs ``run`` with logging into ``output`` and writes its dict to ``output/result_name``.

    Args:
        output: the tool's output folder (created).
        run: the tool's work; returns the result, or None to write nothing.
        result_name: file name of the JSON result.

    Returns:
        The exit status: 0, or 2 after a user error (logged as one line; nothing is written).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    setup_logging(str(output))
    try:
        result = run()
    except UserError as exc:
        logger.error("%s", exc)
        return USER_ERROR_EXIT_CODE
    if result is not None:
        atomic_write_text(output / result_name, json.dumps(result, indent=1) + "\n")
        logger.info("wrote %s", output / result_name)
    return 0
