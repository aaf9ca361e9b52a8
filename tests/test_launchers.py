"""The same sweep through every launcher, on real servers: joblib workers, a SLURM cluster, a
PostgreSQL study with two workers, and a worker killed with -9 whose trial is reaped and retried.

Whichever launcher ran the jobs, the sweep dir looks the same: one dir (no second one for the
launcher's logs), the same job dirs with the same files, a record per job and the summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from conftest import ROOT, TINY
from regsweep.aggregate.load import load_sweep
from regsweep.records import OK, read_result
from regsweep.search.heartbeat import RETRY_OF_ATTR
from regsweep.search.study import open_storage
from servers import PostgresServer, SlurmCluster, wait_until

pytestmark = pytest.mark.slow

SEEDS = ["-m", "seed=0-3", "pack.size=2", *TINY]
SUMMARY = "summary.md"  # the seed summary every multirun ends with


def train(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    environ = {**(env or os.environ), "REGSWEEP_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    environ = {**(env or os.environ), "REGSWEEP_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def layout(sweep: Path) -> dict[str, set[str]]:
    """Each job dir's files (relative paths), TensorBoard event files by their dir only."""
    files = {}
    for job in load_sweep(sweep).jobs:
        root = Path(job.dir)
        files[root.name] = {str(p.relative_to(root).parent if p.name.startswith("events.") else p.relative_to(root))
                            for p in root.rglob("*") if p.is_file()}
    return files


def statuses(sweep: Path) -> dict[str, str]:
    return {Path(job.dir).name: read_result(Path(job.dir)).status for job in load_sweep(sweep).jobs}


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same seed sweep in-process, with Hydra's basic launcher."""
    sweep = tmp_path_factory.mktemp("basic") / "sweep"
    result = train(*SEEDS, f"hydra.sweep.dir={sweep}", cwd=sweep.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def test_joblib_workers_leave_the_same_sweep_dir(basic_sweep: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = train(*SEEDS, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(statuses(sweep).values()) == {OK} and len(statuses(sweep)) == 4
    assert layout(sweep) == layout(basic_sweep)
    assert (sweep / SUMMARY).exists()
    threads = {read_result(Path(job.dir)).threads for job in load_sweep(sweep).jobs}
    assert threads == {max(1, len(os.sched_getaffinity(0)) // 2)}  # two workers divide the cores


def slurm_sweep(cluster: SlurmCluster, sweep: Path, *args: str) -> list[str]:
    """The seed sweep through conf/hydra/launcher/slurm.yaml, sized for the test cluster."""
    return [*SEEDS, "hydra/launcher=slurm", f"hydra.launcher.partition={cluster.partition}",
            "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={sweep}", *args]


def test_a_seed_sweep_on_slurm_leaves_the_same_sweep_dir(slurm_cluster: SlurmCluster, basic_sweep: Path,
                                                         tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "${now:%H-%M-%S-%f}"  # resolved once: the launcher's logs land beside the jobs
    result = train(*slurm_sweep(slurm_cluster, sweep), cwd=tmp_path, env=slurm_cluster.environ())
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert statuses(sweep) == statuses(basic_sweep)
    assert layout(sweep) == layout(basic_sweep)
    assert (sweep / SUMMARY).exists() and (sweep / ".submitit").is_dir()
    assert {read_result(Path(job.dir)).threads for job in load_sweep(sweep).jobs} == {1}  # cpus_per_task


def test_a_cancelled_slurm_job_ends_the_sweep_with_its_jobs_recorded(slurm_cluster: SlurmCluster,
                                                                     tmp_path: Path) -> None:
    """scancel of one array task: the sweep waits for the other, records both, exits non-zero."""
    sweep = tmp_path / "sweep"
    before = slurm_cluster.queued()
    proc = start(*slurm_sweep(slurm_cluster, sweep, "trainer.max_epochs=400", "callbacks=no_stop"),
                 cwd=tmp_path, env=slurm_cluster.environ())
    try:
        wait_until(lambda: len(running(slurm_cluster) - before) == 2, "both packs to run", timeout=120)
        cancelled = min(running(slurm_cluster) - before)
        slurm_cluster.run("scancel", cancelled)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        slurm_cluster.run("scancel", *(slurm_cluster.queued() - before), check=False)
    assert proc.returncode == 1, output[-3000:]
    records = {Path(job.dir).name: read_result(Path(job.dir)) for job in load_sweep(sweep).jobs}
    failed = [r for r in records.values() if r.status != OK]
    assert len(records) == 4 and len(failed) == 2, {n: r.status for n, r in records.items()}
    assert all("CANCELLED" in r.error for r in failed), [r.error for r in failed]
    assert (sweep / SUMMARY).exists()
    assert "2 of 4 jobs failed" in output


def running(cluster: SlurmCluster) -> set[str]:
    return set(cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i").stdout.split())


# --------------------------------------------------------------------------- Optuna storages

SEARCH = ["-m", "hparams_search=optuna", *TINY, "hydra.sweeper.study_name=shared", "hydra/sweeper/pruner=none"]


def test_two_workers_on_postgresql_record_every_trial_once(postgres_server: PostgresServer,
                                                           tmp_path: Path) -> None:
    url = postgres_server.create_database(f"study_{uuid.uuid4().hex[:8]}")  # empty: both workers create the schema
    sweep = tmp_path / "search"
    workers = [start(*SEARCH, "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage={url}", "threads=1",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [out[-2000:] for out in outputs]
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    dirs = sorted(p.name for p in sweep.glob("trial*_seed0"))
    assert dirs == [f"trial{n}_seed0" for n in range(6)]
    assert all(read_result(sweep / name).status == OK for name in dirs)


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_a_killed_workers_trial_is_failed_and_retried(storage: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    url = (request.getfixturevalue("postgres_server").create_database(f"study_{uuid.uuid4().hex[:8]}")
           if storage == "postgresql" else str(tmp_path / "search" / "journal.log"))
    sweep = tmp_path / "search"
    common = [*SEARCH, f"hydra.sweeper.storage={url}", f"hydra.sweep.dir={sweep}", "hydra.sweeper.heartbeat_interval=0.5",
              "hydra.sweeper.grace_period=2", "hydra.sweeper.n_trials=1",
              "trainer.max_epochs=100", "callbacks=no_stop", "last_checkpoint_every_s=0"]  # a few seconds a trial
    doomed = start(*common, cwd=tmp_path)
    try:
        wait_until(lambda: (sweep / "trial0_seed0/checkpoints/last.ckpt").exists() or doomed.poll() is not None,
                   "the first trial to train", timeout=120)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.communicate()
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]

    result = train(*common, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    first, retry = optuna.load_study(study_name="shared", storage=open_storage(url)).trials
    assert first.state == optuna.trial.TrialState.FAIL and "its worker stopped" in first.user_attrs["reason"]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs[RETRY_OF_ATTR] == 0 and retry.params == first.params
    assert "| 0 | fail | its worker stopped" in (sweep / "report.md").read_text()
