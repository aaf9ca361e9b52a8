"""Everything one job writes in its own dir, whether it trained alone or in a pack.

``result.json``, ``metrics.csv``, ``weights.npz`` and, for regression, ``predictions.npz`` (formats in
:mod:`regsweep.records`), ``checkpoints/best.ckpt`` and ``last.ckpt`` (:mod:`regsweep.checkpoints`),
``train.log``, and the runs of the job's own loggers (the ``logger`` group: TensorBoard event files
with per-epoch scalars, weight histograms and HParams).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from hydra.utils import get_class
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from regsweep import checkpoints
from regsweep.atomic import atomic_write_bytes, naming
from regsweep.instantiate import instantiate_trusted
from regsweep.records import (
    EPOCHS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    WEIGHTS_FILE,
    JobInfo,
    ResultRecord,
    write_epochs_csv,
    write_result,
    write_weights,
)

HISTOGRAM_BINS = 64  # uniform over [min, max]; TensorBoard's own histograms default to 30 buckets, 128 doubled write time
LOG_FILE = "train.log"


@dataclass(frozen=True)
class Histogram:
    """One member's histogram of one weight tensor, in the fields of TensorBoard's raw histogram."""

    min: float
    max: float
    num: int
    sum: float
    sum_squares: float
    bucket_limits: list[float]  # upper edge of each bin
    bucket_counts: list[float]


def member_histograms(weights: torch.Tensor) -> list[Histogram]:
    """Each member's histogram of its slice of ``weights`` ([members, ...]): HISTOGRAM_BINS bins
    over its own [min, max] (a constant member: over its value +- 0.5), each value in the bin
    torch.histc puts it in on a CPU. Not histc itself: on CUDA it has no deterministic
    implementation and throws under ``trainer.deterministic`` (the default); counting bin
    indices is exact on any device.

    The moments of all members in one host copy and the counts of the whole pack in one
    bincount and one more copy, not a handful of syncs per member; in the weights' own dtype (a
    float64 copy of a pack's weights costs more than the histograms).
    """
    flat = weights.detach().flatten(1)
    lows, highs = torch.aminmax(flat, dim=1)
    moments = torch.stack([lows, highs, flat.sum(1), (flat * flat).sum(1)], 1).double().tolist()
    ranges = [(low, high) if high > low else (low - 0.5, low + 0.5) for low, high, _, _ in moments]
    counts = bin_counts(flat, torch.tensor(ranges, dtype=flat.dtype, device=flat.device)).tolist()
    return [Histogram(low, high, flat.shape[1], total, squares,
                      [start + (end - start) * (i + 1) / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS)], count)
            for (low, high, total, squares), (start, end), count in zip(moments, ranges, counts)]


def bin_counts(flat: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
    """Counts [members, HISTOGRAM_BINS] of each row of ``flat`` over its row of ``ranges`` [members, 2]."""
    start, end = ranges[:, :1], ranges[:, 1:]
    bins = (flat - start).div_(end - start).mul_(HISTOGRAM_BINS).to(torch.int32).clamp_(0, HISTOGRAM_BINS - 1)
    members = torch.arange(flat.shape[0], dtype=torch.int32, device=flat.device).unsqueeze(1)
    bins += members * HISTOGRAM_BINS  # member m's bins follow member m-1's
    return torch.bincount(bins.flatten(), minlength=flat.shape[0] * HISTOGRAM_BINS).view(-1, HISTOGRAM_BINS)


def disk_error(error: BaseException) -> OSError | None:
    """The OSError of a refused write (a full or read-only disk) behind ``error``, however a library wrapped it."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def quiet_writer_threads() -> None:
    """In a process that trains: a logger's writer thread that the disk fails (TensorBoard writes from a thread of its
    own) dies without a traceback; the same error reaches the job at its next write and fails it in one line."""
    default = threading.__excepthook__

    def hook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, OSError):
            default(args)

    threading.excepthook = hook


class JobLoggers(Logger):
    """The Trainer's logger when it trains one job: Lightning's own callbacks and a user's (``LearningRateMonitor``,
    ``trainer.logger.log_metrics``) write into the job's loggers, which the job finalizes itself once it has written
    everything (Lightning would close them at the end of fit, before the test and the HParams)."""

    def __init__(self, loggers: list[Logger]) -> None:
        super().__init__()
        self.loggers = loggers

    @property
    def name(self) -> str:
        return self.loggers[0].name

    @property
    def version(self) -> str | int:
        return self.loggers[0].version

    @property
    def save_dir(self) -> str | None:
        return self.loggers[0].save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self.loggers[0], "log_dir", self.save_dir)

    @property
    def experiment(self) -> Any:
        return self.loggers[0].experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        for logger in self.loggers:
            logger.log_hyperparams(params, *args, **kwargs)

    def finalize(self, status: str) -> None:
        """The job closes its loggers (MemberOutputs.close)."""


