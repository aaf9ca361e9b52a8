"""GPU: the 40-job L1-vs-L2 study on MNIST, packed vs one job at a time (``make bench-gpu``).

    .venv/bin/python bench/gpu.py [--data-dir DIR] [--epochs 10] [--seeds 0-9] [--off-seeds 0-2]

Runs ``train.py -m regularizer=none,l1,l2,l1l2 seed=0-9 data=mnist callbacks=no_stop`` on the GPU
twice, packed (``pack.size=auto``: the 40 jobs as one batched model) and ``pack.size=off`` (each job
alone, one after another), each timed from command to prompt while nvidia-smi samples the GPU's
utilization and memory, and writes ``bench/results/gpu.{json,md}``: the wall times and their ratio,
the utilization, where each mode's time goes (the records' phases), and each regularizer's mean test
accuracy under both (they must agree). One at a time, the 40 jobs take minutes on a GPU: ``--off-seeds``
runs that mode on fewer seeds and estimates the whole study's time from it, adding the missing jobs' own
measured time only (the fixed costs, imports and summary, are not scaled; an estimate that errs against
the packed path). The MNIST
files come from ``--data-dir`` (default: the shared copy beside the repository, else the project's
own data dir, where a missing file is downloaded). Without a GPU, ``--accelerator cpu --data digits``
runs the same comparison small, which is how the script itself is checked.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from common import PHASES, RESULTS, SHARED_MNIST, TRAIN, machine, pack_seconds, run_script, sweep_records

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.records import OK, ResultRecord

MODES = {"packed": "auto", "off": "off"}  # name -> pack.size
SAMPLE_MS = 200


def parse_reading(line: str) -> tuple[float, float] | None:
    """A "utilization, memory" line as numbers; None for anything else nvidia-smi says ("[N/A]", errors)."""
    try:
        utilization, memory = map(float, line.split(","))
    except ValueError:
        return None
    return utilization, memory


class GpuSampler:
    """nvidia-smi's readings of the first GPU every SAMPLE_MS while a sweep runs; none where there is no nvidia-smi."""

    QUERY = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", f"--loop-ms={SAMPLE_MS}"]

    def __enter__(self) -> "GpuSampler":
        self.readings: list[tuple[float, float]] = []
        smi = shutil.which("nvidia-smi")
        self.process = subprocess.Popen([smi, "--id=0", *self.QUERY], stdout=subprocess.PIPE, text=True) if smi else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            output, _ = self.process.communicate()
            self.readings = [reading for line in output.splitlines() if (reading := parse_reading(line))]

    def summary(self) -> dict[str, float] | None:
        """Utilization in percent over the whole sweep and over the samples with the GPU busy; peak memory."""
        if not self.readings:
            return None
        utilization = [u for u, _ in self.readings]
        busy = [u for u in utilization if u > 0]
        return {"samples": len(utilization), "mean_pct": statistics.mean(utilization),
                "mean_busy_pct": statistics.mean(busy) if busy else 0.0, "busy_share": len(busy) / len(utilization),
                "peak_memory_mib": max(m for _, m in self.readings)}


def study_arguments(args: argparse.Namespace, seeds: str) -> list[str]:
    data_dir = [f"data.data_dir={args.data_dir}"] if args.data_dir and args.data != "digits" else []
    return ["-m", f"regularizer={args.regularizers}", f"seed={seeds}", f"data={args.data}", *data_dir,
            f"trainer.accelerator={args.accelerator}", f"trainer.max_epochs={args.epochs}", "callbacks=no_stop",
            "trainer.enable_progress_bar=false"]


def phases(records: list[ResultRecord]) -> dict[str, float]:
    """Each phase's seconds summed over the packs (a pack's members all carry its timings), and the median epoch."""
    packs = list({r.job.pack or r.job.dir: r for r in records}.values())
    return {**{name: sum(r.timings.get(name, 0.0) for r in packs) for name in PHASES},
            "epoch_s": statistics.median(r.timings.get("epoch_s", 0.0) for r in packs)}


