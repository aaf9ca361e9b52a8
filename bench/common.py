"""What the benchmarks share: the machine description, paired timing rounds, ratios, the data."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import torch

from regsweep.records import ResultRecord, find_job_dirs, read_result

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED_FASHION = ROOT.parent / "shared" / "data" / "fashion_mnist"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN = ROOT / "train.py"
PHASES = ("setup_s", "fit_s", "log_s", "histograms_s", "checkpoints_s", "test_s", "write_s")  # a record's timings


def pack_seconds(phases: dict[str, float]) -> float:
    """A pack's own time from its phases: logging, histograms and checkpoints are parts of fit_s."""
    return phases["setup_s"] + phases["fit_s"] + phases["test_s"] + phases["write_s"]


def run_script(script: Path, *arguments: str, cwd: Path = ROOT) -> float:
    """Wall seconds of a Python script in a fresh process, start to exit (what a user waits for at the prompt)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), *arguments], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def sweep_records(sweep_dir: Path) -> list[ResultRecord]:
    """The records of a finished sweep's jobs, in job-dir order."""
    return [read_result(job_dir) for job_dir in find_job_dirs(sweep_dir)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_model() -> str:
    """The CPU's model name (denormal arithmetic is slow on some CPUs and not on others)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


Measurement = TypeVar("Measurement")


def paired_rounds(contenders: dict[str, Callable[[], Measurement]], rounds: int) -> dict[str, list[Measurement]]:
    """Each contender's measurement per round, the order reversed every other round.

    This VM's speed drifts by tens of percent over minutes; comparing contenders within a round,
    in alternating order, keeps that drift out of their ratios.
    """
    times: dict[str, list[Measurement]] = {name: [] for name in contenders}
    for round_index in range(rounds):
        names = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
        for name in names:
            times[name].append(contenders[name]())
    return times


def steady_epoch(epoch_s: list[float]) -> float:
    """The median epoch after the first (which pays for warm-up); the only one when there is one."""
    return statistics.median(epoch_s[1:] or epoch_s)


def ratio_summary(times: dict[str, list[float]], numerator: str, denominator: str) -> dict[str, object]:
    """numerator / denominator within each round: the median, the range, every round."""
    ratios = [a / b for a, b in zip(times[numerator], times[denominator])]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "per_round": [round(r, 3) for r in ratios]}


def ratio_text(ratio: dict[str, object]) -> str:
    return f"{ratio['median']:.2f} (rounds {ratio['min']:.2f}-{ratio['max']:.2f})"
