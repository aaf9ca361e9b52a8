"""Reference results: run every ready-made study and assemble docs/results.md (``make results``).

Each study of ``conf/experiment/`` runs as a user runs it (``python train.py -m experiment=<name>``)
into ``<work>/<name>``; re-running resumes an interrupted study (completed jobs are kept). Its
seed summary (summary.md) goes into docs/results.md under the exact command, with the run's
seeds, epochs, wall time and device, and its group plots are copied next to it. What a study's
numbers mean, and how they compare with the course reports, is prose written after reading them:
``docs/notes/<name>.md``, included when present. The page opens with every number the course reports print
beside ours (``regsweep.course_reports``, from ``docs/course_reports.yaml``); a study whose sweep dir is not
under ``<work>`` keeps its section of the page before.

    python -m regsweep.reference                         # all studies (hours on a 2-core CPU)
    python -m regsweep.reference --studies l1_vs_l2 regression --extra trainer.max_epochs=5
    python -m regsweep.reference --assemble-only         # rebuild docs/results.md from the sweep dirs
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from regsweep.aggregate import JOBS_FILE, SUMMARY_FILE, aggregate_sweep, load_sweep
from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.course_reports import side_by_side
from regsweep.records import OK, ResultRecord
from regsweep.sweep.plan import PLAN_FILE, SweepPlan

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "conf" / "experiment"
DOCS = ROOT / "docs"
REPORTS_FILE = "course_reports.yaml"  # in docs/: every number the course reports print, and its study
TIMING_FILE = "reference_wall_s.txt"  # in each study's sweep dir: how long its runs took, all together


@dataclass
class StudyRun:
    name: str
    command: list[str]
    sweep_dir: Path
    wall_s: float | None  # None: not timed


def study_names() -> list[str]:
    return sorted(path.stem for path in EXPERIMENTS.glob("*.yaml"))


def study_question(name: str) -> str:
    """The question the study's config opens with: its comment lines up to the first that ends in ':'."""
    words: list[str] = []
    for line in (EXPERIMENTS / f"{name}.yaml").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or "@package" in line:
            continue
        words.append(line.lstrip("# "))
        if line.endswith(":"):
            break
    return " ".join(words).rstrip(":") if words else name


def command_of(name: str, extra: Sequence[str]) -> list[str]:
    return ["python", "train.py", "-m", f"experiment={name}", "trainer.enable_progress_bar=false", *extra]


