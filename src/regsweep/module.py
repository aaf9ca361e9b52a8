"""The one LightningModule of the harness: data loss + weight penalty, metrics accumulated per epoch.

Metrics are accumulated on the device with torchmetrics and reach the host once per epoch, so
small models are not slowed by a host sync every step. The module steps its optimizer itself (manual
optimization), once per minibatch of each group the data module hands over: Lightning's loop then
runs once per group instead of once per minibatch, which is what keeps its per-step bookkeeping
small next to a small MLP's step (see bench/). Each epoch the module logs ``stage/metric``
scalars (step = epoch), weight norms and sparsity, and per-layer weight histograms, and keeps the
epoch rows in ``history`` for the per-job CSV and result record.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from regsweep.config import OptimizerConfig, RegularizerConfig
from regsweep.data.splits import CLASSIFICATION
from regsweep.errors import DivergenceError
from regsweep.penalty import add_gradient_noise, named_weights, penalty, strengths, weight_statistics

HISTOGRAM_BINS = 128  # uniform over [min, max]: 4x faster than TensorBoard's default log-spaced bins
OPTIMIZER_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def build_optimizer(cfg: OptimizerConfig, parameters: Any) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.name == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        kwargs.update(betas=tuple(cfg.betas))
    return OPTIMIZER_CLASSES[cfg.name](parameters, **kwargs)


def build_schedule(cfg: OptimizerConfig, optimizer: torch.optim.Optimizer, max_epochs: int):
    """Per-epoch learning-rate schedule, or None."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


