"""Resume a sweep from its dir: ``regsweep-resume multirun/2026-12-01/10-31-07-123456``.

Runs the command that started the sweep again (recorded in its ``sweep_plan.json``) with
``hydra.sweep.dir`` set to that dir: the jobs that completed are kept, the others run again, an
interrupted one from its last checkpoint. Extra arguments (``hydra/launcher=joblib``, say) are
added to the command; changing what the sweep sweeps is refused by the sweeper.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from regsweep.console import cli_description
from regsweep.sweep.plan import COMMAND_FILE, PLAN_FILE, DamagedPlanError, SweepCommand, SweepPlan


def resume_command(sweep_dir: Path, extra: Sequence[str]) -> tuple[list[str], str]:
    try:
        plan: SweepCommand | None = SweepPlan.load(sweep_dir)
    except DamagedPlanError as damaged:  # the sweep's command rebuilds it
        if damaged.recorded is None:
            raise SystemExit(f"regsweep-resume: error: {damaged}, and so is {Path(sweep_dir) / COMMAND_FILE}: "
                             "it cannot be resumed") from None
        print(f"{damaged}: resuming with the command recorded beside it, which rebuilds it", flush=True)
        plan = damaged.recorded
    if plan is None or not plan.command:
        raise SystemExit(f"regsweep-resume: error: {sweep_dir} has no {PLAN_FILE} with the command that started it")
    kept = [a for a in plan.command[1:] if not a.startswith("hydra.sweep.dir=")]
    return [sys.executable, plan.command[0], *kept, *extra, f"hydra.sweep.dir={Path(sweep_dir).resolve()}"], plan.cwd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regsweep-resume", description=cli_description(__doc__))
    parser.add_argument("sweep_dir", type=Path, help="the multirun dir to resume (it holds sweep_plan.json)")
    parser.add_argument("extra", nargs="*", help="arguments added to the sweep's command, e.g. hydra/launcher=joblib")
    args = parser.parse_args(argv)
    command, cwd = resume_command(args.sweep_dir, args.extra)
    print("resuming:", " ".join(command), flush=True)
    return subprocess.call(command, cwd=cwd or None)


if __name__ == "__main__":
    sys.exit(main())
