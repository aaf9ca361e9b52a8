"""Pruning benchmark: the same TPE search with and without the median pruner, at equal trial counts.

    .venv/bin/python bench/pruning.py [--trials 20] [--epochs 10] [--seed 0]

Runs ``train.py -m hparams_search=optuna`` twice, ``hydra/sweeper/pruner=median`` and ``=none``,
with the same sampler seed, each as a fresh study in a temporary dir, and writes
``bench/results/pruning.json``: per variant the wall time, the best value, the trial states and
the epochs trained (the compute pruning saves, independent of machine load).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from common import RESULTS, TRAIN, machine, run_script, sweep_records

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.search.study import JOURNAL_FILE, open_storage

RESULT_FILE = RESULTS / "pruning.json"
PRUNERS = ("median", "none")


def run_search(pruner: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One search in its own sweep dir; its cost and outcome read back from the study and the job records."""
    sweep = work / pruner
    wall = run_script(TRAIN, "-m", "hparams_search=optuna", f"hydra/sweeper/pruner={pruner}",
                      f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.sampler.seed={args.seed}",
                      f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
                      f"hydra.sweep.dir={sweep}", cwd=work)
    study = optuna.load_study(study_name="optuna-digits", storage=open_storage(str(sweep / JOURNAL_FILE)))
    records = sweep_records(sweep)
    return {
        "wall_time_s": round(wall, 1),
        "job_time_s": round(sum(r.wall_time_s for r in records), 1),
        "epochs_trained": sum(r.epochs for r in records),
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "trials": dict(Counter(t.state.name.lower() for t in study.trials)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="TPE sampler seed, the same for both variants")
    parser.add_argument("--out", type=Path, default=RESULT_FILE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as work:
        runs = {pruner: run_search(pruner, args, Path(work)) for pruner in PRUNERS}
    result = {
        "benchmark": "TPE search (hparams_search=optuna, digits, val/acc) with vs without the median pruner",
        "settings": {key: value for key, value in vars(args).items() if key != "out"},
        "machine": machine(),
        "runs": runs,
        "job_time_ratio_pruned_vs_not": round(runs["median"]["job_time_s"] / runs["none"]["job_time_s"], 3),
        "best_value_difference": runs["median"]["best_value"] - runs["none"]["best_value"],
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
