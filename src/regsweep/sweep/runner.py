"""Run a batch of a sweep's jobs: check them all, plan them, group them into packs, launch, read their records.

A pack (see :mod:`regsweep.packing`) is one unit of work for the launcher: one Hydra job
(``pack.manifest=...``) that trains its members in one process, whichever launcher runs it
(in-process, joblib workers, a SLURM task). With ``pack.size=off`` every job is a pack of one.
Outcomes are read from each job's ``result.json``, never from the launcher's return values, so
they are the same whoever ran the jobs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from regsweep.atomic import atomic_write_text
from regsweep.config import validate
from regsweep.errors import ConfigError, RegsweepError, describe
from regsweep.packing import group_into_packs, pack_key
from regsweep.records import FAILED, OK, RESULT_FILE, JobInfo, ResultRecord, find_job_dirs, read_result, write_result
from regsweep.sweep.overrides import quoted
from regsweep.sweep.plan import PACKS_DIR, PlannedJob, SweepPlan, prepare_job_dir
from regsweep.threads import parallel_workers

log = logging.getLogger(__name__)
MISSING = "missing"  # a planned job that left no record


class InvalidJobsError(RegsweepError):
    """Some jobs of a batch have an invalid config; none of the batch was started."""


@dataclass
class JobOutcome:
    """How one job ended, as its result record tells it."""

    num: int
    dir: Path
    status: str  # ok | failed | pruned | interrupted | missing
    error: str | None = None
    record: ResultRecord | None = None

    @property
    def name(self) -> str:
        return self.dir.name

    def values(self, names: list[str]) -> list[float]:
        """The objectives of a completed job, from the epoch it kept."""
        return [float(self.record.metrics["best"][name]) for name in names]


def read_outcome(job: PlannedJob) -> JobOutcome:
    path = Path(job.dir)
    if not (path / RESULT_FILE).exists():
        return JobOutcome(job.num, path, MISSING, "no result record (the job crashed or was killed)")
    record = read_result(path)
    return JobOutcome(job.num, path, record.status, record.error, record)


class JobConfigs:
    """Each job's composed config, composing once per distinct set of structural overrides.

    A full Hydra composition takes a tenth of a second or more; the jobs of a sweep mostly differ
    in plain values (``seed=3``, ``regularizer.l1=1e-4``). Overrides that change the defaults tree
    (a group choice such as ``regularizer=l1``, ``+``/``++``/``~`` overrides, ``hydra.*``) are
    composed by Hydra; plain values are then set the way Hydra sets them (``OmegaConf.update``
    with merge), and the job's override list is recorded as Hydra records it.
    """

    def __init__(self, config: DictConfig, hydra_context: HydraContext) -> None:
        self.master, self.loader = config, hydra_context.config_loader
        self.groups = set(config.hydra.runtime.choices)
        self.parser = OverridesParser.create()
        self.composed: dict[tuple[str, ...], DictConfig] = {}

    def structural(self, override: Any) -> bool:
        key = override.key_or_group
        return (override.package is not None or override.is_add() or override.is_force_add()
                or override.is_delete() or override.is_list_extend() or key.startswith("hydra.")
                or key in self.groups or "/" in key)

    def __call__(self, overrides: Sequence[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(list(overrides))
        structure = tuple(o.input_line for o in parsed if self.structural(o))
        if structure not in self.composed:
            self.composed[structure] = self.loader.load_sweep_config(self.master, list(structure))
        config = copy.deepcopy(self.composed[structure])
        with read_write(config), open_dict(config.hydra):
            for override in parsed:
                if not self.structural(override):
                    OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
            config.hydra.overrides.task = list(overrides)
        return config


class JobRunner:
    """Runs batches of one sweep's jobs; with ``keep_plan`` (a grid) it keeps the sweep plan on disk.

    An Optuna search does not: its study is its plan, shared by the workers that add trials to it.
    """

    def __init__(self, config: DictConfig, hydra_context: HydraContext, launcher: Launcher,
                 keep_plan: bool = True) -> None:
        self.config, self.hydra_context, self.launcher = config, hydra_context, launcher
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.keep_plan = keep_plan
        self.plan = (SweepPlan.load(self.sweep_dir) if keep_plan else None) or SweepPlan([])
        self.compose = JobConfigs(config, hydra_context)
        self.launched = len(self.plan.jobs) or sum(1 for _ in find_job_dirs(self.sweep_dir))

    @property
    def next_num(self) -> int:
        """The number of the next job: Hydra's job numbers go on from earlier runs in the sweep dir."""
        return self.launched

    def check(self, batch: Sequence[Sequence[str]]) -> list[DictConfig]:
        """Compose and validate every job's config; one error listing every invalid job, before any job runs."""
        configs, problems = [], []
        for overrides in batch:
            try:
                config = self.compose(overrides)
                validate(config)
                configs.append(config)
            except (ConfigError, HydraException, OmegaConfBaseException) as error:
                message = " ".join(str(error).split())
                problems.append(f"  job [{' '.join(overrides)}]: {message}")
        if problems:
            raise InvalidJobsError(f"{len(problems)} of {len(batch)} jobs have an invalid config; none was started:\n"
                                   + "\n".join(problems))
        return configs

    def plan_jobs(self, batch: Sequence[Sequence[str]], first_num: int) -> tuple[list[PlannedJob], list[dict]]:
        """Checked, numbered jobs with their dirs prepared and packs assigned; and their resolved configs."""
        configs = self.check(batch)
        size = OmegaConf.select(self.config, "pack.size", default="auto")
        packs = group_into_packs([pack_key(c) for c in configs], size, parallel_workers())
        jobs: list[PlannedJob | None] = [None] * len(configs)
        resolved: list[dict | None] = [None] * len(configs)
        for pack in packs:
            prepared = {index: prepare_job_dir(configs[index], first_num + index) for index in pack}
            first = prepared[pack[0]][0].name  # job dir names are unique in a sweep dir, whichever worker made them
            name = f"pack{first_num + pack[0]:04d}-{hashlib.sha1(first.encode()).hexdigest()[:8]}"
            for index, (directory, resolved[index]) in prepared.items():
                jobs[index] = PlannedJob(first_num + index, list(batch[index]), str(directory), name)
        return [job for job in jobs if job is not None], [r for r in resolved if r is not None]

    def run(self, batch: Sequence[Sequence[str]], first_num: int) -> list[JobOutcome]:
        """Launch ``batch`` (numbered from ``first_num``) as packs; returns one outcome per job, in order."""
        jobs, configs = self.plan_jobs(batch, first_num)
        self.launched = max(self.launched, first_num + len(jobs))
        if self.keep_plan:
            self.plan.jobs += jobs
            self.plan.save(self.sweep_dir)
        return self.launch(jobs, configs)

    def launch(self, jobs: list[PlannedJob], configs: list[dict]) -> list[JobOutcome]:
        packs: dict[str, list[tuple[PlannedJob, dict]]] = {}
        for job, config in zip(jobs, configs):
            packs.setdefault(job.pack, []).append((job, config))
        units = [self._manifest(name, members) for name, members in packs.items()]
        log.info("Launching %d jobs as %d packs (pack.size=%s)", len(jobs), len(units),
                 OmegaConf.select(self.config, "pack.size", default="auto"))
        returns = self.launcher.launch(units, initial_job_idx=jobs[0].num)
        for (name, members), ret in zip(packs.items(), returns):
            self._record_lost_members([job for job, _ in members], ret)
        return [read_outcome(job) for job in jobs]

    def _manifest(self, name: str, members: list[tuple[PlannedJob, dict]]) -> list[str]:
        """The pack job's overrides: its first member's (so its Hydra config is the sweep's), then the manifest.

        The manifest lists each member's dir, number, overrides and resolved config; members
        sharing an optimizer group (lr, weight decay) come together.
        """
        def group(member: tuple[PlannedJob, dict]) -> tuple[float, float, int]:
            job, config = member
            return float(config["optimizer"]["lr"]), float(config["optimizer"]["weight_decay"]), job.num

        entries = [{"dir": job.dir, "num": job.num, "overrides": job.overrides, "config": config}
                   for job, config in sorted(members, key=group)]
        manifest = self.sweep_dir / PACKS_DIR / f"{name}.json"
        atomic_write_text(manifest, json.dumps({"pack": name, "sweep_dir": str(self.sweep_dir), "members": entries},
                                               indent=1) + "\n")
        return [*members[0][0].overrides, f"pack.manifest={quoted(str(manifest))}", f"hydra.sweep.subdir={PACKS_DIR}/{name}"]

    @staticmethod
    def _record_lost_members(jobs: list[PlannedJob], ret: JobReturn) -> None:
        """A pack job that died before its members' records were written: say so in each of them."""
        if ret.status == JobStatus.COMPLETED:
            return
        try:
            ret.return_value
        except BaseException as error:  # the pack job's own failure, re-raised by Hydra here
            reason = describe(error)
        else:
            reason = f"pack job status {ret.status.name}"
        for job in jobs:
            if not (Path(job.dir) / RESULT_FILE).exists():
                info = JobInfo(name=Path(job.dir).name, dir=job.dir, num=job.num, overrides=job.overrides,
                               pack=job.pack)
                write_result(Path(job.dir), ResultRecord(status=FAILED, job=info, seed=None,
                                                         error=f"its pack job failed: {reason}"))


def failure_message(outcomes: list[JobOutcome]) -> str | None:
    """None when every job completed; else which jobs did not, and why (for the sweep's exit status)."""
    bad = [o for o in outcomes if o.status not in (OK, "pruned")]
    if not bad:
        return None
    lines = [f"{len(bad)} of {len(outcomes)} jobs failed (the others completed and kept their results):"]
    return "\n".join([*lines, *(f"  {o.name}: {o.status}: {o.error}" for o in bad)])

