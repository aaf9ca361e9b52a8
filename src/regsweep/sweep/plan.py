"""The plan of a sweep, written before its first job runs: every job's number, overrides, dir and pack.

With the plan on disk any reader (aggregation, a resumed sweep) can tell the jobs that completed
from those that failed, were interrupted or never started. Each planned job's dir already holds
its ``.hydra/`` files (what Hydra's ``run_job`` would write), so a pack job can read its members'
configs from there, on any machine that sees the sweep dir.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from regsweep.atomic import atomic_write_text
from regsweep.errors import SweepRefused, describe

PLAN_FILE = "sweep_plan.json"
COMMAND_FILE = "sweep_command.json"  # the plan's head, kept apart: a damaged plan is rebuilt from it
PACKS_DIR = ".packs"  # pack jobs' own Hydra dirs and manifests (dot-dirs are not job dirs)
PLAN_VERSION = 2  # 2: an id, and job dirs relative to the sweep dir (a sweep dir that moves keeps its jobs)
READ_ERRORS = (ValueError, TypeError, KeyError, OSError)  # a file truncated, of garbage or bad UTF-8 (a ValueError)


@dataclass
class SweepCommand:
    """What makes a sweep this sweep and how it was started: all a damaged plan needs to be made again."""

    arguments: list[str]  # the sweep's arguments, expanded (what makes it this sweep and not another)
    command: list[str] = field(default_factory=list)  # the command line that started it, to resume it by
    cwd: str = ""
    id: str | None = field(default_factory=lambda: uuid.uuid4().hex)  # what its jobs' records name: their sweep

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepCommand | None":
        """The command recorded in ``sweep_dir``; None when there is none or it cannot be read either."""
        try:
            raw = json.loads((Path(sweep_dir) / COMMAND_FILE).read_text(encoding="utf-8"))
            return cls(raw["arguments"], raw["command"], raw["cwd"], raw["id"])
        except READ_ERRORS:
            return None


class DamagedPlanError(SweepRefused):
    """A sweep's plan file cannot be read (truncated, garbage): its jobs are no longer known for sure, though the
    command beside it (``recorded``) may still say which sweep it was."""

    def __init__(self, message: str, recorded: SweepCommand | None) -> None:
        super().__init__(message)
        self.recorded = recorded


@dataclass
class PlannedJob:
    num: int
    overrides: list[str]
    dir: str
    pack: str


@dataclass
class SweepPlan(SweepCommand):
    jobs: list[PlannedJob] = field(default_factory=list)
    version: int = PLAN_VERSION

    def save(self, sweep_dir: Path) -> None:
        """The command first, then the plan: whichever a crash leaves, the plan is whole or can be rebuilt."""
        root = Path(sweep_dir).resolve()
        head = SweepCommand(self.arguments, self.command, self.cwd, self.id)
        atomic_write_text(root / COMMAND_FILE, json.dumps(asdict(head), indent=1) + "\n")
        jobs = [{**asdict(job), "dir": os.path.relpath(job.dir, root)} for job in self.jobs]
        atomic_write_text(root / PLAN_FILE, json.dumps({**asdict(self), "jobs": jobs}, indent=1) + "\n")

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepPlan | None":
        """The plan in ``sweep_dir`` (None when it has none), its job dirs under ``sweep_dir`` wherever it moved."""
        root = Path(sweep_dir).resolve()
        path = root / PLAN_FILE
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            jobs = [PlannedJob(**{**job, "dir": str(root / job["dir"])}) for job in raw["jobs"]]  # absolute in /1
            return cls(raw["arguments"], raw.get("command", []), raw.get("cwd", ""), raw.get("id"), jobs,
                       raw.get("version", 1))
        except READ_ERRORS as error:
            raise DamagedPlanError(f"{path} is damaged ({describe(error)})", SweepCommand.load(root)) from None


@dataclass
class ManifestMember:
    """One job of a pack, as the sweeper planned it: its dir, number, overrides and resolved config."""

    dir: str
    num: int
    overrides: list[str]
    config: dict[str, Any]


@dataclass
class PackManifest:
    """What a pack job trains: written by the sweeper beside the sweep, read by the pack job (any machine)."""

    pack: str
    sweep_dir: str
    sweep_id: str | None
    members: list[ManifestMember]

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "PackManifest":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["pack"], raw["sweep_dir"], raw.get("sweep_id"), [ManifestMember(**m) for m in raw["members"]])


def prepare_job_dir(config: DictConfig, num: int) -> tuple[Path, dict]:
    """Number a composed job, resolve its output dir as Hydra would, and write its ``.hydra/`` files.

    Takes ``config`` over (the job's own composition, numbered and pinned in place). Returns the
    dir and the job's config resolved against its own Hydra config (its output dir, the sweep's
    timestamp), which is what a pack job trains it with.
    """
    with open_dict(config):
        config.hydra.job.id = str(num)
        config.hydra.job.num = num
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)  # ${hydra:...} and the override-dirname resolver read it
    try:
        sweep_dir, subdir = str(OmegaConf.select(config, "hydra.sweep.dir")), str(OmegaConf.select(config, "hydra.sweep.subdir"))
        out = Path(sweep_dir) / subdir
        with read_write(config.hydra), open_dict(config.hydra):  # pinned: a later reader must not re-resolve ${now:}
            config.hydra.sweep.dir, config.hydra.sweep.subdir = sweep_dir, subdir
            config.hydra.runtime.output_dir = str(out.resolve())
        HydraConfig.instance().set_config(config)
        task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        resolved = OmegaConf.to_container(task, resolve=True)
        out.mkdir(parents=True, exist_ok=True)  # with hydra.output_subdir=null nothing else would make it
        subdir = config.hydra.output_subdir
        if subdir is not None:
            hydra_dir = out / str(subdir)
            for name, node in (("config.yaml", task), ("hydra.yaml", OmegaConf.masked_copy(config, "hydra")),
                               ("overrides.yaml", config.hydra.overrides.task)):
                atomic_write_text(hydra_dir / name, OmegaConf.to_yaml(node))
    finally:
        HydraConfig.instance().cfg = previous
    return out.resolve(), resolved
