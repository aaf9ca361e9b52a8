"""Member-aware callbacks: early stopping and the kept checkpoint, decided for each member of a pack.

Lightning's EarlyStopping and ModelCheckpoint watch one scalar and stop or save the whole
trainer; in a pack every member is its own job. These callbacks are Lightning callbacks bound to
one member (the job whose ``callbacks`` config declared them): after each validation they read
that member's row of the epoch (``PackModule.rows``) and may take the member out of the pack,
which then trains on without it. The keys mirror Lightning's (``monitor``, ``mode``,
``patience``, ``min_delta``); ``mode: auto`` takes the metric's own direction.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from regsweep import metrics
from regsweep.errors import ConfigError
from regsweep.records import OK

log = logging.getLogger(__name__)
MODES = ("auto", "min", "max")


def resolve_mode(monitor: str, mode: str, key: str) -> str:
    """``auto`` -> the direction in which ``monitor`` improves (max for accuracies, min for losses)."""
    if mode not in MODES:
        raise ConfigError(f"{key}.mode", mode, f"must be one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    natural = metrics.mode(monitor)
    if natural is None:
        raise ConfigError(f"{key}.mode", mode, f"{monitor} has no better direction: set mode=min or mode=max")
    return natural


class MemberCallback(Callback):
    """A Lightning callback that watches one member of the pack; ``bind`` says which."""

    key = "callbacks"  # the config key, for error messages
    member: int = -1  # the member's id in this process's pack (a position: never saved)
    job: str = ""  # the job's name: what its saved state is known by, whatever pack it is resumed in

    def bind(self, member: int, job: str = "") -> "MemberCallback":
        self.member, self.job = member, job
        return self

    @property
    def state_key(self) -> str:
        """Unique among a pack's callbacks, as Lightning requires; names the job, never its place in the pack."""
        return f"{type(self).__name__}[job={self.job or self.member}]"

    def row(self, module: L.LightningModule) -> dict[str, float] | None:
        """This epoch's measurements of the member; None when it has left the pack or is stopping."""
        if self.member in module.pending:
            return None
        return module.rows.get(self.member)


class _Monitoring(MemberCallback):
    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode, self.key)
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    def improves(self, value: float, min_delta: float = 0.0) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_score is None:
            return True
        return value < self.best_score - min_delta if self.mode == "min" else value > self.best_score + min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]


class BestCheckpoint(_Monitoring):
    """Keep the member's weights of the epoch with the best ``monitor`` (the first such epoch).

    The job tests those weights and writes them to ``<dirpath>/<filename>.ckpt``. Without this
    callback a job keeps (and tests) its last epoch.
    """

    key = "callbacks.model_checkpoint"

    def __init__(self, monitor: str = "val/loss", mode: str = "auto", dirpath: str | None = None,
                 filename: str = "best") -> None:
        super().__init__(monitor, mode)
        self.dirpath, self.filename = dirpath, filename
        self.best_state: dict[str, Any] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        row = self.row(pl_module)
        if row is not None and self.improves(row[self.monitor]):
            self.best_score, self.best_epoch = row[self.monitor], int(row["epoch"])
            self.best_state = pl_module.member_state(self.member)


class EarlyStopping(_Monitoring):
    """Stop the member when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    key = "callbacks.early_stopping"

    def __init__(self, monitor: str = "val/loss", mode: str = "auto", patience: int = 3, min_delta: float = 0.0,
                 verbose: bool = False) -> None:
        if patience < 1:
            raise ConfigError(f"{self.key}.patience", patience, "must be >= 1")
        super().__init__(monitor, mode)
        self.patience, self.min_delta = patience, abs(min_delta)
        del verbose  # accepted as Lightning's EarlyStopping accepts it: why a member stopped is always logged
        self.wait_count = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        row = self.row(pl_module)
        if row is None:
            return
        value = row[self.monitor]
        if self.improves(value, self.min_delta):
            self.best_score, self.best_epoch, self.wait_count = value, int(row["epoch"]), 0
            return
        self.wait_count += 1
        if self.wait_count >= self.patience:
            reason = (f"early stopping: {self.monitor} did not improve by more than {self.min_delta:g} for "
                      f"{self.patience} epochs (best {self.best_score:.4g} at epoch {self.best_epoch})")
            pl_module.stop_member(self.member, OK, reason)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait_count": self.wait_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait_count = state["wait_count"]


class GeneralizationGapStopping(MemberCallback):
    """Stop the member when ``gen_gap/loss`` (val/loss - train loss, both in eval mode) > ``epsilon``
    for ``patience`` epochs: the generalization-gap criterion of the early-stopping studies, counting consecutive
    epochs (the default) or, with ``consecutive=false``, every epoch over epsilon so far (a course report's rule:
    count the epochs past the gap, stop past a tolerance)."""

    key = "callbacks.gap_stopping"

    def __init__(self, epsilon: float = 0.05, patience: int = 3, consecutive: bool = True) -> None:
        if patience < 1:
            raise ConfigError(f"{self.key}.patience", patience, "must be >= 1")
        self.epsilon, self.patience, self.consecutive = epsilon, patience, consecutive
        self.epochs_over = 0

    def over(self, gap: float) -> bool:
        """Count one more epoch over epsilon (or, counting consecutive epochs, reset); True when the criterion is met."""
        if gap > self.epsilon:
            self.epochs_over += 1
        elif self.consecutive:
            self.epochs_over = 0
        return self.epochs_over >= self.patience

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        row = self.row(pl_module)
        if row is not None and self.over(row["gen_gap/loss"]):
            reason = (f"generalization gap {row['gen_gap/loss']:.4f} > epsilon={self.epsilon} "
                      f"for {self.epochs_over}{' consecutive' if self.consecutive else ''} epochs")
            pl_module.stop_member(self.member, OK, reason)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs_over": self.epochs_over}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_over = state["epochs_over"]