def run_mode(size: str, seeds: str, args: argparse.Namespace, sweep_dir: Path) -> dict[str, object]:
    """One sweep of the study: its wall time, the GPU's readings, where the time went, what the jobs recorded."""
    with GpuSampler() as sampler:
        wall = run_script(TRAIN, *study_arguments(args, seeds), f"pack.size={size}", f"hydra.sweep.dir={sweep_dir}")
    records = sweep_records(sweep_dir)
    accuracy: dict[str, list[float]] = defaultdict(list)
    for record in records:
        accuracy[record.params["regularizer.name"]].append(record.metrics["test"]["test/acc"])
    spent = phases(records)
    return {"wall_s": wall, "seeds": seeds, "jobs": len(records), "ok": sum(r.status == OK for r in records),
            "packs": len({r.job.pack for r in records if r.job.pack}), "phases": spent,
            "jobs_s": pack_seconds(spent), "gpu": sampler.summary(),
            "mean_test_acc": {name: statistics.mean(a) for name, a in sorted(accuracy.items())}}


def study_wall(run: dict, study_jobs: int) -> float:
    """A sweep's wall time had it run ``study_jobs`` jobs: its own, plus the missing jobs at its jobs' mean time."""
    return run["wall_s"] + (study_jobs / run["jobs"] - 1) * run["jobs_s"]


def markdown(result: dict) -> str:
    runs, settings = result["runs"], result["settings"]
    packed, off = runs["packed"], runs["off"]
    modes = (packed, off)
    off_wall = f"{off['wall_s']:.1f} s"
    if off["seeds"] != packed["seeds"]:
        estimate = study_wall(off, packed["jobs"])
        off_wall = f"{estimate:.1f} s (estimated from {off['jobs']} jobs, seeds {off['seeds']}: {off_wall})"
    lines = [f"# GPU study ({result['machine']['gpu'] or 'no GPU: ' + result['machine']['cpu']}, "
             f"torch {result['machine']['torch']})", "",
             f"`python train.py {' '.join(result['command'])}` with `pack.size=auto` and `pack.size=off`, "
             f"{settings['epochs']} epochs; nvidia-smi sampled every {SAMPLE_MS} ms.", "",
             "| measurement | packed | off | target |", "|---|---|---|---|",
             "| jobs OK / packs | " + " | ".join(f"{r['ok']} / {r['packs']}" for r in modes) + " | |",
             f"| command to prompt | {packed['wall_s']:.1f} s | {off_wall} | packed < 120 s |",
             f"| off / packed | {result['off_over_packed']:.1f} | | >= 10 |"]
    for key, label, form in (("mean_pct", "GPU utilization %, whole sweep", ".0f"),
                             ("mean_busy_pct", "GPU utilization %, samples with the GPU busy", ".0f"),
                             ("busy_share", "share of samples with the GPU busy", ".2f"),
                             ("peak_memory_mib", "peak GPU memory, MiB", ".0f")):
        cells = [format(r["gpu"][key], form) if r["gpu"] else "n/a" for r in modes]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | |")
    for name in (*PHASES, "epoch_s"):
        label = "median epoch" if name == "epoch_s" else f"jobs' {name.removesuffix('_s')} phase, summed"
        lines.append(f"| {label}, s | {packed['phases'][name]:.2f} | {off['phases'][name]:.2f} | |")
    for name in packed["mean_test_acc"]:
        lines.append(f"| mean test accuracy, regularizer={name} | {packed['mean_test_acc'][name]:.4f} | "
                     f"{off['mean_test_acc'].get(name, float('nan')):.4f} | agree |")
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-dir", type=Path, default=SHARED_MNIST if SHARED_MNIST.is_dir() else None)
    parser.add_argument("--regularizers", default="none,l1,l2,l1l2")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--off-seeds", help="the seeds pack.size=off runs (default: --seeds); see above")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = {"packed": args.seeds, "off": args.off_seeds or args.seeds}
    runs = {}
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-gpu-") as work:
        for name, size in MODES.items():
            runs[name] = run_mode(size, seeds[name], args, Path(work) / name)
            print(f"{name}: {json.dumps(runs[name])}", flush=True)  # a run cut short by a time limit still says this
    result = {"machine": machine(), "command": study_arguments(args, args.seeds), "runs": runs,
              "settings": {key: str(value) for key, value in vars(args).items() if key != "out"},
              "off_over_packed": study_wall(runs["off"], runs["packed"]["jobs"]) / runs["packed"]["wall_s"]}
    atomic_write_text(args.out / "gpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "gpu.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