class MemberOutputs:
    def __init__(self, job: JobInfo, cfg: DictConfig, purge_step: int | None = None) -> None:
        """``purge_step``: a job continued from its checkpoint drops the TensorBoard events it had written
        after that epoch (they will be written again), so no epoch appears twice."""
        self.dir, self.cfg = Path(job.dir), cfg
        self.loggers = [self._logger(node, purge_step) for node in (cfg.get("logger") or {}).values()
                        if node is not None and "_target_" in node]

    @staticmethod
    def _logger(node: DictConfig, purge_step: int | None) -> Any:
        if purge_step is not None and issubclass(get_class(node._target_), TensorBoardLogger):
            return instantiate_trusted(node, purge_step=purge_step)
        return instantiate_trusted(node)

    @property
    def trainer_logger(self) -> JobLoggers | bool:
        """What the Trainer of this job alone logs through (False: no logger)."""
        return JobLoggers(self.loggers) if self.loggers else False

    @property
    def histograms(self) -> bool:
        return any(isinstance(logger, TensorBoardLogger) for logger in self.loggers)

    @staticmethod
    def write_record(job: JobInfo, record: ResultRecord) -> None:
        write_result(Path(job.dir), record)

    def _to_loggers(self, write: Callable[[Any], None]) -> None:
        """``write`` to each logger; one the disk fails (full, read-only) fails naming this job's dir and the errno,
        not as a logger's own words for it (TensorBoard's: "you tried to log 0.93 which is not supported")."""
        for logger in self.loggers:
            try:
                write(logger)
            except Exception as error:
                cause = disk_error(error)
                if cause is None:
                    raise
                raise naming(self.dir, cause) from error

    def log_epoch(self, row: dict[str, float], epoch: int) -> None:
        scalars = {k: v for k, v in row.items() if k != "epoch"}
        self._to_loggers(lambda logger: logger.log_metrics(scalars, step=epoch))

    def histogram(self, tag: str, histogram: Histogram, epoch: int) -> None:
        """A weight histogram, written as TensorBoard's raw histogram."""
        self._to_loggers(lambda logger: logger.experiment.add_histogram_raw(tag, **vars(histogram), global_step=epoch)
                         if isinstance(logger, TensorBoardLogger) else None)

    def write_epochs(self, history: list[dict[str, float]]) -> None:
        write_epochs_csv(self.dir / EPOCHS_FILE, history)

    def write_predictions(self, x: torch.Tensor, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        """A regression job's test set, as arrays: inputs [N, 2], targets and predictions [N]."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=x.cpu().numpy(), y_true=y_true.reshape(-1).cpu().numpy(),
                            y_pred=y_pred.reshape(-1).cpu().numpy())
        atomic_write_bytes(self.dir / PREDICTIONS_FILE, buffer.getvalue())

    def write_weights(self, weights: dict[str, torch.Tensor]) -> None:
        write_weights(self.dir / WEIGHTS_FILE, {name: w.detach().cpu().numpy() for name, w in weights.items()})

    def write_model(self, state: dict[str, torch.Tensor]) -> None:
        """The kept weights as the state dict of the job's own network, on the CPU, loadable without regsweep."""
        buffer = io.BytesIO()
        torch.save({name: value.detach().cpu() for name, value in state.items()}, buffer)
        atomic_write_bytes(self.dir / MODEL_FILE, buffer.getvalue())

    def write_best(self, state: dict[str, torch.Tensor], epoch: int, checkpoint: Any) -> Path:
        """The kept epoch's weights (keyed as in the job's own network), with the config that built them."""
        dirpath = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.dirpath \
            else self.dir / checkpoints.CHECKPOINT_DIR
        path = dirpath / (f"{checkpoint.filename}.ckpt" if checkpoint is not None else checkpoints.BEST_FILE)
        return checkpoints.write_checkpoint(path, checkpoints.BEST_FORMAT, {
            "epoch": epoch, "state_dict": {k: v.cpu() for k, v in state.items()},
            "monitor": getattr(checkpoint, "monitor", None), "score": getattr(checkpoint, "best_score", None),
            "config": OmegaConf.to_container(self.cfg, resolve=True)})

    def log_hparams(self, record: ResultRecord, objective: str) -> None:
        """Hyperparameters with the real final metrics, so TensorBoard's HParams tab compares runs."""
        best, test = record.metrics["best"], record.metrics["test"]
        metrics = {f"hp/best_{k.replace('/', '_')}": v for k, v in best.items() if k.startswith("val/")}
        metrics.update({f"hp/{k.replace('/', '_')}": v for k, v in test.items()})
        metrics["hp/epochs"] = float(record.epochs)
        if objective in best:  # an evaluation of a checkpoint has test metrics only
            metrics["hp/objective"] = best[objective]
        params = {k: str(v) if isinstance(v, (list, tuple)) or v is None else v for k, v in record.params.items()}
        params["tags"] = ",".join(record.tags)

        def write(logger: Any) -> None:
            if isinstance(logger, TensorBoardLogger):  # its HParams tab pairs them with the metrics
                logger.log_hyperparams(params, metrics)
            else:
                logger.log_hyperparams(params)
                logger.log_metrics(metrics, step=record.epochs)

        self._to_loggers(write)

    def close(self) -> None:
        self._to_loggers(lambda logger: logger.finalize("success"))

    @staticmethod
    @contextlib.contextmanager
    def logging_into(jobs: list[JobInfo]) -> Iterator[None]:
        """While a pack trains, its log lines also go to each member's own train.log."""
        root = logging.getLogger()
        handlers = []
        for job in jobs:
            handler = logging.FileHandler(Path(job.dir) / LOG_FILE, encoding="utf-8")
            handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
            root.addHandler(handler)
            handlers.append(handler)
        try:
            yield
        finally:
            for handler in handlers:
                root.removeHandler(handler)
                handler.close()
