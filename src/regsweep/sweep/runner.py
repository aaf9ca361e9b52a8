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
import logging
import uuid
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

from regsweep.config import validate
from regsweep.job import check_model_against_data
from regsweep.memberwise import optimizer_group_of
from regsweep.networks import is_user_model
from regsweep.console import count
from regsweep.interrupts import raise_on_signals
from regsweep.errors import ConfigError, SweepRefused, describe
from regsweep.packing import group_into_packs, pack_key, why_alone
from regsweep.records import (FAILED, MISSING, OK, PRUNED, RESULT_FILE, JobInfo, ResultRecord, find_job_dirs, read_result,
                              write_result)
from regsweep.sweep.overrides import quoted
from regsweep.sweep.lock import give_up_pack, reclaim_pack
from regsweep.sweep.plan import PACKS_DIR, ManifestMember, PackManifest, PlannedJob, prepare_job_dir
from regsweep.threads import parallel_workers

log = logging.getLogger(__name__)


class InvalidJobsError(SweepRefused):
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


def read_outcome(job: PlannedJob, sweep_dir: Path, sweep_id: str | None) -> JobOutcome:
    """How a planned job ended, from its record, if that record is whole and its own: a damaged record, or one
    that names another job or sweep (copied in), counts as no record."""
    path = Path(job.dir)
    if not (path / RESULT_FILE).exists():
        return JobOutcome(job.num, path, MISSING, "no result record (the job crashed or was killed)")
    try:
        record = read_result(path)
    except (ValueError, TypeError, KeyError, OSError) as error:  # ValueError: bad JSON, bad UTF-8
        return JobOutcome(job.num, path, MISSING, f"its {RESULT_FILE} is damaged ({describe(error)})")
    other = _other_owner(record.job, job, sweep_dir, sweep_id)
    if other is not None:
        return JobOutcome(job.num, path, MISSING, f"its {RESULT_FILE} is not its own: it names {other}")
    return JobOutcome(job.num, path, record.status, record.error, record)


