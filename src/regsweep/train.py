"""One training job, top to bottom: validate -> seed -> data -> model -> trainer -> fit -> test -> record.

Whatever happens, the job leaves ``result.json`` (status ok or failed, or pruned in a search) and
``metrics.csv`` in its output dir; aggregation reads those, never the process's return value.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from regsweep.config import Settings, validate
from regsweep.data.augment import AugmentSettings, augment_batch
from regsweep.data.datamodule import BatchTransform, TensorDataModule
from regsweep.data.sources import load_splits
from regsweep.data.splits import CLASSIFICATION
from regsweep.models import build_model
from regsweep.module import RegularizedModule
from regsweep.penalty import named_weights
from regsweep.records import (
    EPOCHS_FILE,
    FAILED,
    OK,
    PRUNED,
    WEIGHTS_FILE,
    JobInfo,
    ResultRecord,
    write_epochs_csv,
    write_result,
    write_weights,
)
from regsweep.report import print_run_summary
from regsweep.search.pruning import pruning_callbacks

log = logging.getLogger(__name__)

HPARAM_KEYS = ("data", "model", "regularizer", "optimizer", "augment")
# Packages whose classes trainer/callbacks/logger configs may instantiate (Hydra's execution whitelist).
TRUSTED_TARGETS = ["lightning.pytorch.*", "regsweep.*"]


def current_job(cfg: DictConfig) -> JobInfo:
    """Describe this job from Hydra's runtime config (or from ``paths.output_dir`` outside Hydra)."""
    if not HydraConfig.initialized():
        out = Path(cfg.paths.output_dir)
        return JobInfo(name=out.name, dir=str(out.resolve()))
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode.name == "MULTIRUN"
    return JobInfo(
        name=out.name,
        dir=str(out.resolve()),
        num=hc.job.num if multirun else None,
        overrides=list(hc.overrides.task),
        sweep_dir=str(Path(hc.sweep.dir).resolve()) if multirun else None,
    )


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The config keys that shape a run, flattened (``regularizer.l1``), for records and HParams."""
    params: dict[str, Any] = {"seed": cfg.get("seed")}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}", value)
        else:
            params[prefix] = node

    for group in HPARAM_KEYS:
        if group in cfg:
            walk(group, OmegaConf.to_container(cfg[group], resolve=True))
    params["trainer.max_epochs"] = cfg.trainer.get("max_epochs")
    return params


def objective_name(settings: Settings, task: str) -> str:
    if settings.optimized_metric != "auto":
        return settings.optimized_metric
    return "val/acc" if task == CLASSIFICATION else "val/loss"


def objective_names(cfg: DictConfig, settings: Settings, task: str) -> list[str]:
    """What a sweep optimizes: ``optimized_metric``, then a multi-objective search's ``search.extra_objectives``."""
    return [objective_name(settings, task), *(OmegaConf.select(cfg, "search.extra_objectives") or [])]


def best_epoch(history: list[dict[str, float]], monitor: str = "val/loss", mode: str = "min") -> dict[str, float]:
    """The epoch row the checkpoint callback keeps: the first with the lowest (mode=min) or highest ``monitor``."""
    rows = [row for row in history if monitor in row]
    if not rows:
        return {}
    pick = min if mode == "min" else max
    return dict(pick(rows, key=lambda row: row[monitor]))


def augmentation(settings: AugmentSettings) -> BatchTransform | None:
    """The training-batch transform of the augment group, or None when every transform is off."""
    if not settings.enabled:
        return None
    return lambda x, generator: augment_batch(x, settings, generator)


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    return [
        instantiate(item, _execution_whitelist_=TRUSTED_TARGETS)
        for item in (node or {}).values()
        if item is not None and "_target_" in item
    ]


