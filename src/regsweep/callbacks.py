"""Callbacks specific to regularization studies (the stock ones come from Lightning)."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor


class GeneralizationGapStopping(EarlyStopping):
    """Stop when ``val/loss - train/loss > epsilon`` for ``patience`` consecutive epochs.

    The generalization-gap criterion of the early-stopping studies: it monitors ``gen_gap/loss``,
    which the module logs at the end of each training epoch. Subclassing EarlyStopping keeps
    Lightning's ordering (checked after the module's epoch-end hook) and its checkpoint state.
    """

    def __init__(self, epsilon: float = 0.05, patience: int = 3, verbose: bool = False) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        super().__init__(monitor="gen_gap/loss", mode="min", patience=patience, verbose=verbose,
                         check_on_train_epoch_end=True)
        self.epsilon = epsilon
        self.epochs_over = 0

    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, Optional[str]]:
        self.epochs_over = self.epochs_over + 1 if float(current) > self.epsilon else 0
        if self.epochs_over >= self.patience:
            return True, (f"generalization gap {float(current):.4f} > epsilon={self.epsilon} "
                          f"for {self.epochs_over} consecutive epochs")
        return False, None