def _other_owner(recorded: JobInfo, job: PlannedJob, sweep_dir: Path, sweep_id: str | None) -> str | None:
    """Whose a record is when it is not ``job``'s of this sweep (its number and dir name, and the sweep's id, or
    the sweep's dir for a plan that has no id); None when it is the job's own."""
    if recorded.num != job.num or recorded.name != Path(job.dir).name:
        return f"job {recorded.num} ({recorded.name})"
    if sweep_id is not None and recorded.sweep_id != sweep_id:
        return f"another sweep (plan {recorded.sweep_id}, not {sweep_id})"
    if sweep_id is None and recorded.sweep_dir != str(Path(sweep_dir).resolve()):
        return f"another sweep ({recorded.sweep_dir})"
    return None


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
        """Needs a composition of its own; the rest are plain values set on a cached one, as Hydra sets them
        (``++key=value`` included: Hydra force-adds a plain key, as ``OmegaConf.update(force_add=True)`` does)."""
        key = override.key_or_group
        return (override.package is not None or override.is_add() or override.is_delete()
                or override.is_list_extend() or key.startswith("hydra.") or key in self.groups or "/" in key)

    def __call__(self, overrides: Sequence[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(list(overrides))
        structural = [self.structural(o) for o in parsed]
        structure = tuple(o.input_line for o, is_structural in zip(parsed, structural) if is_structural)
        if structure not in self.composed:
            self.composed[structure] = self.loader.load_sweep_config(self.master, list(structure))
        config = copy.deepcopy(self.composed[structure])
        with read_write(config), open_dict(config.hydra):
            for override, is_structural in zip(parsed, structural):
                if not is_structural:
                    OmegaConf.update(config, override.key_or_group, override.value(), merge=True,
                                     force_add=override.is_force_add())
            config.hydra.overrides.task = list(overrides)
        return config


class SweepPlanError(SweepRefused):
    """The sweep dir holds another sweep, or its plan no longer matches the configs."""


class JobRunner:
    """Prepares, packs and launches one sweep's jobs; outcomes come from each job's record.

    A grid sweep plans all its jobs before the first one runs and keeps the plan on disk
    (``sweep_plan.json``), so the sweep can be resumed; an Optuna search adds trials as it goes
    and keeps no plan (its study is its plan, shared by the workers that add trials to it).
    """

    def __init__(self, config: DictConfig, hydra_context: HydraContext, launcher: Launcher) -> None:
        self.config, self.hydra_context, self.launcher = config, hydra_context, launcher
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.compose = JobConfigs(config, hydra_context)
        self.resolved: dict[int, dict] = {}  # job number -> its config, resolved against its own Hydra config
        self.next_num = sum(1 for _ in find_job_dirs(self.sweep_dir))  # Hydra's job numbers go on
        self.sweep_id: str | None = uuid.uuid4().hex  # the plan's (a resumed sweep's: set from its plan)
        self.unrecorded: dict[int, str] = {}  # job number -> how it ended, when its record could not be written

    def check(self, batch: Sequence[Sequence[str]]) -> list[DictConfig]:
        """Compose and validate every job's config; one error listing every invalid job, before any job runs."""
        configs, problems = [], []
        for overrides in batch:
            try:
                config = self.compose(overrides)
                settings = validate(config)
                if is_user_model(config.model):  # a network of the user's must fit the data before any job starts
                    check_model_against_data(settings)
                configs.append(config)
            except (ConfigError, HydraException, OmegaConfBaseException) as error:
                message = " ".join(str(error).split())
                problems.append(f"  job [{' '.join(overrides)}]: {message}")
        if problems:
            raise InvalidJobsError(f"{len(problems)} of {len(batch)} jobs have an invalid config; none was started:\n"
                                   + "\n".join(problems))
        return configs

    def prepare(self, batch: Sequence[Sequence[str]], first_num: int) -> list[PlannedJob]:
        """Checked, numbered jobs with their dirs prepared (``.hydra/``) and their packs assigned."""
        configs = self.check(batch)
        size = OmegaConf.select(self.config, "pack.size", default="auto")
        packs = group_into_packs([pack_key(c) for c in configs], size, parallel_workers())
        for reason in dict.fromkeys(filter(None, map(why_alone, configs))):
            log.info("%s", reason)
        jobs: dict[int, PlannedJob] = {}
        for pack in packs:
            prepared = {index: prepare_job_dir(configs[index], first_num + index) for index in pack}
            first = prepared[pack[0]][0].name  # job dir names are unique in a sweep dir, whichever worker made them
            name = f"pack{first_num + pack[0]:04d}-{hashlib.sha1(first.encode()).hexdigest()[:8]}"
            for index, (directory, resolved) in prepared.items():
                jobs[index] = PlannedJob(first_num + index, list(batch[index]), str(directory), name)
                self.resolved[first_num + index] = resolved
        self.next_num = max(self.next_num, first_num + len(configs))
        return [jobs[index] for index in range(len(configs))]

    def prepare_again(self, jobs: list[PlannedJob]) -> None:
        """Compose planned jobs again (a resumed sweep); their dirs must be the ones the plan has."""
        for job, config in zip(jobs, self.check([job.overrides for job in jobs])):
            directory, self.resolved[job.num] = prepare_job_dir(config, job.num)
            if str(directory) != job.dir:
                raise SweepPlanError(f"job {job.num} would now write to {directory}, not to its planned dir {job.dir}: "
                                     "the configs changed since the sweep was planned; use another hydra.sweep.dir")

    def run(self, batch: Sequence[Sequence[str]]) -> list[JobOutcome]:
        """Prepare and launch ``batch`` (numbered on from the jobs already in the sweep dir)."""
        return self.launch(self.prepare(batch, self.next_num))

    def launch(self, jobs: list[PlannedJob]) -> list[JobOutcome]:
        """Launch prepared jobs, one unit of work per pack; one outcome per job, in order.

        SIGTERM or SIGINT stop the launch: the jobs running then record themselves interrupted,
        the others never start, and the interruption goes on up (the sweep's summary still runs).
        """
        packs: dict[str, list[PlannedJob]] = {}
        for job in jobs:
            (Path(job.dir) / RESULT_FILE).unlink(missing_ok=True)  # a re-run job writes a new one
            packs.setdefault(job.pack, []).append(job)
        units = [self._manifest(name, members) for name, members in packs.items()]
        log.info("Launching %s as %s (pack.size=%s), each pack one job of the launcher", count(len(jobs), "job"),
                 count(len(units), "pack"), OmegaConf.select(self.config, "pack.size", default="auto"))
        with raise_on_signals():
            try:
                returns = self.launcher.launch(units, initial_job_idx=jobs[0].num)
            except Exception as error:  # e.g. submitit on a cancelled array task, while the others still run
                self._settle_after(error, packs)
            else:
                for members, ret in zip(packs.values(), returns):
                    self._record_lost_members(members, self._failure(ret))
                    if ret.status == JobStatus.COMPLETED and isinstance(ret.return_value, dict):
                        self.unrecorded.update(ret.return_value)
        return [self._outcome(job) for job in jobs]

    def _outcome(self, job: PlannedJob) -> JobOutcome:
        """A job's outcome from its record; when the disk refused the record, how its pack job said it ended."""
        outcome = read_outcome(job, self.sweep_dir, self.sweep_id)
        if outcome.status == MISSING and job.num in self.unrecorded:
            return JobOutcome(job.num, Path(job.dir), FAILED, self.unrecorded[job.num])
        return outcome

    def outcomes_so_far(self, jobs: list[PlannedJob]) -> dict[int, JobOutcome]:
        """What a resumed sweep finds of its jobs; a record it cannot keep (damaged, another's) is said, once each."""
        outcomes = {job.num: read_outcome(job, self.sweep_dir, self.sweep_id) for job in jobs}
        for job in jobs:
            outcome = outcomes[job.num]
            if outcome.status == MISSING and (Path(job.dir) / RESULT_FILE).exists():
                log.warning("job %s: %s; it runs again", outcome.name, outcome.error)
        return outcomes

    def _settle_after(self, error: Exception, packs: dict[str, list[PlannedJob]]) -> None:
        """The launcher gave up on the batch: wait for its packs still running, give up the rest."""
        reason = f"the launcher stopped: {describe(error)}"
        log.error("%s; waiting for the packs still running", reason)
        for name, members in packs.items():
            give_up_pack(self._manifest_path(name))
            self._record_lost_members(members, reason)

    @staticmethod
    def _failure(ret: JobReturn) -> str | None:
        """Why a pack job did not complete (None when it did)."""
        if ret.status == JobStatus.COMPLETED:
            return None
        try:
            ret.return_value
        except BaseException as error:  # the pack job's own failure, re-raised by Hydra here
            return describe(error)
        return f"pack job status {ret.status.name}"

    def _manifest_path(self, name: str) -> Path:
        return self.sweep_dir / PACKS_DIR / f"{name}.json"

    def _manifest(self, name: str, members: list[PlannedJob]) -> list[str]:
        """The pack job's overrides: its first member's (so its Hydra config is the sweep's), then the manifest.

        The manifest lists each member's dir, number, overrides and resolved config; members
        sharing an optimizer group (lr, weight decay) come together.
        """
        def group(job: PlannedJob) -> tuple[float, float, int]:
            return *optimizer_group_of(self.resolved[job.num]), job.num

        entries = [ManifestMember(job.dir, job.num, job.overrides, self.resolved[job.num])
                   for job in sorted(members, key=group)]
        manifest = self._manifest_path(name)
        PackManifest(name, str(self.sweep_dir), self.sweep_id, entries).save(manifest)
        reclaim_pack(manifest)
        # The sweep dir as the sweeper resolved it: a launcher that composes the job again elsewhere
        # (a SLURM node) would resolve its ${now:...} once more, to another dir.
        return [*members[0].overrides, f"pack.manifest={quoted(str(manifest))}",
                f"hydra.sweep.dir={quoted(str(self.sweep_dir))}", f"hydra.sweep.subdir={PACKS_DIR}/{name}"]

    def _record_lost_members(self, jobs: list[PlannedJob], reason: str | None) -> None:
        """A pack job that died before its members' records were written: say so in each of them."""
        if reason is None:
            return
        for job in jobs:
            if not (Path(job.dir) / RESULT_FILE).exists():
                info = JobInfo(name=Path(job.dir).name, dir=job.dir, num=job.num, overrides=job.overrides,
                               sweep_dir=str(self.sweep_dir), pack=job.pack, sweep_id=self.sweep_id)
                error = f"its pack job failed: {reason}"
                try:
                    write_result(Path(job.dir), ResultRecord(status=FAILED, job=info, seed=None, error=error))
                except OSError as refused:  # a full disk: the sweep still says why the job has no record
                    self.unrecorded[job.num] = f"{error}; its {RESULT_FILE} could not be written: {describe(refused)}"


def failure_message(outcomes: list[JobOutcome]) -> str | None:
    """None when every job completed; else which jobs did not, and why (for the sweep's exit status)."""
    bad = [o for o in outcomes if o.status not in (OK, PRUNED)]
    if not bad:
        return None
    lines = [f"{len(bad)} of {len(outcomes)} jobs failed (the others completed and kept their results):"]
    return "\n".join([*lines, *(f"  {o.name}: {o.status}: {o.error}" for o in bad)])