class RegularizedModule(L.LightningModule):
    """Trains ``net`` on cross-entropy (classification) or MSE (regression) plus the weight penalty."""

    def __init__(
        self,
        net: nn.Module,
        task: str,
        num_classes: int | None,
        regularizer: RegularizerConfig,
        optimizer: OptimizerConfig,
        n_train: int,
        max_epochs: int,
        seed: int,
        histogram_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # one optimizer step per minibatch of a group; see training_step
        self.net = net
        self.task = task
        self.optimizer_cfg = optimizer
        self.max_epochs = max_epochs
        self.l1, self.l2 = strengths(regularizer, n_train)
        self.grad_noise_std = regularizer.grad_noise_std
        self.seed = seed
        self.histogram_every_n_epochs = histogram_every_n_epochs
        self.weights = list(named_weights(net).values())
        # keyed "<stage>_" because ModuleDict keys may not shadow nn.Module attributes such as train()
        self.stage_metrics = nn.ModuleDict({f"{s}_": self._stage_metrics(num_classes) for s in ("train", "val", "test")})
        self.train_penalty = MeanMetric()
        self.history: list[dict[str, float]] = []
        self._val_row: dict[str, float] = {}
        self._noise_generator: torch.Generator | None = None

    def _stage_metrics(self, num_classes: int | None) -> MetricCollection:
        metrics: dict[str, Any] = {"loss": MeanMetric()}
        if self.task == CLASSIFICATION:
            metrics["acc"] = MulticlassAccuracy(num_classes=num_classes, average="micro")
        return MetricCollection(metrics)

    def __setattr__(self, name: str, value: Any) -> None:
        """Store Lightning's hook-name bookkeeping as a plain attribute.

        Lightning assigns ``_current_fx_name`` around every hook call, about ten times per training
        step; ``nn.Module.__setattr__`` (parameter/module/buffer checks) made that a measurable part
        of the per-step overhead on small models. A string is never a parameter, module or buffer.
        """
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def data_loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.task == CLASSIFICATION:
            return F.cross_entropy(output, target)
        return F.mse_loss(output, target)

    def _update(self, stage: str, output: Tensor, target: Tensor, losses: Tensor, sizes: Tensor | int) -> None:
        """Accumulate one batch, or a group of minibatches (``losses`` per minibatch, weighted by ``sizes``)."""
        metrics = self.stage_metrics[f"{stage}_"]
        metrics["loss"].update(losses, weight=sizes)
        if "acc" in metrics:
            metrics["acc"].update(output, target)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        output = self(x)
        self._update(stage, output, y, self.data_loss(output, y), len(y))

    def _optimizer_step(self, optimizer: Any, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Forward, backward and step on one minibatch; returns its detached output, data loss, penalty."""
        x, y = batch
        output = self(x)
        loss = self.data_loss(output, y)
        reg = penalty(self.weights, self.l1, self.l2) if self.l1 or self.l2 else None
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss if reg is None else loss + reg)
        optimizer.step()  # runs on_before_optimizer_step (clipping, gradient noise) first
        return output.detach(), loss.detach(), None if reg is None else reg.detach()

    def training_step(self, batches: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        """One optimizer step per minibatch, in order: the same updates whatever the group size.

        The training metrics are updated once per group, which keeps their cost per minibatch small.
        """
        optimizer = self.optimizers()
        outputs, losses, penalties = zip(*(self._optimizer_step(optimizer, batch) for batch in batches))
        targets = [y for _, y in batches]
        sizes = torch.tensor([len(y) for y in targets], dtype=torch.float32, device=self.device)
        self._update("train", torch.cat(outputs), torch.cat(targets), torch.stack(losses), sizes)
        if penalties[0] is not None:
            self.train_penalty.update(torch.stack(penalties))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.optimizer_cfg.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.optimizer_cfg.clip_grad_norm,
                                gradient_clip_algorithm="norm")
        if not self.grad_noise_std:
            return
        if self._noise_generator is None:
            self._noise_generator = torch.Generator(device=self.device).manual_seed(self.seed + 2)
        add_gradient_noise(list(self.parameters()), self.grad_noise_std, self._noise_generator)

    def _compute(self, stage: str) -> dict[str, Tensor]:
        metrics = self.stage_metrics[f"{stage}_"]
        values = {f"{stage}/{name}": value for name, value in metrics.compute().items()}
        metrics.reset()
        return values

    def _log_epoch(self, values: dict[str, Tensor]) -> dict[str, float]:
        """Expose values to callbacks (early stopping, checkpoint) and write them with step = epoch."""
        self.log_dict(values, logger=False)
        row = {name: float(value) for name, value in values.items()}  # the one host sync of the epoch
        for logger in self.loggers:
            logger.log_metrics(row, step=self.current_epoch)
        return row

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.stage_metrics["val_"].reset()
            return
        self._val_row = self._log_epoch(self._compute("val"))

    def on_train_epoch_end(self) -> None:
        values = self._compute("train")
        values["train/penalty"] = (
            self.train_penalty.compute() if self.l1 or self.l2 else torch.zeros_like(values["train/loss"])
        )
        values["train/total_loss"] = values["train/loss"] + values["train/penalty"]
        self.train_penalty.reset()
        values.update(weight_statistics(self.weights))
        values["lr"] = torch.tensor(self.trainer.optimizers[0].param_groups[0]["lr"])
        if "val/loss" in self._val_row:
            values["gen_gap/loss"] = self._val_row["val/loss"] - values["train/loss"]
        if "val/acc" in self._val_row and "train/acc" in values:
            values["gen_gap/acc"] = values["train/acc"] - self._val_row["val/acc"]
        row = {"epoch": float(self.current_epoch), **self._val_row, **self._log_epoch(values)}
        self.history.append(row)
        self._check_finite(row)
        self._log_histograms()
        schedule = self.lr_schedulers()
        if schedule is not None:  # after logging "lr": the row shows the rate this epoch trained with
            schedule.step()

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_epoch(self._compute("test"))

    def _check_finite(self, row: dict[str, float]) -> None:
        for name in ("train/loss", "train/total_loss", "val/loss"):
            if name in row and not math.isfinite(row[name]):
                raise DivergenceError(f"training diverged: {name} is {row[name]} at epoch {self.current_epoch}")

    def _log_histograms(self) -> None:
        if self.current_epoch % self.histogram_every_n_epochs:
            return
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name, weight in named_weights(self.net).items():
                    logger.experiment.add_histogram(f"weights/{name}", weight.detach(), self.current_epoch,
                                                    bins=HISTOGRAM_BINS)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_cfg, self.parameters())
        schedule = build_schedule(self.optimizer_cfg, optimizer, self.max_epochs)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}  # stepped in on_train_epoch_end
