"""The plan of a sweep, written before its first job runs: every job's number, overrides, dir and pack.

With the plan on disk any reader (aggregation, a resumed sweep) can tell the jobs that completed
from those that failed, were interrupted or never started. Each planned job's dir already holds
its ``.hydra/`` files (what Hydra's ``run_job`` would write), so a pack job can read its members'
configs from there, on any machine that sees the sweep dir.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from regsweep.atomic import atomic_write_text

PLAN_FILE = "sweep_plan.json"
PACKS_DIR = ".packs"  # pack jobs' own Hydra dirs and manifests (dot-dirs are not job dirs)
PLAN_VERSION = 1


@dataclass
class PlannedJob:
    num: int
    overrides: list[str]
    dir: str
    pack: str


@dataclass
class SweepPlan:
    arguments: list[str]  # the sweep's arguments, expanded (what makes it this sweep and not another)
    jobs: list[PlannedJob] = field(default_factory=list)
    command: list[str] = field(default_factory=list)  # the command line that started it, to resume it by
    cwd: str = ""
    version: int = PLAN_VERSION

    def save(self, sweep_dir: Path) -> None:
        atomic_write_text(Path(sweep_dir) / PLAN_FILE, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepPlan | None":
        path = Path(sweep_dir) / PLAN_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(raw["arguments"], [PlannedJob(**job) for job in raw["jobs"]], raw.get("command", []),
                   raw.get("cwd", ""), raw.get("version", PLAN_VERSION))


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
        subdir = config.hydra.output_subdir
        if subdir is not None:
            hydra_dir = out / str(subdir)
            for name, node in (("config.yaml", task), ("hydra.yaml", OmegaConf.masked_copy(config, "hydra")),
                               ("overrides.yaml", config.hydra.overrides.task)):
                atomic_write_text(hydra_dir / name, OmegaConf.to_yaml(node))
    finally:
        HydraConfig.instance().cfg = previous
    return out.resolve(), resolved
