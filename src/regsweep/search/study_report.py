"""The study report, rewritten in the sweep dir at the end of every search run (by each worker).

- ``report.md``: trial counts, the best trial (or the Pareto front) with the command that re-runs
  it over 10 seeds, the top-k trials, parameter importances, failed and pruned trials with their
  reasons, and how to browse the study in optuna-dashboard;
- ``report.html``: the same as one self-contained page (figures inside, vector), with the commands that continue
  the study and browse its jobs, and the environment its jobs ran in;
- ``plots/*.png``: optimization history, parallel coordinates and slices of the (first) objective,
  and the Pareto front for several objectives;
- ``optimization_results.yaml``: best parameters and value(s), as Hydra's Optuna sweeper writes them.

Everything is read from the study itself, so the report is the same whichever worker writes it.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from regsweep.atomic import atomic_write_text
from regsweep.records import read_result
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


JOB_DIRS = "job dirs"  # the last column of the trial tables: a trial's jobs, by dir name in the study dir


@dataclass
class Table:
    """A table of the report, its cells as text; the JOB_DIRS column holds the names of the trial's job dirs."""

    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        return ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header),
                *("| " + " | ".join(row) + " |" for row in self.rows)]


@dataclass
class Part:
    """A section of the report, rendered to markdown (report.md) and HTML (report.html) alike."""

    title: str
    lines: list[str] = field(default_factory=list)  # paragraphs, before the table
    table: Table | None = None
    after: list[str] = field(default_factory=list)  # paragraphs after it
    commands: list[str] = field(default_factory=list)  # shell commands, last
    commands_intro: str = ""

    def markdown(self) -> list[str]:
        lines = [f"## {self.title}", "", *paragraphs(self.lines)]
        if self.table is not None:
            lines += [*self.table.markdown(), ""]
        lines += paragraphs(self.after)
        if self.commands:
            lines += [self.commands_intro, "", "```bash", *self.commands, "```", ""]
        return lines


def paragraphs(texts: list[str]) -> list[str]:
    return [line for text in texts for line in (text, "")]


def trial_table(trials: list[FrozenTrial], objectives: list[str]) -> Table:
    """Trial, objective values (per seed when several), parameters, job dirs."""
    params = sorted({name for t in trials for name in t.params})
    per_seed = any("values_per_seed" in t.user_attrs for t in trials)
    header = ["trial", *objectives, *(["per seed"] if per_seed else []), *params, JOB_DIRS]
    rows = []
    for t in trials:
        seeds = ", ".join(_fmt(v[0]) for v in t.user_attrs.get("values_per_seed", []))
        rows.append([str(t.number), *(_fmt(v) for v in t.values), *([seeds] if per_seed else []),
                     *(_fmt(t.params.get(name, "-")) for name in params), " ".join(t.user_attrs.get("job_dirs", []))])
    return Table(header, rows)


def _overview(study: optuna.Study, storage: str, objectives: list[str]) -> list[str]:
    """The study's facts, one line each: objectives, trials by state, seeds per trial, storage."""
    counts = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    states = ", ".join(f"{n} {state.name.lower()}" for state, n in counts.items() if n)
    directions = ", ".join(f"{name} ({d.name.lower()})" for name, d in zip(objectives, study.directions))
    seeds = search_settings(study)["seeds_per_trial"]
    return [
        f"objectives: {directions}",
        f"trials: {sum(counts.values())} ({states or 'none yet'})",
        f"seeds per trial: {seeds}" + (" (the value of a trial is their mean)" if seeds > 1 else ""),
        f"storage: `{storage}`; browse it live with `optuna-dashboard {shlex.quote(storage)}`",
    ]


RERUN = ("Re-run over 10 seeds (plain training, outside the search), so the result does not rest "
         "on the luck of the seed(s) the search saw; report its test metrics:")


