"""One training job, or a pack of jobs trained together: validate -> data -> model -> fit -> test -> record.

A job run on its own (``python train.py``, or each job of a multirun with ``pack.size=off``) is a
pack of one; a pack job (``pack.manifest`` set by the sweeper) trains the jobs the manifest lists,
whose dirs the sweeper prepared. Either way every job leaves its own ``result.json`` (status ok,
failed, pruned or interrupted), ``metrics.csv``, ``weights.npz``, kept checkpoint and TensorBoard
run in its own output dir; aggregation reads those, never the process's return value. One
member's failure (an invalid value, a diverging loss) never stops its pack-mates.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from regsweep.callbacks import BestCheckpoint, MemberCallback
from regsweep.config import Settings, validate
from regsweep.console import print_run_summary
from regsweep.data.datamodule import MemberData, PackDataModule
from regsweep.data.sources import load_splits
from regsweep.errors import JobFailed, describe
from regsweep.instantiate import instantiate_trusted
from regsweep.models import MemberModel
from regsweep.module import PackModule, MemberSpec, Stop
from regsweep.outputs import MemberOutputs
from regsweep.records import FAILED, OK, JobInfo, ResultRecord
from regsweep.seeding import SeedStreams
from regsweep.threads import configure_threads
from regsweep.trainer import lightning_arguments

log = logging.getLogger(__name__)

HPARAM_KEYS = ("data", "model", "regularizer", "optimizer", "augment")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


@dataclass
class Member:
    """One job of the pack: its resolved config, where it writes, and how it is doing."""

    id: int
    cfg: DictConfig
    job: JobInfo
    record: ResultRecord
    settings: Settings | None = None
    error: BaseException | None = None
    callbacks: list[Any] = field(default_factory=list)
    outputs: MemberOutputs | None = None
    final_state: dict[str, torch.Tensor] | None = None  # weights when it left the pack (or at the end)

    @property
    def checkpoint(self) -> BestCheckpoint | None:
        return next((cb for cb in self.callbacks if isinstance(cb, BestCheckpoint)), None)

    def fail(self, error: BaseException | str) -> None:
        self.record.status = FAILED
        self.record.error = error if isinstance(error, str) else describe(error)
        if isinstance(error, BaseException):
            self.error = error
        log.error("job %s failed: %s", self.job.name, self.record.error)


def _member(index: int, cfg: DictConfig, job: JobInfo) -> Member:
    seed = cfg.get("seed") if isinstance(cfg.get("seed"), int) else None
    return Member(index, cfg, job, ResultRecord(status=FAILED, job=job, seed=seed, started_at=_now()))


def job_info(hydra: DictConfig | None, cfg: DictConfig) -> JobInfo:
    """Describe a job from its Hydra config (or from ``paths.output_dir`` outside Hydra)."""
    if hydra is None:
        out = Path(cfg.paths.output_dir)
        return JobInfo(name=out.name, dir=str(out.resolve()))
    out = Path(hydra.runtime.output_dir)
    multirun = hydra.mode is not None and str(hydra.mode).endswith("MULTIRUN")
    return JobInfo(
        name=out.name, dir=str(out.resolve()), num=hydra.job.num if multirun else None,
        overrides=[str(o) for o in hydra.overrides.task],
        sweep_dir=str(Path(hydra.sweep.dir).resolve()) if multirun else None,
    )


def current_member(cfg: DictConfig) -> Member:
    """This Hydra job, run on its own."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    return _member(0, cfg, job_info(hydra, cfg))


def manifest_members(manifest: Path) -> tuple[str, list[Member]]:
    """The members of a pack job, as the sweeper planned them (dirs prepared, configs resolved)."""
    plan = json.loads(Path(manifest).read_text(encoding="utf-8"))
    members = []
    for index, entry in enumerate(plan["members"]):
        job = JobInfo(name=Path(entry["dir"]).name, dir=entry["dir"], num=entry["num"], overrides=entry["overrides"],
                      sweep_dir=plan["sweep_dir"], pack=plan["pack"])
        members.append(_member(index, OmegaConf.create(entry["config"]), job))
    return plan["pack"], members


