"""The non-finite rules of training: which skipped updates count, and when a run stops.

Without a grad scaler an update is skipped when the gradient norm is not finite, and every skip
counts against ``TRAIN.MAX_NONFINITE``. The fp16 grad scaler skips updates on its own while it
calibrates its scale (the loss is finite, the scaled gradients overflow); those skips do not
count, a skip whose loss itself was non-finite does. Either way a run stops when more than
``TRAIN.MAX_NONFINITE`` updates in a row were skipped: its gradients never became finite.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from utils.errors import UserError

logger = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """Too many non-finite losses: training stops instead of corrupting the weights."""


@dataclass
class SkipRule:
    """Counts skipped updates (see the module docstring).

    Args:
        max_nonfinite: counted skips, and skips in a row, tolerated.
        in_a_row: optimizer steps of the current run of skipped updates.
    """

    max_nonfinite: int
    in_a_row: list[int] = field(default_factory=list)

    def after_update(self, nonfinite: int, *, step: int, epoch: int, updated: bool, loss_nonfinite: bool,
                     scaler_scale: float | None) -> int:
        """Records one optimizer step; returns the new count of counted skips.

        Args:
            nonfinite: counted skips of the run so far.
            step: the 1-based optimizer step.
            epoch: the 1-based epoch (for the log).
            updated: the update was applied.
            loss_nonfinite: a loss of the step's window was non-finite.
            scaler_scale: the fp16 grad scaler's scale after the step, or None without a scaler.

        Raises:
            NonFiniteLossError: more than ``max_nonfinite`` counted skips, or skips in a row.
        """
        if loss_nonfinite:
            logger.warning("non-finite loss at optimizer step %d (epoch %d)", step, epoch)
        if updated:
            self.in_a_row.clear()
            return nonfinite
        self.in_a_row.append(step)
        if scaler_scale is None or loss_nonfinite:
            nonfinite += 1
        if scaler_scale is not None:
            logger.info("fp16 grad scaler skipped step %d (inf/nan gradients), scale now %.1f", step, scaler_scale)
        else:
            logger.warning("non-finite gradient at optimizer step %d (epoch %d): update skipped (%d of %d "
                           "tolerated)", step, epoch, nonfinite, self.max_nonfinite)
        if nonfinite > self.max_nonfinite or len(self.in_a_row) > self.max_nonfinite:
            raise NonFiniteLossError(
                f"updates skipped on non-finite losses or gradients: {nonfinite} counted in the run, "
                f"{len(self.in_a_row)} in a row (optimizer steps {self.in_a_row[0]}-{step}); lower "
                "TRAIN.LR, set TRAIN.CLIP_GRAD or TRAIN.PRECISION fp32, or raise TRAIN.MAX_NONFINITE")
        return nonfinite
