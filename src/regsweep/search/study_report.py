"""The study report, rewritten in the sweep dir at the end of every search run (by each worker).

- ``report.md``: trial counts, the best trial (or the Pareto front) with the command that re-runs
  it over 10 seeds, the top-k trials, parameter importances, failed and pruned trials with their
  reasons, and how to browse the study in optuna-dashboard;
- ``plots/*.png``: optimization history, parallel coordinates and slices of the (first) objective,
  and the Pareto front for several objectives;
- ``optimization_results.yaml``: best parameters and value(s), as Hydra's Optuna sweeper writes them.

Everything is read from the study itself, so the report is the same whichever worker writes it.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from regsweep.atomic import atomic_write_text
from regsweep.search.study import SETTINGS_ATTR

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
RESULTS_FILE = "optimization_results.yaml"
PLOTS_DIR = "plots"
RERUN_SEEDS = "0-9"
MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA on fewer completed trials ranks noise


def search_settings(study: optuna.Study) -> dict[str, Any]:
    """What the sweeper stamped on the study: fixed_overrides, seeds_per_trial, objectives."""
    return study.user_attrs[SETTINGS_ATTR]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _first_value(trial: FrozenTrial) -> float:
    return trial.values[0]


def rerun_command(study: optuna.Study, trial: FrozenTrial) -> str:
    """``python train.py <fixed overrides> <trial params> -m seed=0-9``: the trial's configuration, plain training."""
    fixed = [o for o in search_settings(study)["fixed_overrides"]
             if not o.startswith(("hparams_search=", "seed="))]
    params = [f"{name}={value}" for name, value in trial.params.items()]
    return shlex.join(["python", "train.py", *fixed, *params, "-m", f"seed={RERUN_SEEDS}"])


