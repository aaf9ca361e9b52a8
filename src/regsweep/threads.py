"""How many CPU threads a job's torch work uses: the cores it may use, divided among the jobs beside it.

Two processes that each use every core run several times slower than one (they fight over the
same cores), so jobs launched side by side by a parallel launcher divide the cores between them.
"""

from __future__ import annotations

import logging
import os

import torch
from hydra.core.hydra_config import HydraConfig

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a SLURM allocation when there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    return min(cores, int(slurm)) if slurm and slurm.isdigit() else cores


def parallel_workers() -> int:
    """Jobs this launcher runs at once on this machine (joblib's n_jobs; 1 for the others)."""
    if not HydraConfig.initialized():
        return 1
    launcher = HydraConfig.get().launcher
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    if n_jobs is None:
        return 1
    return available_cores() if n_jobs < 0 else max(1, int(n_jobs))


def job_threads(setting: int | str) -> int:
    if setting != "auto":
        return int(setting)
    return max(1, available_cores() // parallel_workers())


def configure_threads(setting: int | str) -> int:
    """Set torch's intra-op threads from ``threads`` (auto = cores / parallel workers); returns the count."""
    threads = job_threads(setting)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch uses %d threads (threads=%s)", threads, setting)
    return threads
