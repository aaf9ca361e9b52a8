"""GPU: the 40-job L1-vs-L2 study on MNIST, packed vs one job at a time (``make bench-gpu``).

    .venv/bin/python bench/gpu.py [--data-dir DIR] [--epochs 10] [--seeds 0-9]

Runs ``train.py -m regularizer=none,l1,l2,l1l2 seed=0-9 data=mnist callbacks=no_stop`` on the GPU
twice, packed (``pack.size=auto``: the 40 jobs as one batched model) and ``pack.size=off`` (each job
alone, one after another), each timed from command to prompt while nvidia-smi samples the GPU's
utilization and memory, and writes ``bench/results/gpu.{json,md}``: the wall times and their ratio,
the utilization, and each regularizer's mean test accuracy under both (they must agree). The MNIST
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

from common import RESULTS, SHARED_MNIST, TRAIN, machine, run_script, sweep_records

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.records import OK

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


def study_arguments(args: argparse.Namespace) -> list[str]:
    data_dir = [f"data.data_dir={args.data_dir}"] if args.data_dir and args.data != "digits" else []
    return ["-m", f"regularizer={args.regularizers}", f"seed={args.seeds}", f"data={args.data}", *data_dir,
            f"trainer.accelerator={args.accelerator}", f"trainer.max_epochs={args.epochs}", "callbacks=no_stop",
            "trainer.enable_progress_bar=false"]


def run_mode(size: str, args: argparse.Namespace, sweep_dir: Path) -> dict[str, object]:
    """One sweep of the study: its wall time, the GPU's readings, what the jobs recorded."""
    with GpuSampler() as sampler:
        wall = run_script(TRAIN, *study_arguments(args), f"pack.size={size}", f"hydra.sweep.dir={sweep_dir}")
    records = sweep_records(sweep_dir)
    accuracy: dict[str, list[float]] = defaultdict(list)
    for record in records:
        accuracy[record.params["regularizer.name"]].append(record.metrics["test"]["test/acc"])
    return {"wall_s": wall, "jobs": len(records), "ok": sum(r.status == OK for r in records),
            "packs": len({r.job.pack for r in records if r.job.pack}),
            "gpu": sampler.summary(), "mean_test_acc": {name: statistics.mean(a) for name, a in sorted(accuracy.items())}}


def markdown(result: dict) -> str:
    runs, settings = result["runs"], result["settings"]
    lines = [f"# GPU study ({result['machine']['gpu'] or 'no GPU: ' + result['machine']['cpu']}, "
             f"torch {result['machine']['torch']})", "",
             f"`python train.py {' '.join(result['command'])}` with `pack.size=auto` and `pack.size=off`, "
             f"{settings['epochs']} epochs; nvidia-smi sampled every {SAMPLE_MS} ms.", "",
             "| measurement | packed | off | target |", "|---|---|---|---|",
             "| jobs OK / packs | " + " | ".join(f"{r['ok']} / {r['packs']}" for r in (runs["packed"], runs["off"])) + " | |",
             f"| command to prompt | {runs['packed']['wall_s']:.1f} s | {runs['off']['wall_s']:.1f} s | packed < 120 s |",
             f"| off / packed | {result['off_over_packed']:.1f} | | >= 10 |"]
    for key, label, form in (("mean_pct", "GPU utilization %, whole sweep", ".0f"),
                             ("mean_busy_pct", "GPU utilization %, samples with the GPU busy", ".0f"),
                             ("busy_share", "share of samples with the GPU busy", ".2f"),
                             ("peak_memory_mib", "peak GPU memory, MiB", ".0f")):
        cells = [format(r["gpu"][key], form) if r["gpu"] else "n/a" for r in (runs["packed"], runs["off"])]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | |")
    for name in runs["packed"]["mean_test_acc"]:
        lines.append(f"| mean test accuracy, regularizer={name} | {runs['packed']['mean_test_acc'][name]:.4f} | "
                     f"{runs['off']['mean_test_acc'][name]:.4f} | agree |")
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-dir", type=Path, default=SHARED_MNIST if SHARED_MNIST.is_dir() else None)
    parser.add_argument("--regularizers", default="none,l1,l2,l1l2")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-gpu-") as work:
        for name, size in MODES.items():
            runs[name] = run_mode(size, args, Path(work) / name)
            print(f"{name}: {json.dumps(runs[name])}", flush=True)  # a run cut short by a time limit still says this
    result = {"machine": machine(), "command": study_arguments(args), "runs": runs,
              "settings": {key: str(value) for key, value in vars(args).items() if key != "out"},
              "off_over_packed": runs["off"]["wall_s"] / runs["packed"]["wall_s"]}
    atomic_write_text(args.out / "gpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "gpu.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