def _best(study: optuna.Study, objectives: list[str], top: list[FrozenTrial]) -> Part:
    if len(study.directions) > 1:
        front = ranked(study, study.best_trials)
        return Part(f"Pareto front: {len(front)} of {len(top)} completed trials",
                    ["No other trial is at least as good on every objective and better on one."],
                    trial_table(front, objectives),
                    commands=[f"{rerun_command(study, t)}  # trial {t.number}" for t in front], commands_intro=RERUN)
    best = top[0]
    return Part(f"Best trial: {best.number}", [f"{objectives[0]} = {best.values[0]:.6g}"],
                Table(["parameter", "value"], [[name, str(value)] for name, value in best.params.items()]),
                commands=[rerun_command(study, best)], commands_intro=RERUN)


def _importances(study: optuna.Study, objectives: list[str], complete: list[FrozenTrial]) -> Part:
    part = Part(f"Parameter importances (fANOVA, {objectives[0]})")
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        part.lines = [f"_Skipped: needs {MIN_TRIALS_FOR_IMPORTANCE} completed trials, the study has {len(complete)}._"]
        return part
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=_first_value)
    except (ValueError, RuntimeError) as error:  # e.g. no parameter common to all completed trials
        part.lines = [f"_Skipped: {error}_"]
        return part
    part.table = Table(["parameter", "importance"], [[name, f"{value:.3f}"] for name, value in importances.items()])
    conditional = sorted({name for t in complete for name in t.params} - set(importances))
    if conditional:
        part.after = [f"Left out (set in only some trials): {', '.join(conditional)}."]
    return part


def _unfinished(study: optuna.Study) -> Part | None:
    trials = study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.PRUNED))
    if not trials:
        return None
    rows = [[str(t.number), t.state.name.lower(), str(t.user_attrs.get("reason", "-")),
             " ".join(t.user_attrs.get("job_dirs", []))] for t in trials]
    return Part("Failed and pruned trials", table=Table(["trial", "state", "reason", JOB_DIRS], rows))


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