def run_study(name: str, work: Path, extra: Sequence[str]) -> None:
    """Run (or resume) one study and note its wall time; its jobs' failures are in its summary."""
    sweep_dir = (work / name).resolve()
    command = command_of(name, extra)
    started = time.perf_counter()
    print(f"== {name}: {' '.join(command)}", flush=True)
    subprocess.run([sys.executable, str(ROOT / "train.py"), *command[2:], f"hydra.sweep.dir={sweep_dir}"],
                   cwd=ROOT, check=False, env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    if sweep_dir.is_dir():  # a resumed study adds its time to the runs before
        before = recorded_wall_s(sweep_dir) or 0.0
        atomic_write_text(sweep_dir / TIMING_FILE, f"{before + time.perf_counter() - started:.0f}\n")


def recorded_wall_s(sweep_dir: Path) -> float | None:
    """The wall time of the study's runs so far; None when none was timed."""
    timing = sweep_dir / TIMING_FILE
    return float(timing.read_text()) if timing.exists() else None


def earlier_run(name: str, work: Path) -> StudyRun:
    """A study as its sweep dir tells it: the command from its plan, the wall time of its runs."""
    sweep_dir = (work / name).resolve()
    plan = SweepPlan.load(sweep_dir)
    extra = [a for a in (plan.command[1:] if plan else [])
             if not a.startswith(("-m", "experiment=", "hydra.sweep.dir=", "trainer.enable_progress_bar="))]
    return StudyRun(name, command_of(name, extra), sweep_dir, recorded_wall_s(sweep_dir))


def current_records(sweep_dir: Path, aggregated: bool) -> list[ResultRecord]:
    """The records of a study's jobs; a study not ``aggregated`` by its own sweep just now is aggregated
    again, so that its tables and plots are those of the current aggregation."""
    if aggregated:
        return [job.record for job in load_sweep(sweep_dir).jobs if job.record is not None]
    return aggregate_sweep(sweep_dir).records


def run_facts(run: StudyRun, records: list[ResultRecord]) -> str:
    """Jobs, seeds and epochs trained, from the records; wall time; where they trained."""
    ok = [r for r in records if r.status == OK]
    seeds = sorted({r.seed for r in ok if r.seed is not None})
    epochs = sorted({r.epochs for r in ok})
    parts = [f"{len(ok)} of {len(records)} jobs ok",
             f"seeds {seeds[0]}-{seeds[-1]}" if seeds else "no seeds",
             f"epochs trained {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"{epochs[0] if epochs else 0} epochs"]
    if run.wall_s is not None:
        parts.append(f"wall time {run.wall_s / 60:.1f} min")
    return "; ".join(parts) + f" {where_trained(ok)}"


def where_trained(records: list[ResultRecord]) -> str:
    """The device and torch threads the records name (not the machine assembling the page)."""
    devices = sorted({str(r.environment.get("device")) for r in records if r.environment.get("device")})
    threads = sorted({r.threads for r in records if r.threads is not None})
    if not devices:
        return "(device not recorded)"
    on_threads = f", {'/'.join(map(str, threads))} torch threads" if threads else ""
    return f"on {' and '.join(devices)}{on_threads}"


def summary_section(run: StudyRun, figures: Path) -> list[str]:
    """The study's summary.md, headings one level down, its group plots and jobs.csv copied to ``figures``."""
    summary = run.sweep_dir / SUMMARY_FILE
    if not summary.exists():
        return ["_No summary: the study did not run (see its log)._", ""]
    figures.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in summary.read_text(encoding="utf-8").splitlines()[1:]:  # its own title goes
        image = re.fullmatch(r"!\[(.*)\]\((.+)\)", line.strip())
        if image:
            source = run.sweep_dir / image.group(2)
            if not image.group(2).startswith("plots/") or not source.exists():
                continue  # per-job plots stay in the sweep dir
            shutil.copy2(source, figures / source.name)
            line = f"![{image.group(1)}]({figures.relative_to(DOCS)}/{source.name})"
        if f"]({JOBS_FILE})" in line and (run.sweep_dir / JOBS_FILE).exists():  # the per-seed values, beside the plots
            shutil.copy2(run.sweep_dir / JOBS_FILE, figures / JOBS_FILE)
            line = line.replace(f"]({JOBS_FILE})", f"]({figures.relative_to(DOCS)}/{JOBS_FILE})")
        lines.append("#" + line if line.startswith("#") else line)
    return lines


def study_section(run: StudyRun, records: list[ResultRecord]) -> list[str]:
    notes = DOCS / "notes" / f"{run.name}.md"
    return [
        f"## {run.name}: {study_question(run.name)}",
        "",
        "```bash",
        " ".join(run.command),
        "```",
        "",
        run_facts(run, records) + ".",
        "",
        *([notes.read_text(encoding="utf-8").strip(), ""] if notes.exists() else []),
        *summary_section(run, DOCS / "results" / run.name),
        "",
    ]


STUDY_HEADING = re.compile(r"^## (\w+): ", re.MULTILINE)


def previous_sections(page: Path) -> dict[str, str]:
    """The study sections of an earlier docs/results.md, by study name: a study whose sweep dir is not here
    (run on another machine, or cleaned away) keeps the section its own run wrote."""
    if not page.exists():
        return {}
    text = page.read_text(encoding="utf-8")
    starts = list(STUDY_HEADING.finditer(text))
    return {match.group(1): text[match.start(): starts[i + 1].start() if i + 1 < len(starts) else len(text)].rstrip()
            for i, match in enumerate(starts)}


def results_markdown(studies: list[tuple[StudyRun, list[ResultRecord]]], kept: dict[str, str]) -> str:
    """docs/results.md: the course reports beside our numbers, then a section per study, from the records of its
    run or, for a study not run here, as ``kept`` from the page before."""
    sections = {run.name: "\n".join(study_section(run, records)) for run, records in studies}
    ordered = [sections.get(name) or kept[name] for name in study_names() if name in sections or name in kept]
    return "\n".join([
        "# Reference results of the ready-made studies",
        "",
        "Every number below comes from a real run of the command above it on this project's machine, "
        "assembled by `make results` (`python -m regsweep.reference`); the tables are the studies' own "
        "seed summaries (mean ± standard error over seeds, Welch tests with Holm correction). "
        "A command that differs from the study's defaults says so in its arguments. Wall times are "
        "those of a shared 2-core machine that was doing other work too; clean timings are in bench/.",
        "",
        *side_by_side(DOCS / REPORTS_FILE, DOCS / "results", study_names()),
        *(line for section in ordered for line in (section, "")),
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regsweep.reference", description=cli_description(__doc__))
    parser.add_argument("--studies", nargs="*", default=None, help=f"default: all of {', '.join(study_names())}")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every study, e.g. trainer.max_epochs=5")
    parser.add_argument("--work", type=Path, default=ROOT / "multirun" / "reference", help="where the sweep dirs go")
    parser.add_argument("--out", type=Path, default=DOCS / "results.md")
    parser.add_argument("--assemble-only", action="store_true", help="do not run: assemble from the sweep dirs")
    args = parser.parse_args(argv)
    names = args.studies or study_names()
    unknown = sorted(set(names) - set(study_names()))
    if unknown:
        parser.error(f"unknown studies {unknown}; the studies are {study_names()}")
    just_run = [] if args.assemble_only else names
    for name in just_run:
        run_study(name, args.work, args.extra)
    # Every study run so far, so that studies run one command at a time (each with its own --extra) add up
    runs = [earlier_run(name, args.work) for name in study_names() if (args.work / name / PLAN_FILE).exists()]
    studies = [(run, current_records(run.sweep_dir, aggregated=run.name in just_run)) for run in runs]
    atomic_write_text(args.out, results_markdown(studies, previous_sections(args.out)).rstrip() + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
