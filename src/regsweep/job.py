"""One training job, or a pack of jobs trained together: validate -> data -> model -> fit -> test -> record.

A job run on its own (``python train.py``, or each job of a multirun with ``pack.size=off``) is a
pack of one; a pack job (``pack.manifest`` set by the sweeper) trains the jobs the manifest lists,
whose dirs the sweeper prepared. Either way every job leaves its own ``result.json`` (status ok,
failed, pruned or interrupted), ``metrics.csv``, ``weights.npz``, checkpoints and TensorBoard run
in its own output dir; aggregation reads those, never the process's return value. One member's
failure (an invalid value, a diverging loss) never stops its pack-mates.

A job whose dir holds ``checkpoints/last.ckpt`` (an interrupted job of a resumed sweep), or that is
given ``ckpt_path``, continues from that checkpoint; ``train=false`` only evaluates it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from regsweep import checkpoints, packing
from regsweep.training.callbacks import BestCheckpoint, MemberCallback
from regsweep.config import Settings, answer_on, validate
from regsweep.console import count, print_run_summary
from regsweep.data.batches import batch_rows
from regsweep.data.datamodule import EVAL_MEMBER_ROWS, PackDataModule
from regsweep.data.sources import DATASETS, load_splits
from regsweep.data.splits import Splits
from regsweep.errors import ConfigError, Interrupted, JobFailed, describe
from regsweep.instantiate import instantiate_trusted, user_code_importable
from regsweep.interrupts import as_interrupted, stop_at_safe_points
from regsweep import networks
from regsweep.networks import MemberModel, check_network
from regsweep.memberwise import MemberSpec, MemberValues
from regsweep.training.module import PackModule, Stop
from regsweep.outputs import MemberOutputs, member_histograms, quiet_writer_threads
from regsweep.training.optim import OPTIMIZERS
from regsweep.provenance import environment
from regsweep.records import FAILED, INTERRUPTED, OK, RESULT_FILE, JobInfo, ResultRecord
from regsweep.seeding import SeedStreams
from regsweep.sweep.lock import pack_claim
from regsweep.sweep.plan import PackManifest
from regsweep.threads import configure_threads
from regsweep.trainer import BatchPlan, lightning_arguments, training_device

log = logging.getLogger(__name__)

HPARAM_KEYS = ("data", "model", "regularizer", "optimizer", "augment")
TRAINING_STREAMS = ("order", "dropout", "augment", "grad_noise")  # a member's while it trains (and in its checkpoints)


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
    params["answer_on"] = answer_on(cfg)  # what the sweep's summary answers on (the aggregation reads it here)
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
    callbacks: dict[str, MemberCallback] = field(default_factory=dict)  # its member-aware ones, by config name
    outputs: MemberOutputs | None = None
    streams: dict[str, torch.Generator] = field(default_factory=dict)
    start: dict[str, Any] | None = None  # the checkpoint it continues from (last.ckpt), if any
    snapshot: tuple[dict[str, Any], dict[str, Any]] | None = None  # (the pack's, its own) state after the last epoch
    final_state: dict[str, torch.Tensor] | None = None  # weights when it left the pack (or at the end)
    done: bool = False  # its outcome is decided (it stopped, failed or finished training)
    recorded: bool = False  # its result.json is written: whatever happens to its pack afterwards, it keeps it
    unrecorded: str | None = None  # how it ended, when its result.json could not be written (the sweep says it)

    @property
    def checkpoint(self) -> BestCheckpoint | None:
        return next((cb for cb in self.callbacks.values() if isinstance(cb, BestCheckpoint)), None)

    @property
    def last_path(self) -> Path:
        return Path(self.job.dir) / checkpoints.CHECKPOINT_DIR / checkpoints.LAST_FILE

    @property
    def start_epoch(self) -> int:
        return self.start.get("epochs", 0) if self.start else 0

    @property
    def ended_before(self) -> dict[str, Any] | None:
        """How training ended, when its own last.ckpt is that of a job that stopped or finished (then it is only
        tested and written again: training on would not be the job that ran)."""
        return self.start.get("ended") if self.start and self.settings.ckpt_path is None else None

    def end(self, status: str, stop_reason: str | None = None, steps: int | None = None,
            error: BaseException | str | None = None) -> None:
        """The one place a member's outcome is decided: how training ended for it (OK, and why it stopped before
        trainer.max_epochs; PRUNED; INTERRUPTED; FAILED), its steps, and what went wrong (the record's error)."""
        self.done = True
        self.record.status, self.record.stop_reason = status, stop_reason
        if steps is not None:
            self.record.steps = steps
        if error is not None:
            self.record.error = error if isinstance(error, str) else describe(error)
            self.error = error if isinstance(error, BaseException) else self.error
        if status == FAILED:
            log.error("job %s failed: %s", self.job.name, self.record.error)

    def fail(self, error: BaseException | str) -> None:
        self.end(FAILED, self.record.stop_reason, error=error)


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


def set_tf32(enabled: bool) -> None:
    """TensorFloat-32 on or off for both float32 matrix products and cuDNN convolutions (torch's defaults differ:
    products in full float32, convolutions in TF32), so a CNN's numbers on a GPU carry float32's precision unless
    asked otherwise. Through the flags Lightning's own check reads (``get_float32_matmul_precision``)."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def manifest_members(path: Path) -> tuple[str, list[Member]]:
    """The members of a pack job, as the sweeper planned them (dirs prepared, configs resolved)."""
    manifest = PackManifest.load(path)
    members = []
    for index, entry in enumerate(manifest.members):
        job = JobInfo(name=Path(entry.dir).name, dir=entry.dir, num=entry.num, overrides=entry.overrides,
                      sweep_dir=manifest.sweep_dir, pack=manifest.pack, sweep_id=manifest.sweep_id)
        members.append(_member(index, OmegaConf.create(entry.config), job))
    return manifest.pack, members


class EpochReport(Callback):
    """The job's ear at the end of every training epoch: Lightning calls it after the module has measured the epoch
    (and before the module retires the members that stop), and it has the job write what the module reports."""

    def __init__(self, run: "PackRun", members: list[Member]) -> None:
        self.run, self.members = run, members

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run.report_epoch(self.members)


class PackRun:
    """Trains the valid members of a pack together and leaves every member's outputs: it builds the module, which
    trains and reports; what it reports the job writes (EpochReport), the module never calls back into the job."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.timings: dict[str, float] = {}
        self.module: PackModule | None = None
        self.splits: Splits | None = None
        self.saved_at = time.perf_counter()  # last.ckpt: first written last_checkpoint_every_s after the start

    def run(self) -> None:
        self.started = time.perf_counter()
        try:
            self._run()
        finally:
            for member in self.members:
                if not member.recorded:
                    self._record(member)

    def _run(self) -> None:
        try:
            self._validate()
            valid = [m for m in self.members if m.settings is not None and not m.done]
            if valid:
                self._prepare(valid)
                valid = [m for m in valid if not m.done]
                # members train together from one epoch; those that had ended are only tested again
                starts = sorted({(m.start_epoch, m.ended_before is not None) for m in valid})
                for start in starts:
                    for chunk in self._chunks([m for m in valid if (m.start_epoch, m.ended_before is not None) == start]):
                        self._train(chunk)
        except BaseException as error:  # also a signal: no member may be left without its record
            stop = as_interrupted(error)
            if isinstance(error, OSError):
                disk_failed()
            for member in self.members:
                if member.settings is not None and not member.done:
                    self._interrupted(member, stop) if stop is not None else member.fail(error)
            raise stop if stop is not None else error

    def _record(self, member: Member) -> None:
        """Write a member's result.json, once its outcome is decided: it stopped, finished, failed or was stopped.
        A disk that refuses it leaves the member ``unrecorded``, saying how it ended, for the sweep to report."""
        member.record.wall_time_s = round(time.perf_counter() - self.started, 3)
        member.record.timings = dict(self.timings)
        member.record.finished_at = _now()
        member.recorded = True
        try:
            MemberOutputs.write_record(member.job, member.record)
        except OSError as error:
            disk_failed()
            ended = f"{member.record.error}; " if member.record.error else f"it ended {member.record.status}, but "
            member.unrecorded = f"{ended}its {RESULT_FILE} could not be written: {describe(error)}"
            log.error("job %s: %s", member.job.name, member.unrecorded)

    def _validate(self) -> None:
        for member in self.members:
            try:
                member.settings = validate(member.cfg)
                member.record.params = flat_params(member.cfg)
                member.record.tags = list(member.settings.tags)
                member.start = self._checkpoint_to_continue(member)
            except Exception as error:
                member.fail(error)

    @staticmethod
    def _checkpoint_to_continue(member: Member) -> dict[str, Any] | None:
        """``ckpt_path`` if given; else the job's own last.ckpt when it was written by this very config
        (an interrupted job of a resumed sweep). A given checkpoint may continue a job with other
        trainer settings (more epochs); its own checkpoint only the same job."""
        given = member.settings.ckpt_path
        if given is None:
            if not member.last_path.exists():
                return None
            try:
                payload = checkpoints.read_checkpoint(member.last_path, (checkpoints.LAST_FORMAT,))
            except checkpoints.CheckpointError as error:  # say, another version's: the start gives the same numbers
                log.warning("job %s: %s; training from the start", member.job.name, error)
                return None
            if checkpoints.same_job(payload, member.cfg):
                how = "had ended; testing and writing it again from" if payload.get("ended") else "continues from"
                log.info("job %s %s %s (after epoch %d)", member.job.name, how, member.last_path, payload["epochs"])
                return payload
            log.info("job %s: %s belongs to another config; training from the start", member.job.name,
                     member.last_path)
            return None
        kinds = (checkpoints.LAST_FORMAT,) if member.settings.train else (checkpoints.LAST_FORMAT,
                                                                          checkpoints.BEST_FORMAT)
        payload = checkpoints.read_checkpoint(Path(given), kinds)
        if not member.settings.train:
            checkpoints.check_same_network(payload, member.cfg, Path(given))
        else:
            checkpoints.check_same_training(payload, member.cfg, Path(given))
            done = payload["epochs"]  # epochs are numbered from 0: the next one is number `done`
            log.info("job %s continues from %s at epoch %d (%s done)", member.job.name, given, done,
                     count(done, "epoch"))
        return payload

    def _timed(self, name: str, work: Callable[[], Any]) -> None:
        """Run ``work``, adding its time to ``timings[name_s]`` (part of fit_s: where an epoch's time goes)."""
        started = time.perf_counter()
        work()
        self.timings[f"{name}_s"] = round(self.timings.get(f"{name}_s", 0.0) + time.perf_counter() - started, 4)

    def _phase(self, name: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[f"{name}_s"] = round(self.timings.get(f"{name}_s", 0.0) + now - started, 3)
        return now

    def _prepare(self, members: list[Member]) -> None:
        first = members[0].settings
        threads = configure_threads(first.threads)
        if first.flush_denormal:
            # Acts on this thread; torch's intra-op threads inherit the mode when they start, which is
            # during this job's first parallel op as long as nothing before the job ran torch work.
            torch.set_flush_denormal(True)
        set_tf32(first.tf32)
        L.seed_everything(first.seed, verbose=False)  # for what draws from torch's global generator
        self.splits = load_splits(first.data)
        self.family = networks.family(first.model, self.splits.input_shape, self.splits.output_size)
        try:
            for member in members:
                check_model_against_data(member.settings)
        except ConfigError as error:  # the network does not fit the data: before any training, each member says so
            for member in members:
                member.fail(error)
            return
        for member in members:
            member.record.threads = threads
            self._describe_data(member)

    def _chunks(self, members: list[Member]) -> list[list[Member]]:
        """With ``pack.size=auto``, the members in as many chunks as the device's memory needs (on a CPU, of at
        most ``packing.CPU_MAX_MEMBERS``)."""
        first = members[0]
        alone = self.family.unvectorizable() if len(members) > 1 else None
        if alone is not None:
            log.info("%s: %s; its jobs train one at a time (the same numbers, no speed-up)", self._who(members), alone)
            return [[member] for member in members]
        if len(members) == 1 or first.settings.pack_size != "auto":
            return [members]
        device = training_device(first.cfg.trainer)
        generator = torch.Generator()
        net = self.family.single(MemberModel(0.0, generator, generator))
        batch_size = batch_rows(first.settings.data.batch_size, self.splits.n_train)
        optimizer = first.settings.optimizer
        per_member = packing.member_bytes(*packing.footprint(net, self.splits.input_shape), batch_size,
                                          OPTIMIZERS[optimizer.name].states(optimizer), EVAL_MEMBER_ROWS)
        size, limit = packing.chunk_size(per_member, packing.memory_budget(device), device, len(members))
        if size < len(members):
            log.info("%s: %s (%s)", self._who(members), packing.describe_pack(len(members), size), limit)
        return packing.split_evenly(members, math.ceil(len(members) / size))

    def _train(self, members: list[Member]) -> None:
        t = time.perf_counter()
        settings, plan, start = members[0].settings, members[0].settings.batches, members[0].start_epoch
        built = [self._callbacks(member) for member in members]
        for member, (member_aware, _) in zip(members, built):
            member.callbacks = member_aware
            member.outputs = MemberOutputs(member.job, member.cfg, purge_step=start if member.start else None)
        plain = built[0][1]  # plain Lightning callbacks act on the whole pack: the first member's
        trainer: L.Trainer = instantiate_trusted(  # plain containers: Lightning reads max_time={minutes: 5} as a dict
            members[0].cfg.trainer, _convert_="all",
            # the report last: the members' callbacks may still stop them at the epoch's end
            callbacks=[*plain, *(c for m in members for c in m.callbacks.values()), EpochReport(self, members)],
            **lightning_arguments(members[0].cfg.trainer, max(plan.max_epochs - start, 0), max(plan.min_epochs - start, 0)),
            logger=members[0].outputs.trainer_logger if len(members) == 1 else False,  # a job alone: callbacks may log
            enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in plain))  # Lightning's own, if configured
        device = trainer.strategy.root_device
        ran_in = environment(device)
        for member in members:
            member.record.environment = dict(ran_in)
        log.info("%s: %s, %s, %s; %d of %d epochs left, on %s", self._who(members), settings.data.label,
                 self.family.description, settings.optimizer.name, plan.max_epochs - start, plan.max_epochs, device)
        for member in members:
            member.streams = {name: SeedStreams(member.settings.seed).generator(name, device) for name in TRAINING_STREAMS}
        specs = {m.id: self._spec(m) for m in members}
        module = self.module = self._module(members, list(specs.values()), start)
        size = self.family.size()
        for member in members:
            member.record.model = dict(size)
        datamodule = PackDataModule(self.splits, settings.data.batch_size, specs, plan, settings.minibatches_per_step,
                                    settings.data.split_seed, module.progress)
        self.trainer, self.datamodule = trainer, datamodule
        t = self._phase("setup", t)
        fit_ended = None  # how training ended for the members that train to the end
        if members[0].ended_before is None:  # (a chunk's members all ended before, or none did)
            if settings.train and start < plan.max_epochs:
                with stop_at_safe_points(lambda stop: setattr(module, "interrupt", stop)):
                    trainer.fit(module, datamodule=datamodule)
            fit_ended = {"stop_reason": fit_end_reason(trainer, module, plan), "steps": module.steps_done}
        for member in members:
            if member.id in module.active:
                ended = member.ended_before or fit_ended
                member.final_state = module.member_state(member.id)
                member.end(OK, ended["stop_reason"], ended["steps"])
        t = self._phase("fit", t)
        if module.epoch_times:  # the first epoch pays one-off costs: the steady epoch is the median of the others
            self.timings["first_epoch_s"] = round(module.epoch_times[0], 4)
            self.timings["epoch_s"] = round(statistics.median(module.epoch_times[1:] or module.epoch_times), 4)
        self._complete([m for m in members if not m.recorded], module,
                       lambda tested: trainer.test(tested, datamodule=datamodule, verbose=False))

    def _complete(self, members: list[Member], module: PackModule, test: Callable[[PackModule], Any]) -> None:
        """Test the kept weights of the members that completed (``module`` then holds those), write every member's
        outputs and record. Called for the members that leave a pack when they stop, and for the rest at the end."""
        t = time.perf_counter()
        completed = [m for m in members if m.record.status == OK]
        if completed:
            module.load_member_states({m.id: self._kept_state(m) for m in completed})
            if completed[0].settings.test:
                test(module)
        t = self._phase("test", t)
        for member in members:
            try:
                self._finish(member, module)
            except OSError as error:  # e.g. a full disk: this member's outputs are incomplete, its pack-mates' need not be
                disk_failed()
                member.fail(error)
                with contextlib.suppress(OSError):  # its loggers' last flush may hit the same disk
                    member.outputs.close()
            self._record(member)
        self._phase("write", t)

    def _module(self, members: list[Member], specs: list[MemberSpec], start: int) -> PackModule:
        settings, plan = members[0].settings, members[0].settings.batches
        module = PackModule(self.family, settings.optimizer, specs, settings.task,
                            plan.max_epochs, plan.min_epochs, plan.max_steps, epoch_offset=start,
                            steps_done=members[0].start.get("steps", 0) if members[0].start else 0)
        if members[0].start:
            self._continue(members, module)
        return module

    def _continue(self, members: list[Member], module: PackModule) -> None:
        """Put back everything the members' checkpoints saved: weights, optimizer, streams, callbacks, rows."""
        if not members[0].settings.train:  # evaluation only: the checkpoint's weights
            module.load_member_states({m.id: m.start.get("state_dict") or m.start["training"]["model"]
                                       for m in members})
            return
        module.resume({m.id: m.start["training"] for m in members})
        for member in members:
            # not the "init" stream: a continued member's nets are always overwritten by its saved weights
            checkpoints.restore_generators(member.streams, member.start["streams"])
            for name, callback in member.callbacks.items():
                callback.load_state_dict(member.start["callbacks"][name])
            if member.checkpoint is not None:
                member.checkpoint.best_state = member.start.get("best_state")
            module.history[member.id] = list(member.start["history"])

    @staticmethod
    def _who(members: list[Member]) -> str:
        return f"job {members[0].job.name}" if len(members) == 1 else f"pack of {len(members)} jobs"

    def report_epoch(self, members: list[Member]) -> None:
        """What the pack's module reports at an epoch's end, written out: each member's row and weight histograms,
        the pack's state (and last.ckpt when due), and the members that leave the pack, finished now."""
        module = self.module
        active = [m for m in members if m.id in module.active]
        self._timed("log", lambda: [m.outputs.log_epoch(module.rows[m.id], module.epoch) for m in active])
        if any(m.outputs.histograms for m in active):
            self._timed("histograms", lambda: self._write_histograms(active))
        self._timed("checkpoints", lambda: self._epoch_done(active))
        stopping = module.stopping
        if stopping:
            self._stopped(stopping)

    def _write_histograms(self, members: list[Member]) -> None:
        """Every member's histogram of each penalized weight, computed for the whole pack at once."""
        for name, weights in self.module.penalized_weights().items():
            for member, histogram in zip(members, member_histograms(weights)):
                member.outputs.histogram(f"weights/{name}", histogram, self.module.epoch)

    def _epoch_done(self, members: list[Member]) -> None:
        """After each epoch: a line in the log; remember the pack's state; write last.ckpt when it is due."""
        self._log_epoch(members)
        snapshot = self.module.snapshot()
        for member in members:  # the per-member parts are cut from the snapshot only when written
            member.snapshot = (snapshot, self._member_extras(member))
        every = members[0].settings.last_checkpoint_every_s if members else None
        if members and every is not None and time.perf_counter() - self.saved_at >= every:
            for member in members:
                self._save_last(member)
            self.saved_at = time.perf_counter()

    def _log_epoch(self, members: list[Member]) -> None:
        if not members:
            return
        rows = [self.module.history[m.id][-1] for m in members]
        epoch, objective = int(rows[0]["epoch"]), members[0].settings.objective
        values = [row[objective] for row in rows if objective in row]
        shown = f"{values[0]:.4g}" if len(values) == 1 else f"{min(values):.4g}..{max(values):.4g}"
        log.info("epoch %d (%d of %d): %s training, %s %s, train/loss %.4g", epoch, epoch + 1,
                 members[0].settings.batches.max_epochs,
                 self._who(members) if len(members) > 1 else "1 job", objective, shown,
                 sum(row["train/loss"] for row in rows) / len(rows))

    def _member_extras(self, member: Member) -> dict[str, Any]:
        """The member's own state beside the pack's tensors: its random streams, callbacks, rows so far."""
        checkpoint = member.checkpoint
        return {
            "streams": checkpoints.generator_states(member.streams),
            "callbacks": {name: cb.state_dict() for name, cb in member.callbacks.items()},
            "best_state": None if checkpoint is None else checkpoint.best_state,
            "history": list(self.module.history[member.id]),
        }

    def _last_checkpoint(self, member: Member) -> dict[str, Any]:
        snapshot, extras = member.snapshot
        training = self.module.training_state(member.id, snapshot)
        record = member.record
        ended = {"stop_reason": record.stop_reason, "steps": record.steps} if member.done and record.ok else None
        return {"digest": checkpoints.training_digest(member.cfg), "epochs": training["epochs"],
                "steps": training["steps"], "config": OmegaConf.to_container(member.cfg, resolve=True),
                "training": training, "ended": ended, **extras}

    def _save_last(self, member: Member) -> None:
        if member.snapshot is not None and member.settings.checkpointing:
            checkpoints.write_checkpoint(member.last_path, checkpoints.LAST_FORMAT, self._last_checkpoint(member))

    def _interrupted(self, member: Member, stop: Interrupted) -> None:
        """A signal stopped training: save where the member was, so that the same command continues it."""
        self._save_last(member)
        epochs = member.snapshot[0]["epochs"] if member.snapshot is not None else 0
        where = f"continues from epoch {epochs}" if epochs else "restarts from the beginning (no epoch finished)"
        member.end(INTERRUPTED, error=f"{stop} during epoch {self.module.epoch if self.module else 0}; resuming {where}")
        if member.snapshot is not None:
            member.record.epochs = epochs
            member.outputs.write_epochs(member.snapshot[1]["history"])
        log.warning("job %s: %s", member.job.name, member.record.error)

    def _describe_data(self, member: Member) -> None:
        s, splits = member.settings, self.splits
        member.record.data = {"task": s.task, "label": s.data.label, "n_train": splits.n_train,
                              "n_val": len(splits.x_val), "n_test": len(splits.x_test),
                              "batch_size": batch_rows(s.data.batch_size, splits.n_train)}
        if splits.classes:
            member.record.data["classes"] = list(splits.classes)
        l1, l2 = s.regularizer.applied(splits.n_train)
        member.record.penalty = {"l1": s.regularizer.l1, "l2": s.regularizer.l2, "l1_applied": l1, "l2_applied": l2,
                                 **s.regularizer.convention}
        if s.data.batch_size is not None and s.data.batch_size >= splits.n_train:
            log.info("job %s: data.batch_size=%d >= %d training samples: every step is a full batch",
                     member.job.name, s.data.batch_size, splits.n_train)

    def _spec(self, member: Member) -> MemberSpec:
        init = SeedStreams(member.settings.seed).generator("init")  # never continued: a resumed member loads weights
        return MemberSpec(member.id, MemberValues.of(member.settings, self.splits.n_train),
                          {**member.streams, "init": init})

    @staticmethod
    def _callbacks(member: Member) -> tuple[dict[str, MemberCallback], list[Any]]:
        """A member's configured callbacks: the member-aware ones bound to it (by config name, which its
        checkpoint keys their state by), and the plain Lightning ones."""
        built = {name: instantiate_trusted(node) for name, node in (member.cfg.get("callbacks") or {}).items()
                 if node is not None and "_target_" in node}
        return ({name: cb.bind(member.id, member.job.name) for name, cb in built.items()
                 if isinstance(cb, MemberCallback)},
                [cb for cb in built.values() if not isinstance(cb, MemberCallback)])

    def _stopped(self, stops: dict[int, Stop]) -> None:
        """Members leave the pack: each is tested and written now, so that nothing that happens to the pack
        afterwards (a signal, a kill, a full disk) can take its result away."""
        leaving = [member for member in self.members if member.id in stops]
        for member in leaving:
            stop = stops[member.id]
            member.final_state = self.module.member_state(member.id)
            # a failed or pruned member's reason is why it has no result
            member.end(stop.status, stop.reason, self.module.steps_done,
                       None if stop.status == OK else stop.error or stop.reason)
            if stop.status != FAILED:
                log.info("job %s: %s (stopped after %s)", member.job.name, stop.reason, count(stop.epoch + 1, "epoch"))
        context = self.trainer.precision_plugin.test_step_context  # the trainer is busy fitting: test outside it
        self._complete(leaving, self.module.sibling([m.id for m in leaving]),
                       lambda tested: tested.test_outside_fit(self.datamodule.test_dataloader(), context()))

    @staticmethod
    def _kept_state(member: Member) -> dict[str, torch.Tensor]:
        checkpoint = member.checkpoint
        if checkpoint is not None and checkpoint.best_state is not None:
            return checkpoint.best_state
        return member.final_state

    def _finish(self, member: Member, tested: PackModule) -> None:
        """Write a member's outputs; ``tested`` holds its kept weights, and their test results, when it completed."""
        history = self.module.history[member.id]
        record = member.record
        record.epochs = len(history)
        member.outputs.write_epochs(history)
        if record.status != OK:
            member.outputs.close()
            return
        checkpoint = member.checkpoint
        kept = checkpoint is not None and checkpoint.best_state is not None
        kept_epoch = checkpoint.best_epoch if kept else int(history[-1]["epoch"]) if history else None
        best = next((row for row in history if int(row["epoch"]) == kept_epoch), {})
        record.metrics = {"final": {k: v for k, v in history[-1].items() if k != "epoch"} if history else {},
                          "best": dict(best), "test": tested.test_results.get(member.id, {})}
        member.outputs.write_weights(tested.member_weights(member.id))
        member.outputs.write_model(tested.member_state(member.id))
        if member.id in tested.test_predictions and DATASETS[member.settings.data.name].surface:
            member.outputs.write_predictions(self.splits.x_test, self.splits.y_test, tested.test_predictions[member.id])
        if history and member.settings.checkpointing:
            member.outputs.write_best(self._kept_state(member), kept_epoch, checkpoint)
            self._save_last(member)  # the end state: ckpt_path=<it> trains the job further
        member.outputs.log_hparams(record, member.settings.objective)
        member.outputs.close()
        test = ", ".join(f"{k}={v:.4g}" for k, v in record.metrics["test"].items())
        log.info("job %s: ok after %s (%s); kept epoch %s; %s", member.job.name, count(record.epochs, "epoch"),
                 record.stop_reason or "all epochs", kept_epoch, test or "not tested")

    def objectives(self, member: Member) -> float | tuple[float, ...] | None:
        """What a sweep optimizes, from the kept epoch: ``optimized_metric``, then a search's extra objectives."""
        best = member.record.metrics.get("best")
        if not best:
            return None  # evaluation only
        names = [member.settings.objective, *(OmegaConf.select(member.cfg, "search.extra_objectives") or [])]
        values = tuple(best[name] for name in names)
        return values[0] if len(values) == 1 else values


_CHECKED: dict[str, ConfigError | None] = {}  # a network and data already checked in this process -> its refusal


def check_model_against_data(settings: Settings) -> None:
    """A job's network fits its data (its output's shape) and a penalty that is on has weights to cover: a ConfigError
    before any training. Loads the data (once per process: the pack job of an in-process sweep reuses it)."""
    key = json.dumps([settings.model, settings.data, bool(settings.regularizer.l1 or settings.regularizer.l2)],
                     default=lambda value: vars(value), sort_keys=True)
    if key not in _CHECKED:
        splits = load_splits(settings.data)
        family = networks.family(settings.model, splits.input_shape, splits.output_size)
        try:
            check_network(family, [settings], splits.output_size)
            _CHECKED[key] = None
        except ConfigError as error:
            _CHECKED[key] = error
    if _CHECKED[key] is not None:
        raise _CHECKED[key]


def fit_end_reason(trainer: L.Trainer, module: PackModule, plan: BatchPlan) -> str | None:
    """Why the members still in the pack ended before trainer.max_epochs; None when they trained them all."""
    trained = module.epoch_offset + trainer.current_epoch
    if trained >= plan.max_epochs or not module.epoch_times:
        return None
    if plan.max_steps is not None and module.steps_done >= plan.max_steps:
        return f"trainer.max_steps={plan.max_steps} reached after {count(trained, 'epoch')}"
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
    if timer is not None and (timer.time_remaining("train") or 0) <= 0:
        return f"trainer.max_time reached after {count(trained, 'epoch')}"
    return f"a Lightning callback stopped the trainer after {count(trained, 'epoch')} of {plan.max_epochs}"


def disk_failed() -> None:
    """The disk refused a write: log files (each job's train.log, Hydra's) fail from now on too; their handlers
    drop such lines quietly instead of printing a traceback for each (the jobs' errors say what happened)."""
    logging.raiseExceptions = False


def _drop_product_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Send Lightning's log lines through Hydra's handlers only (console + train.log), once each.

    ``import lightning`` adds its own console handler while also propagating to the root logger,
    which prints every line twice under Hydra; its product tips and an internal deprecation
    warning (not actionable by users) are dropped.
    """
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Lightning looks for a SLURM job when fit() starts; a job here is one process whoever launched it.
    warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system.*")
    # A Lightning step is a group of minibatches here (each with its own optimizer step): few per epoch by design
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    logging.getLogger("lightning").handlers.clear()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_drop_product_tips)  # the same object: added once per process


def refuse_a_sweep_without_multirun() -> None:
    """``python train.py experiment=regression`` (no -m) would silently train one job of a study."""
    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    params = OmegaConf.select(hydra, "sweeper.params")
    if params and not str(hydra.mode).endswith("MULTIRUN"):
        study = hydra.runtime.choices.get("experiment") or hydra.runtime.choices.get("hparams_search") or "this config"
        raise ConfigError("hydra.sweeper.params", dict(params), f"{study} is a sweep: run it with -m "
                          f"(python train.py -m ...); for one job of it, add hydra.sweeper.params=null")


def run(cfg: DictConfig) -> Any:
    """The task function of train.py: a pack job trains its manifest's members, any other job itself.

    A job on its own returns its objective(s) and raises its error; a pack job returns ``{job number: how it
    ended}`` for the members whose record could not be written (the sweep reads the others' records).
    """
    quiet_lightning()
    quiet_writer_threads()
    user_code_importable(HydraConfig.get().runtime.cwd if HydraConfig.initialized() else None)
    manifest = OmegaConf.select(cfg, "pack.manifest")
    if manifest:
        with pack_claim(Path(manifest)) as may_run:
            if not may_run:
                log.warning("Pack %s was given up by its sweep (its launcher stopped): not training it", manifest)
                return {}
            _, members = manifest_members(Path(manifest))
            pack = PackRun(members)
            with contextlib.suppress(OSError), MemberOutputs.logging_into([m.job for m in members]):
                pack.run()  # a refused write has failed its members, each saying so: a traceback would say no more
        return {m.job.num: m.unrecorded for m in members if m.unrecorded}  # the sweep reads the others' records
    member = current_member(cfg)
    refuse_a_sweep_without_multirun()
    pack = PackRun([member])
    pack.run()
    if member.unrecorded:
        raise JobFailed(f"job {member.job.name}: {member.unrecorded}")
    if member.record.status == OK:
        if DATASETS[member.settings.data.name].surface:  # a sweep's summary draws its jobs'; a job alone its own
            from regsweep.aggregate.plots import write_prediction_plot  # matplotlib: only here

            write_prediction_plot(Path(member.job.dir))
        print_run_summary(member.record)
        return pack.objectives(member)
    if member.record.status != FAILED:
        return None  # pruned by a search: its record says why
    if member.error is not None:
        raise member.error
    raise JobFailed(f"job {member.job.name} {member.record.status}: {member.record.error}")