class PackRun:
    """Trains the valid members of a pack together and leaves every member's outputs."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.timings: dict[str, float] = {}
        self.module: PackModule | None = None

    @property
    def training(self) -> list[Member]:
        return [m for m in self.members if m.record.status != FAILED or m.error is None and m.settings is not None]

    def run(self) -> None:
        started = time.perf_counter()
        try:
            self._validate()
            valid = [m for m in self.members if m.settings is not None]
            if valid:
                self._train(valid)
        except BaseException as error:  # also Ctrl-C: no member may be left without its record
            for member in self.members:
                if member.settings is not None and member.record.status != OK:
                    member.fail(error)
            raise
        finally:
            for member in self.members:
                member.record.wall_time_s = round(time.perf_counter() - started, 3)
                member.record.timings = dict(self.timings)
                member.record.finished_at = _now()
                MemberOutputs.write_record(member.job, member.record)

    def _validate(self) -> None:
        for member in self.members:
            try:
                member.settings = validate(member.cfg)
                member.record.params = flat_params(member.cfg)
                member.record.tags = list(member.settings.tags)
            except Exception as error:
                member.fail(error)

    def _phase(self, name: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[f"{name}_s"] = round(now - started, 3)
        return now

    def _train(self, members: list[Member]) -> None:
        t = time.perf_counter()
        first = members[0]
        configure_threads(first.cfg)
        if first.cfg.get("flush_denormal", True):
            # Acts on this thread; torch's intra-op threads inherit the mode when they start, which is
            # during this job's first parallel op as long as nothing before the job ran torch work.
            torch.set_flush_denormal(True)
        L.seed_everything(first.settings.seed, verbose=False)  # only for code outside the harness's own streams
        splits = load_splits(first.settings.data)
        for member in members:
            self._describe_data(member, splits)
            member.callbacks = self._member_callbacks(member)
            member.outputs = MemberOutputs(member.job, member.cfg)
        settings = first.settings
        plan = settings.batches
        trainer: L.Trainer = instantiate_trusted(
            first.cfg.trainer, callbacks=self._pack_callbacks(first) + [c for m in members for c in m.callbacks],
            **lightning_arguments(plan.max_epochs, plan.min_epochs))
        device = trainer.strategy.root_device
        module = PackModule(settings.model, settings.optimizer, [self._spec(m, splits, device) for m in members],
                            settings.task, splits.input_shape, splits.output_size, plan.max_epochs, plan.min_epochs,
                            plan.max_steps)
        self.module = module
        by_id = {m.id: m for m in members}
        module.on_member_stop = lambda member, stop: self._stopped(by_id[member], stop)
        module.metric_sink = lambda member, row, epoch: by_id[member].outputs.log_epoch(row, epoch)
        if any(m.outputs.histograms for m in members):
            module.histogram = lambda member, tag, values, epoch: by_id[member].outputs.histogram(tag, values, epoch)
        data = {m.id: MemberData(SeedStreams(m.settings.seed).generator("order", device), m.settings.augment,
                                 SeedStreams(m.settings.seed).generator("augment", device)) for m in members}
        datamodule = PackDataModule(splits, settings.data.batch_size, data, plan, settings.minibatches_per_step,
                                    settings.data.split_seed)
        t = self._phase("setup", t)
        if settings.train:
            trainer.fit(module, datamodule=datamodule)
            for member in members:
                if member.id in module.active:
                    member.final_state = module.member_state(member.id)
                    member.record.status = OK
        t = self._phase("fit", t)
        tested = [m for m in members if m.record.status == OK]
        if tested and settings.test:
            module.load_member_states({m.id: self._kept_state(m) for m in tested})
            datamodule.keep([m.id for m in tested])
            trainer.test(module, datamodule=datamodule, verbose=False)
        t = self._phase("test", t)
        for member in members:
            self._finish(member, module)
        self._phase("write", t)

    def _describe_data(self, member: Member, splits: Any) -> None:
        s = member.settings
        member.record.data = {"task": s.task, "n_train": splits.n_train, "n_val": len(splits.x_val),
                              "n_test": len(splits.x_test)}
        l1, l2 = s.regularizer.applied(splits.n_train)
        member.record.penalty = {"l1": s.regularizer.l1, "l2": s.regularizer.l2, "l1_applied": l1, "l2_applied": l2,
                                 "scale_by_n_train": s.regularizer.scale_by_n_train}

    def _spec(self, member: Member, splits: Any, device: torch.device) -> MemberSpec:
        s, streams = member.settings, SeedStreams(member.settings.seed)
        l1, l2 = s.regularizer.applied(splits.n_train)
        return MemberSpec(
            id=member.id, l1=l1, l2=l2, grad_noise_std=s.regularizer.grad_noise_std, lr=s.optimizer.lr,
            weight_decay=s.optimizer.weight_decay,
            model=MemberModel(s.model.dropout, streams.generator("init"), streams.generator("dropout", device)),
            grad_noise=streams.generator("grad_noise", device),
        )

    def _member_callbacks(self, member: Member) -> list[MemberCallback]:
        """The member-aware callbacks of a member's config, bound to it."""
        built = [instantiate_trusted(node) for node in (member.cfg.get("callbacks") or {}).values()
                 if node is not None and "_target_" in node]
        return [cb.bind(member.id) for cb in built if isinstance(cb, MemberCallback)]

    def _pack_callbacks(self, member: Member) -> list[Any]:
        """Plain Lightning callbacks (not member-aware) act on the whole pack: built once, from one member."""
        built = [instantiate_trusted(node) for node in (member.cfg.get("callbacks") or {}).values()
                 if node is not None and "_target_" in node]
        return [cb for cb in built if not isinstance(cb, MemberCallback)]

    def _stopped(self, member: Member, stop: Stop) -> None:
        member.final_state = self.module.member_state(member.id)
        member.record.stop_reason = stop.reason
        if stop.status == FAILED:
            member.fail(stop.error or stop.reason)
            return
        member.record.status = stop.status
        if stop.status != OK:  # pruned: the reason is why the job has no result
            member.record.error = stop.reason
        log.info("job %s: %s (epoch %d)", member.job.name, stop.reason, stop.epoch)

    @staticmethod
    def _kept_state(member: Member) -> dict[str, torch.Tensor]:
        checkpoint = member.checkpoint
        if checkpoint is not None and checkpoint.best_state is not None:
            return checkpoint.best_state
        return member.final_state

    def _finish(self, member: Member, module: PackModule) -> None:
        history = module.history[member.id]
        record = member.record
        record.epochs = len(history)
        member.outputs.write_epochs(history)
        if record.status != OK or not history:
            return
        checkpoint = member.checkpoint
        kept_epoch = checkpoint.best_epoch if checkpoint is not None and checkpoint.best_state is not None \
            else int(history[-1]["epoch"])
        best = next(row for row in history if int(row["epoch"]) == kept_epoch)
        record.metrics = {"final": {k: v for k, v in history[-1].items() if k != "epoch"}, "best": dict(best),
                          "test": module.test_results.get(member.id, {})}
        if member.id in module.active:
            member.outputs.write_weights(module.member_weights(member.id))
        member.outputs.write_checkpoint(self._kept_state(member), kept_epoch, checkpoint)
        member.outputs.log_hparams(record, member.settings.objective)

    def objectives(self, member: Member) -> float | tuple[float, ...]:
        """What a sweep optimizes, from the kept epoch: ``optimized_metric``, then a search's extra objectives."""
        names = [member.settings.objective, *(OmegaConf.select(member.cfg, "search.extra_objectives") or [])]
        values = tuple(member.record.metrics["best"][name] for name in names)
        return values[0] if len(values) == 1 else values