@dataclass
class Plots:
    """The study's figures: each PNG written under plots/ with its SVG drawing (for report.html), and the plots that
    could not be drawn, with why."""

    drawn: dict[Path, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def markdown(self, out_dir: Path) -> list[str]:
        shown = [f"![{png.stem}]({png.relative_to(out_dir).as_posix()})" for png in self.drawn]
        return ["## Plots", "", *shown, *(f"- {line}" for line in self.skipped), ""]


def _plots(study: optuna.Study, out_dir: Path, objectives: list[str]) -> Plots:
    """Draw each plot to plots/<name>.png; a plot that cannot be drawn is noted, never fatal."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)  # notes on numeric categorical choices
    import matplotlib.pyplot as plt

    from regsweep.aggregate.plots import PAGE_FORMAT, figure_bytes, save_figure

    plots = Plots()
    for name, draw in _plot_functions(study, objectives).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API notices, degenerate axis ranges of few trials
                figure = np.ravel(draw())[0].figure  # plot_slice returns one Axes per parameter
            png = save_figure(figure, out_dir / PLOTS_DIR / f"{name}.png")
            plots.drawn[png] = figure_bytes(figure, PAGE_FORMAT)
            plt.close(figure)
        except Exception as error:  # a plot is a convenience: the rest of the report must still be written
            log.warning("plot %s skipped: %s", name, error)
            plots.skipped.append(f"{name}: skipped ({error})")
    return plots


def _results(study: optuna.Study, top: list[FrozenTrial]) -> dict[str, Any]:
    """Hydra's optimization_results.yaml layout, plus the re-run command(s)."""
    if len(study.directions) > 1:
        return {"name": "optuna", "solutions": [
            {"params": t.params, "values": t.values, "rerun": rerun_command(study, t)} for t in study.best_trials]}
    best = top[0]
    return {"name": "optuna", "best_params": best.params, "best_value": best.values[0],
            "rerun": rerun_command(study, best)}


def write_study_report(study: optuna.Study, out_dir: Path, storage: str, top_k: int = 10) -> Path:
    """Write report.md, report.html, plots/ and (once a trial completed) optimization_results.yaml; return
    report.md's path."""
    out_dir = Path(out_dir)
    objectives = search_settings(study)["objectives"]
    top = ranked(study, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    overview = _overview(study, storage, objectives)
    plots = Plots()
    if top:
        atomic_write_text(out_dir / RESULTS_FILE, OmegaConf.to_yaml(_results(study, top)))
        ranking = Part(f"Top {min(top_k, len(top))} trials by {objectives[0]}",
                       table=trial_table(top[:top_k], objectives))
        parts = [_best(study, objectives, top), ranking, _importances(study, objectives, top), _unfinished(study)]
        plots = _plots(study, out_dir, objectives)
    else:
        parts = [_unfinished(study)]
    parts = [part for part in parts if part is not None]
    lines = [f"# Optuna study `{study.study_name}`", "", *(f"- {line}" for line in overview), ""]
    lines += ["No trial has completed yet.", ""] if not top else []
    lines += [line for part in parts for line in part.markdown()]
    lines += plots.markdown(out_dir) if top else []
    path = out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    write_study_page(study, out_dir, overview, parts, plots, completed=bool(top))
    return path


def write_study_page(study: optuna.Study, out_dir: Path, overview: list[str], parts: list[Part], plots: Plots,
                     completed: bool) -> Path:
    """report.html: the report's parts, the plots (vector), the commands that continue and browse the study, and
    the environment its jobs ran in, as one self-contained page (regsweep.aggregate.report_html)."""
    from regsweep.aggregate import report_html as html  # with the aggregation's tables: only when writing
    from regsweep.aggregate.tables import environments

    sections = [html.Section(html.anchor(part.title), part.title, part_html(part, out_dir)) for part in parts]
    figures = [html.figure_file(png, plots.drawn, f"{png.stem.replace('_', ' ').capitalize()}.", out_dir)
               for png in plots.drawn]
    commands = [html.paragraph("Continue the study (its fixed overrides, into its dir: the sampler, pruner and "
                               "trial count of the command that started it are not recorded), and browse every "
                               "job's curves:", "note"), html.code_block(study_commands(study, out_dir))]
    sections += [
        html.Section("plots", "Plots", [*figures, *(html.paragraph(line) for line in plots.skipped)]),
        html.Section("reproduce", "Reproduce", commands),
        html.Section("environment", "Environment", html.environment_body(environments(study_records(study, out_dir)))),
    ]
    lead = [html.bullets(overview), *([] if completed else [html.paragraph("No trial has completed yet.")])]
    path = out_dir / html.HTML_FILE
    atomic_write_text(path, html.page(f"Optuna study {study.study_name}", lead, sections))
    return path


def part_html(part: Part, out_dir: Path) -> list[str]:
    """A report part as HTML blocks: its paragraphs, its table (job dirs as links), its commands."""
    from regsweep.aggregate import report_html as html

    blocks = [html.paragraph(line) for line in part.lines]
    if part.table is not None:
        links = part.table.header.index(JOB_DIRS) if JOB_DIRS in part.table.header else None
        rows = [[html.Html(" ".join(html.link(f"{name}/", name) for name in cell.split())) if column == links
                 else cell for column, cell in enumerate(row)] for row in part.table.rows]
        blocks.append(html.table(part.table.header, rows, "trials"))
    blocks += [html.paragraph(line) for line in part.after]
    if part.commands:
        blocks += [html.paragraph(part.commands_intro, "note"), html.code_block(part.commands)]
    return blocks


def study_commands(study: optuna.Study, out_dir: Path) -> list[str]:
    """Continue the study (its fixed overrides, into its dir), browse its jobs in TensorBoard."""
    where = str(out_dir.resolve())
    fixed = search_settings(study)["fixed_overrides"]
    return [shlex.join(["python", "train.py", "-m", *fixed, f"hydra.sweep.dir={where}"]),
            f"tensorboard --logdir {shlex.quote(where)}"]


def study_records(study: optuna.Study, out_dir: Path) -> list[tuple[str, Any]]:
    """(job dir name, record) of every completed trial's readable jobs: where they ran."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name in trial.user_attrs.get("job_dirs", []):
            try:
                found.append((name, read_result(out_dir / name)))
            except (OSError, ValueError, TypeError, KeyError):  # gone or damaged: the report goes on without it
                continue
    return found
