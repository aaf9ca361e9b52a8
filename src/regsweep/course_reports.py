"""The course reports' numbers beside regsweep's: one table per report in docs/results.md.

The reports (``../shared/reports``, never copied here) print single runs; each number they print is declared
once, in ``docs/course_reports.yaml``, with the study that reproduces it, the group of that study's jobs and the
metric it is on (the report's own: its "error" is a loss where the report says so), and why the two may differ.
Our side is read from the study's ``jobs.csv`` as ``make results`` copies it into ``docs/results/<study>/``: the
seeds' mean ± standard error, and whether the report's number lies inside our 95% t interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from regsweep.aggregate import JOBS_FILE
from regsweep.aggregate import stats
from regsweep.aggregate.tables import markdown_table, mean_se_text

HEADER = ["the report's number", "regsweep: mean ± SE (n seeds)", "report's value in our 95% CI?", "why it differs"]
RANGE = "range"  # a number the report gives as a span over its trials (compared with our seeds' span)


class ReportsFileError(ValueError):
    """docs/course_reports.yaml names a study or a statistic that does not exist."""


@dataclass(frozen=True)
class ReportNumber:
    """One number a report prints, and where regsweep's counterpart comes from."""

    quantity: str  # what the report measured, in its words and units
    value: float | list[float]  # its number; [low, high] for a RANGE
    study: str | None  # the ready-made study that reproduces it; None: not run (``why`` says why)
    metric: str = ""  # a jobs.csv column: test/acc, final/val/loss, test/total_loss, epochs, ...
    where: dict[str, str] = field(default_factory=dict)  # the study's group: swept key -> value, as jobs.csv has it
    why: str = ""  # why our number may differ, or "" where it should not
    statistic: str = "mean"  # mean | range


@dataclass(frozen=True)
class CourseReport:
    file: str  # its name in shared/reports
    title: str
    numbers: list[ReportNumber]
    reading: str = ""  # what we make of the comparison, written after reading both


def load_reports(path: Path, studies: list[str]) -> list[CourseReport]:
    """The reports of ``path``, each number checked: its study among ``studies``, a statistic that exists."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    reports = []
    for entry in entries:
        numbers = [ReportNumber(**{**n, "where": {k: str(v) for k, v in (n.get("where") or {}).items()}})
                   for n in entry.pop("numbers")]
        for number in numbers:
            if number.study is not None and number.study not in studies:
                raise ReportsFileError(f"{path}: {number.quantity!r} names study {number.study!r}; "
                                       f"the studies are {', '.join(studies)}")
            if number.statistic not in ("mean", RANGE):
                raise ReportsFileError(f"{path}: {number.quantity!r}: statistic must be mean or {RANGE}")
        reports.append(CourseReport(numbers=numbers, **entry))
    return reports


def study_jobs(results: Path, studies: set[str]) -> dict[str, pd.DataFrame]:
    """Each study's jobs.csv as ``make results`` copied it, read once; a study without one here is left out."""
    sources = {study: results / study / JOBS_FILE for study in studies}
    return {study: pd.read_csv(source, dtype=str, keep_default_na=False)
            for study, source in sources.items() if source.exists()}


def seed_values(number: ReportNumber, jobs: pd.DataFrame | None) -> np.ndarray | None:
    """The counted seeds' values of the number's metric in its group of ``jobs`` (its study's jobs.csv);
    None when the study has none here."""
    if jobs is None:
        return None
    if number.metric not in jobs.columns:
        return np.array([])
    chosen = jobs["counted"] == "True"
    for key, value in number.where.items():
        chosen &= jobs[key] == value if key in jobs.columns else False
    return pd.to_numeric(jobs.loc[chosen, number.metric], errors="coerce").dropna().to_numpy(float)


def report_text(number: ReportNumber) -> str:
    if number.statistic == RANGE:
        low, high = number.value
        return f"{number.quantity}: {low:g} to {high:g}"
    return f"{number.quantity}: {number.value:g}"


def our_text(number: ReportNumber, values: np.ndarray | None) -> tuple[str, str]:
    """Our mean ± SE (or span) and whether the report's number is inside our 95% interval."""
    if values is None:
        return ("no study" if number.study is None
                else f"not run here (`make results ARGS='--studies {number.study}'`)"), "–"
    if values.size == 0:
        return "no counted job in this group", "–"
    if number.statistic == RANGE:
        low, high = number.value
        inside = "overlaps" if values.min() <= high and values.max() >= low else "no overlap"
        return f"{values.min():.4g} to {values.max():.4g} (n = {values.size})", inside
    ours = f"{mean_se_text(stats.mean(values), stats.standard_error(values))} (n = {values.size})"
    if values.size < 2:
        return ours, "– (one seed)"
    low, high = stats.t_interval(values)
    inside = low <= number.value <= high or (math.isclose(low, high) and math.isclose(low, number.value))
    return ours, f"yes [{low:.4g}, {high:.4g}]" if inside else f"no [{low:.4g}, {high:.4g}]"


def report_section(report: CourseReport, jobs: dict[str, pd.DataFrame]) -> list[str]:
    rows = [[report_text(n), *our_text(n, seed_values(n, jobs.get(str(n.study)))), n.why or "–"]
            for n in report.numbers]
    studies = ", ".join(dict.fromkeys(f"`experiment={n.study}`" for n in report.numbers if n.study))
    return [f"### {report.file}: {report.title}", "", f"Studies: {studies}.", "", markdown_table(HEADER, rows), "",
            *([report.reading.strip(), ""] if report.reading else [])]


def side_by_side(path: Path, results: Path, studies: list[str]) -> list[str]:
    """The section of docs/results.md that sets every report's numbers beside ours (none without ``path``)."""
    if not path.exists():
        return []
    reports = load_reports(path, studies)
    jobs = study_jobs(results, {str(n.study) for r in reports for n in r.numbers if n.study is not None})
    return [
        "## The course reports, side by side",
        "",
        "Each number a report in `shared/reports` prints, beside the study that asks its question at its settings "
        "(what the report does not give, and what we chose instead, is in each study's config and note). The "
        "reports are single runs; ours are the seeds' mean ± standard error, and the third column says whether the "
        "report's number lies inside our 95% t interval of the mean: a number outside it is one our seeds do not "
        "give on average, not necessarily one a single run could not give.",
        "",
        *(line for report in reports for line in report_section(report, jobs)),
    ]