def fit_and_test(cfg: DictConfig, settings: Settings, record: ResultRecord) -> float | tuple[float, ...]:
    """Train, test the best checkpoint, fill ``record`` and return the optimized metric (a tuple for several)."""
    if cfg.get("flush_denormal", True):
        # Acts on this thread; torch's intra-op threads inherit the mode when they start, which is
        # during this job's first parallel op as long as nothing before the job ran torch work.
        torch.set_flush_denormal(True)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    splits = load_splits(settings.data)
    datamodule = TensorDataModule(splits, settings.data.batch_size, settings.seed, augmentation(settings.augment),
                                  batches_per_step=settings.data.batches_per_step)
    net = build_model(settings.model, splits.input_shape, splits.output_size)
    module = RegularizedModule(
        net, splits.task, splits.num_classes, settings.regularizer, settings.optimizer,
        n_train=splits.n_train, max_epochs=cfg.trainer.max_epochs, seed=settings.seed,
    )
    objectives = objective_names(cfg, settings, splits.task)
    callbacks = _instantiate_all(cfg.get("callbacks")) + pruning_callbacks(cfg, objectives[0])
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, _execution_whitelist_=TRUSTED_TARGETS
    )
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        record.epochs = len(module.history)
        write_epochs_csv(Path(record.job.dir) / EPOCHS_FILE, module.history)
    checkpoint = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.best_model_path), None)
    trainer.test(module, datamodule=datamodule, ckpt_path="best" if checkpoint else None, verbose=False)
    write_weights(Path(record.job.dir) / WEIGHTS_FILE,
                  {name: w.detach().cpu().numpy() for name, w in named_weights(module.net).items()})

    record.metrics = {
        "final": {k: v for k, v in module.history[-1].items() if k != "epoch"},
        "best": best_epoch(module.history, *((checkpoint.monitor, checkpoint.mode) if checkpoint else ())),
        "test": dict(module.test_results),
    }
    _log_hparams(loggers, record, objectives[0])
    values = tuple(record.metrics["best"][name] for name in objectives)
    return values[0] if len(values) == 1 else values


def _log_hparams(loggers: list[Any], record: ResultRecord, objective: str) -> None:
    """Register hyperparameters with the real final metrics, so TensorBoard's HParams tab compares runs."""
    best, test = record.metrics["best"], record.metrics["test"]
    metrics = {f"hp/best_{k.replace('/', '_')}": v for k, v in best.items() if k.startswith("val/")}
    metrics.update({f"hp/{k.replace('/', '_')}": v for k, v in test.items()})
    metrics["hp/epochs"] = float(record.epochs)
    metrics["hp/objective"] = best[objective]
    params = {k: str(v) if isinstance(v, (list, tuple)) or v is None else v for k, v in record.params.items()}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics)
            logger.save()


def _drop_product_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def _quiet_lightning() -> None:
    """Send Lightning's log lines through Hydra's handlers only (console + train.log), once each.

    ``import lightning`` adds its own console handler while also propagating to the root logger,
    which prints every line twice under Hydra; its product tips and an internal deprecation
    warning (not actionable by users) are dropped.
    """
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    lightning_logger = logging.getLogger("lightning")
    lightning_logger.handlers.clear()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_drop_product_tips)  # the same object: added once per process


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run(cfg: DictConfig) -> float | tuple[float, ...]:
    """Run one job; always write its result record, then re-raise any failure."""
    _quiet_lightning()
    job = current_job(cfg)
    seed = cfg.get("seed") if isinstance(cfg.get("seed"), int) else None
    record = ResultRecord(status=FAILED, job=job, seed=seed, started_at=_now())
    started = time.perf_counter()
    try:
        settings = validate(cfg)
        record.params = flat_params(cfg)
        objective = fit_and_test(cfg, settings, record)
        record.status = OK
        return objective
    except optuna.TrialPruned as pruned:  # an Optuna search stopped this unpromising job early: not a failure
        record.status, record.error = PRUNED, str(pruned)
        log.info("job %s %s", job.name, pruned)
        raise
    except Exception as error:
        record.error = f"{type(error).__name__}: {error}"
        log.error("job %s failed: %s", job.name, record.error)
        raise
    finally:
        record.wall_time_s = round(time.perf_counter() - started, 3)
        record.finished_at = _now()
        write_result(Path(job.dir), record)
        if record.ok:
            print_run_summary(record)
