"""Everything one job writes in its own dir, whether it trained alone or in a pack.

``result.json``, ``metrics.csv`` and ``weights.npz`` (formats in :mod:`regsweep.records`), the kept
checkpoint ``checkpoints/best.ckpt``, ``train.log``, and the runs of the job's own loggers (the
``logger`` group: TensorBoard event files with per-epoch scalars, weight histograms and HParams).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Iterator

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from regsweep.atomic import atomic_write_bytes
from regsweep.instantiate import instantiate_trusted
from regsweep.records import EPOCHS_FILE, WEIGHTS_FILE, JobInfo, ResultRecord, write_epochs_csv, write_result, write_weights

HISTOGRAM_BINS = 128  # uniform over [min, max]
CHECKPOINT_FORMAT = "regsweep-member/1"
LOG_FILE = "train.log"


class MemberOutputs:
    def __init__(self, job: JobInfo, cfg: DictConfig) -> None:
        self.dir, self.cfg = Path(job.dir), cfg
        self.loggers = [instantiate_trusted(node) for node in (cfg.get("logger") or {}).values()
                        if node is not None and "_target_" in node]

    @property
    def histograms(self) -> bool:
        return any(isinstance(logger, TensorBoardLogger) for logger in self.loggers)

    @staticmethod
    def write_record(job: JobInfo, record: ResultRecord) -> None:
        write_result(Path(job.dir), record)

    def log_epoch(self, row: dict[str, float], epoch: int) -> None:
        scalars = {k: v for k, v in row.items() if k != "epoch"}
        for logger in self.loggers:
            logger.log_metrics(scalars, step=epoch)

    def histogram(self, tag: str, values: torch.Tensor, epoch: int) -> None:
        """A weight histogram from torch's histc (on CPU), written as TensorBoard's raw histogram."""
        values = values.detach().flatten().double()
        low, high = float(values.min()), float(values.max())
        if high <= low:
            high = low + 1e-12
        counts = torch.histc(values, bins=HISTOGRAM_BINS, min=low, max=high)
        edges = torch.linspace(low, high, HISTOGRAM_BINS + 1)[1:]
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram_raw(
                    tag, min=low, max=high, num=values.numel(), sum=float(values.sum()),
                    sum_squares=float(values.pow(2).sum()), bucket_limits=edges.tolist(),
                    bucket_counts=counts.tolist(), global_step=epoch)

    def write_epochs(self, history: list[dict[str, float]]) -> None:
        write_epochs_csv(self.dir / EPOCHS_FILE, history)

    def write_weights(self, weights: dict[str, torch.Tensor]) -> None:
        write_weights(self.dir / WEIGHTS_FILE, {name: w.detach().cpu().numpy() for name, w in weights.items()})

    def write_checkpoint(self, state: dict[str, torch.Tensor], epoch: int, checkpoint: Any) -> Path:
        """The kept epoch's weights as a one-member pack, with the config that built them."""
        dirpath = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.dirpath else self.dir / "checkpoints"
        path = dirpath / f"{checkpoint.filename if checkpoint is not None else 'best'}.ckpt"
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "state_dict": {k: v.cpu() for k, v in state.items()},
                    "monitor": getattr(checkpoint, "monitor", None), "score": getattr(checkpoint, "best_score", None),
                    "config": OmegaConf.to_container(self.cfg, resolve=True)}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def log_hparams(self, record: ResultRecord, objective: str) -> None:
        """Hyperparameters with the real final metrics, so TensorBoard's HParams tab compares runs."""
        best, test = record.metrics["best"], record.metrics["test"]
        metrics = {f"hp/best_{k.replace('/', '_')}": v for k, v in best.items() if k.startswith("val/")}
        metrics.update({f"hp/{k.replace('/', '_')}": v for k, v in test.items()})
        metrics["hp/epochs"] = float(record.epochs)
        metrics["hp/objective"] = best[objective]
        params = {k: str(v) if isinstance(v, (list, tuple)) or v is None else v for k, v in record.params.items()}
        for logger in self.loggers:
            logger.log_hyperparams(params, metrics)
            logger.finalize("success")

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