def _drop_product_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Send Lightning's log lines through Hydra's handlers only (console + train.log), once each.

    ``import lightning`` adds its own console handler while also propagating to the root logger,
    which prints every line twice under Hydra; its product tips and an internal deprecation
    warning (not actionable by users) are dropped.
    """
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    logging.getLogger("lightning").handlers.clear()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_drop_product_tips)  # the same object: added once per process


def run(cfg: DictConfig) -> Any:
    """The task function of train.py: a pack job trains its manifest's members, any other job itself.

    A job on its own returns its objective(s) and raises its error; a pack job returns
    ``{job number: objective}`` for the members that completed (the others' records say why not).
    """
    quiet_lightning()
    manifest = OmegaConf.select(cfg, "pack.manifest")
    if manifest:
        name, members = manifest_members(Path(manifest))
        pack = PackRun(members)
        with MemberOutputs.logging_into([m.job for m in members]):
            pack.run()
        return {m.job.num: pack.objectives(m) for m in members if m.record.status == OK}
    member = current_member(cfg)
    pack = PackRun([member])
    pack.run()
    if member.record.status == OK:
        print_run_summary(member.record)
        return pack.objectives(member)
    if member.error is not None:
        raise member.error
    raise JobFailed(f"job {member.job.name} {member.record.status}: {member.record.error}")
