"""The real servers of tests/servers.py work: SLURM runs, accounts for and cancels batch jobs and
hands out its (fake) GPUs, and PostgreSQL answers through the driver Optuna's storage uses.
What regsweep does on them is in tests/test_launchers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import PostgresServer, SlurmCluster, wait_until

pytestmark = pytest.mark.slow  # the first test of each kind starts its servers (1-3 s)


# --------------------------------------------------------------------------- SLURM


def _needs_accounting(cluster: SlurmCluster) -> None:
    if not cluster.accounting:
        pytest.skip("SLURM accounting (slurmdbd + MariaDB) is not installed: sacct does not work")


def _job_state(cluster: SlurmCluster, job_id: str) -> str:
    """squeue's state of a job still in the queue (PENDING, RUNNING, ...), '' once it left."""
    return cluster.run("squeue", "-h", "-j", job_id, "-o", "%T", check=False).stdout.strip()


def test_sbatch_job_writes_its_file_and_leaves_the_queue(slurm_cluster: SlurmCluster,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = tmp_path / "job.sh"
    script.write_text(f'#!/bin/sh\necho "job $SLURM_JOB_ID on $SLURMD_NODENAME" > {out}\n')
    job = slurm_cluster.sbatch(f"--partition={slurm_cluster.partition}",
                               f"--output={tmp_path}/slurm-%j.out", str(script))
    slurm_cluster.wait_gone(job)
    assert out.read_text().strip() == f"job {job} on {slurm_cluster.node}"
    assert job not in slurm_cluster.queued()
    if slurm_cluster.accounting:
        wait_until(lambda: slurm_cluster.state(job) == "COMPLETED", "sacct COMPLETED", timeout=10)


def test_sacct_reports_a_cancelled_job(slurm_cluster: SlurmCluster) -> None:
    """What submitit needs: without accounting a cancelled job stays UNKNOWN and its wait hangs."""
    _needs_accounting(slurm_cluster)
    job = slurm_cluster.sbatch("--wrap", "sleep 300")
    wait_until(lambda: _job_state(slurm_cluster, job) == "RUNNING", f"job {job} to run")
    slurm_cluster.run("scancel", job)
    slurm_cluster.wait_gone(job)
    wait_until(lambda: slurm_cluster.state(job).startswith("CANCELLED"), "sacct CANCELLED",
               timeout=10)


def test_jobs_get_the_fake_gpus(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "gpu.txt"
    job = slurm_cluster.sbatch("--gpus-per-node=1", "--wrap", f"echo $CUDA_VISIBLE_DEVICES > {out}")
    slurm_cluster.wait_gone(job)
    assert out.read_text().strip() == "0"


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_url_works_with_sqlalchemy(postgres_server: PostgresServer) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server.url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == postgres_server.user
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