def ranked(study: optuna.Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed ``trials``, best (first) objective first."""
    descending = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return sorted(trials, key=_first_value, reverse=descending)


def trial_table(trials: list[FrozenTrial], objectives: list[str]) -> list[str]:
    """Markdown table: trial, objective values (per seed when several), parameters, job dirs."""
    params = sorted({name for t in trials for name in t.params})
    per_seed = any("values_per_seed" in t.user_attrs for t in trials)
    header = ["trial", *objectives, *(["per seed"] if per_seed else []), *params, "job dirs"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        seeds = ", ".join(_fmt(v[0]) for v in t.user_attrs.get("values_per_seed", []))
        cells = [str(t.number), *(_fmt(v) for v in t.values), *([seeds] if per_seed else []),
                 *(_fmt(t.params.get(name, "-")) for name in params), " ".join(t.user_attrs.get("job_dirs", []))]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _overview(study: optuna.Study, storage: str, objectives: list[str]) -> list[str]:
    counts = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    states = ", ".join(f"{n} {state.name.lower()}" for state, n in counts.items() if n)
    directions = ", ".join(f"{name} ({d.name.lower()})" for name, d in zip(objectives, study.directions))
    seeds = search_settings(study)["seeds_per_trial"]
    return [
        f"# Optuna study `{study.study_name}`", "",
        f"- objectives: {directions}",
        f"- trials: {sum(counts.values())} ({states or 'none yet'})",
        f"- seeds per trial: {seeds}" + (" (the value of a trial is their mean)" if seeds > 1 else ""),
        f"- storage: `{storage}`; browse it live with `optuna-dashboard {shlex.quote(storage)}`",
        "",
    ]


def _best(study: optuna.Study, objectives: list[str], top: list[FrozenTrial]) -> list[str]:
    rerun = ("Re-run over 10 seeds (plain training, outside the search), so the result does not rest "
             "on the luck of the seed(s) the search saw; report its test metrics:")
    if len(study.directions) > 1:
        front = ranked(study, study.best_trials)
        return [f"## Pareto front: {len(front)} of {len(top)} completed trials", "",
                "No other trial is at least as good on every objective and better on one.", "",
                *trial_table(front, objectives), "", rerun, "", "```bash",
                *(f"{rerun_command(study, t)}  # trial {t.number}" for t in front), "```", ""]
    best = top[0]
    return [
        f"## Best trial: {best.number}", "",
        f"{objectives[0]} = {best.values[0]:.6g}", "",
        "| parameter | value |", "|---|---|",
        *(f"| {name} | {value} |" for name, value in best.params.items()), "",
        rerun, "", "```bash", rerun_command(study, best), "```", "",
    ]


def _importances(study: optuna.Study, objectives: list[str], complete: list[FrozenTrial]) -> list[str]:
    title = f"## Parameter importances (fANOVA, {objectives[0]})"
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return [title, "", f"_Skipped: needs {MIN_TRIALS_FOR_IMPORTANCE} completed trials, "
                f"the study has {len(complete)}._", ""]
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=_first_value)
    except (ValueError, RuntimeError) as error:  # e.g. no parameter common to all completed trials
        return [title, "", f"_Skipped: {error}_", ""]
    rows = [f"| {name} | {value:.3f} |" for name, value in importances.items()]
    conditional = sorted({name for t in complete for name in t.params} - set(importances))
    note = [f"Left out (set in only some trials): {', '.join(conditional)}.", ""] if conditional else []
    return [title, "", "| parameter | importance |", "|---|---|", *rows, "", *note]


def _unfinished(study: optuna.Study) -> list[str]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.PRUNED))
    if not trials:
        return []
    rows = [f"| {t.number} | {t.state.name.lower()} | {t.user_attrs.get('reason', '-')} | "
            f"{' '.join(t.user_attrs.get('job_dirs', []))} |" for t in trials]
    return ["## Failed and pruned trials", "", "| trial | state | reason | job dirs |", "|---|---|---|---|", *rows, ""]


def _plot_functions(study: optuna.Study, objectives: list[str]) -> dict[str, Callable[[], Any]]:
    vis = optuna.visualization.matplotlib
    target = {"target": _first_value, "target_name": objectives[0]}
    plots = {
        "optimization_history": lambda: vis.plot_optimization_history(study, **target),
        "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, **target),
        "slice": lambda: vis.plot_slice(study, **target),
    }
    if len(study.directions) > 1:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=objectives)
    return plots


def _plots(study: optuna.Study, out_dir: Path, objectives: list[str]) -> list[str]:
    """Draw each plot to plots/<name>.png; a plot that cannot be drawn is noted, never fatal."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)  # notes on numeric categorical choices
    import matplotlib.pyplot as plt

    from regsweep.aggregate.plots import save_figure

    lines = ["## Plots", ""]
    for name, draw in _plot_functions(study, objectives).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API notices, degenerate axis ranges of few trials
                figure = np.ravel(draw())[0].figure  # plot_slice returns one Axes per parameter
            save_figure(figure, out_dir / PLOTS_DIR / f"{name}.png")
            plt.close(figure)
            lines.append(f"![{name}]({PLOTS_DIR}/{name}.png)")
        except Exception as error:  # a plot is a convenience: the rest of the report must still be written
            log.warning("plot %s skipped: %s", name, error)
            lines.append(f"- {name}: skipped ({error})")
    return [*lines, ""]


def _results(study: optuna.Study, top: list[FrozenTrial]) -> dict[str, Any]:
    """Hydra's optimization_results.yaml layout, plus the re-run command(s)."""
    if len(study.directions) > 1:
        return {"name": "optuna", "solutions": [
            {"params": t.params, "values": t.values, "rerun": rerun_command(study, t)} for t in study.best_trials]}
    best = top[0]
    return {"name": "optuna", "best_params": best.params, "best_value": best.values[0],
            "rerun": rerun_command(study, best)}


def write_study_report(study: optuna.Study, out_dir: Path, storage: str, top_k: int = 10) -> Path:
    """Write report.md, plots/ and (once a trial completed) optimization_results.yaml; return report.md's path."""
    out_dir = Path(out_dir)
    objectives = search_settings(study)["objectives"]
    top = ranked(study, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    lines = _overview(study, storage, objectives)
    if top:
        atomic_write_text(out_dir / RESULTS_FILE, OmegaConf.to_yaml(_results(study, top)))
        lines += [*_best(study, objectives, top),
                  f"## Top {min(top_k, len(top))} trials by {objectives[0]}", "",
                  *trial_table(top[:top_k], objectives), "",
                  *_importances(study, objectives, top), *_unfinished(study), *_plots(study, out_dir, objectives)]
    else:
        lines += ["No trial has completed yet.", "", *_unfinished(study)]
    path = out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
