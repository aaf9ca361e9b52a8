"""Evaluate a saved checkpoint on the test set: ``regsweep-eval <checkpoint or job dir> [key=value ...]``.

    regsweep-eval multirun/2026-12-01/10-31-07-123456/3_seed=3             # its checkpoints/best.ckpt
    regsweep-eval outputs/.../checkpoints/last.ckpt trainer.accelerator=cpu --out eval/

The job's config comes from the checkpoint itself (overrides in Hydra's ``key=value`` form change
it, e.g. another data dir); the results (result.json, the console table) go to ``--out``
(default: ``<job dir>/eval``: inside the job's dir, where ``regsweep-aggregate`` never looks for jobs,
so an evaluation is never counted as one). The same as ``python train.py <the job's overrides> train=false
ckpt_path=<checkpoint>``, without having to repeat the overrides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from regsweep import checkpoints
from regsweep.config import register_resolvers
from regsweep.console import cli_description
from regsweep.errors import RegsweepError


def checkpoint_path(given: Path) -> Path:
    """A checkpoint file, or a job dir (its kept epoch's checkpoint)."""
    return given / checkpoints.CHECKPOINT_DIR / checkpoints.BEST_FILE if given.is_dir() else given


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regsweep-eval", description=cli_description(__doc__))
    parser.add_argument("checkpoint", type=Path, help="a best.ckpt / last.ckpt, or a job dir")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the job's config")
    parser.add_argument("--out", type=Path, help="where the evaluation writes (default: <job dir>/eval)")
    args = parser.parse_args(argv)
    register_resolvers()
    from regsweep.job import run  # the training stack: after the arguments are known to be sound

    path = checkpoint_path(args.checkpoint)
    try:
        payload = checkpoints.read_checkpoint(path, (checkpoints.BEST_FORMAT, checkpoints.LAST_FORMAT))
        out = args.out or path.resolve().parent.parent / "eval"
        cfg = OmegaConf.merge(payload["config"], {"train": False, "test": True, "ckpt_path": str(path.resolve()),
                                                  "callbacks": None, "logger": None, "pack": {"manifest": None},
                                                  "paths": {"output_dir": str(out)},
                                                  "trainer": {"default_root_dir": str(out)}},
                              OmegaConf.from_dotlist(list(args.overrides)))
        run(cfg)
    except RegsweepError as error:
        print(f"regsweep-eval: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
