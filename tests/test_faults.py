"""Sweeps that survive: signals, kills, resume, a busy or foreign sweep dir, a full or read-only disk.

Each test runs train.py as a user does (a subprocess), disturbs it the way schedulers, users and
disks do, and checks that nothing is lost, nothing is half-written and the exit status is honest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, run_train
from regsweep.aggregate.load import load_sweep
from regsweep.checkpoints import LAST_FORMAT
from regsweep.records import read_epochs_csv, read_result
from regsweep.sweep.plan import COMMAND_FILE, PLAN_FILE, SweepPlan

# Long enough to be interrupted mid-training (about 2 s a job), with a checkpoint after every epoch.
LONG = [*TINY, "model.hidden_sizes=[64]", "trainer.max_epochs=60", "callbacks=no_stop", "last_checkpoint_every_s=0"]


def start_train(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "REGSWEEP_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path_glob: Path, pattern: str, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(path_glob.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"nothing matched {path_glob}/{pattern} within {timeout} s")


def job_dirs(sweep: Path) -> list[Path]:
    return [Path(job.dir) for job in load_sweep(sweep).jobs]


def interrupt(sweep: Path, signum: int, *args: str, cwd: Path, after: str = "1_*/checkpoints/last.ckpt"):
    """Start a 4-job sweep (one job at a time), signal it once the second job has a checkpoint."""
    process = start_train("-m", "seed=0-3", *LONG, "pack.size=off", *args, f"hydra.sweep.dir={sweep}", cwd=cwd)
    wait_for(sweep, after)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_stops_the_job_at_a_safe_point_records_it_and_the_sweep_says_what_did_not_run(
        tmp_path: Path, signum: int, code: int, name: str) -> None:
    sweep = tmp_path / "sweep"
    returncode, stdout, stderr = interrupt(sweep, signum, cwd=tmp_path)
    assert returncode == code, stderr[-3000:]
    first, second, third, fourth = job_dirs(sweep)  # the plan: every job has its dir from the start
    assert read_result(first).status == "ok"
    record = read_result(second)
    assert record.status == "interrupted" and name in record.error and "resuming continues from epoch" in record.error
    assert (second / "checkpoints" / "last.ckpt").exists()
    assert len(read_epochs_csv(second / "metrics.csv")) == record.epochs  # the rows up to the checkpoint
    assert not (third / "result.json").exists() and not (fourth / "result.json").exists()
    summary = (sweep / "summary.md").read_text()  # the summary of what completed, naming what did not
    assert "4 jobs in 1 group: 1 ok, 0 failed, 1 interrupted, 2 missing" in summary
    assert f"`{second.name}` ((all)): interrupted: {record.error}" in summary
    assert third.name in summary and fourth.name in summary
    assert stdout.splitlines()[-1] == f"resume: regsweep-resume {sweep}"  # the way on, said last


@pytest.mark.slow
def test_a_resumed_sweep_keeps_completed_jobs_and_continues_the_interrupted_one_to_the_same_numbers(
        tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    returncode, _, stderr = interrupt(sweep, signal.SIGTERM, cwd=tmp_path)
    assert returncode == 143, stderr[-3000:]
    first, second = job_dirs(sweep)[:2]
    kept_mtime = (first / "result.json").stat().st_mtime_ns
    interrupted_at = read_result(second).epochs

    resumed = run_train("-m", "seed=0-3", *LONG, "pack.size=off", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (first / "result.json").stat().st_mtime_ns == kept_mtime  # completed: not run again
    assert "continues from" in (second / "train.log").read_text()
    assert all(read_result(d).status == "ok" for d in job_dirs(sweep))

    reference = tmp_path / "reference"  # the interrupted job's config, never interrupted
    fresh = run_train("-m", "seed=1", *LONG, "pack.size=off", f"hydra.sweep.dir={reference}", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    [uninterrupted] = job_dirs(reference)
    continued = read_result(second)
    assert 0 < interrupted_at < continued.epochs == 60
    assert continued.metrics == read_result(uninterrupted).metrics  # bit for bit: restored streams and state
    assert read_epochs_csv(second / "metrics.csv") == read_epochs_csv(uninterrupted / "metrics.csv")


@pytest.mark.slow
def test_a_killed_pack_leaves_nothing_half_written_and_resumes(tmp_path: Path) -> None:
    """SIGKILL (no handler runs): every file is whole or absent; the same command finishes the sweep."""
    sweep = tmp_path / "sweep"
    process = start_train("-m", "seed=0-3", *LONG, f"hydra.sweep.dir={sweep}", cwd=tmp_path)  # one pack of 4
    wait_for(sweep, "*/checkpoints/last.ckpt")
    time.sleep(0.3)
    process.kill()
    process.communicate(timeout=60)
    checkpoints = list(sweep.rglob("last.ckpt"))
    assert checkpoints  # what was written is whole: it loads (a writer's temp files are never read)
    assert all(torch.load(path, weights_only=False)["format"] == LAST_FORMAT for path in checkpoints)
    assert all(read_epochs_csv(path) is not None for path in sweep.rglob("metrics.csv"))
    assert SweepPlan.load(sweep) is not None and all(read_result(p.parent) for p in sweep.rglob("result.json"))
    older = checkpoints[0]  # as if an earlier version of regsweep had written it: that job starts again
    torch.save({**torch.load(older, weights_only=False), "format": "regsweep-last/1"}, older)
    resumed = run_train("-m", "seed=0-3", *LONG, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [read_result(d) for d in job_dirs(sweep)]
    assert [r.status for r in records] == ["ok"] * 4 and all(r.epochs == 60 for r in records)
    log = (older.parent.parent / "train.log").read_text()
    assert "written by another version of regsweep" in log and "training from the start" in log


@pytest.mark.slow
def test_another_command_on_a_sweep_dir_is_refused_and_so_is_a_second_process(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = run_train("-m", "seed=0,1", *TINY, "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (sweep / "summary.md").stat().st_mtime_ns
    other = run_train("-m", "seed=0,1,2", *TINY, "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert other.returncode != 0 and "holds another sweep" in other.stderr
    assert len(SweepPlan.load(sweep).jobs) == 2
    assert "summary" not in other.stdout and (sweep / "summary.md").stat().st_mtime_ns == summary  # not this sweep's

    busy = tmp_path / "busy"
    minutes = [*LONG, "trainer.max_epochs=2000"]  # the first is still training however loaded the machine is
    first = start_train("-m", "seed=0-3", *minutes, f"hydra.sweep.dir={busy}", cwd=tmp_path)
    wait_for(busy, PLAN_FILE)
    second = run_train("-m", "seed=0-3", *minutes, f"hydra.sweep.dir={busy}", cwd=tmp_path)
    first.kill()
    first.communicate(timeout=60)
    assert second.returncode != 0 and "is in use by pid" in second.stderr
    assert "summary" not in second.stdout + second.stderr  # the other process's jobs, still training


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")


@pytest.mark.slow
def test_a_read_only_output_dir_is_refused_before_any_job(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    mount_tmpfs(disk, "1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run_train("-m", "seed=0,1", *TINY, f"hydra.sweep.dir={disk}/sweep", cwd=tmp_path)
        assert result.returncode != 0 and "is not a writable directory (Read-only file system)" in result.stderr
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_sweep_fails_the_jobs_it_hits_and_the_count_stays_right(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    mount_tmpfs(disk, "3m")  # room for the plan and a few jobs' files, not for every checkpoint
    try:
        sweep = disk / "sweep"
        result = run_train("-m", "seed=0-5", *TINY, "pack.size=off", "model.hidden_sizes=[512]",
                           "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
        assert result.returncode != 0
        assert "No space left on device" in result.stderr or "ENOSPC" in result.stderr
        jobs = load_sweep(sweep).jobs
        assert len(jobs) == 6  # all planned jobs are counted, whatever happened to them
        assert any(job.status == "ok" for job in jobs) and any(job.status != "ok" for job in jobs)
        assert "jobs failed" in result.stderr and "Traceback" not in result.stderr.split("jobs failed")[-1]
    finally:
        subprocess.run(["umount", str(disk)])


# Members that stop early at different epochs (about 8, 10, 11 and 12 of 40), a checkpoint after every epoch.
STOPPING = [*TINY, "model.hidden_sizes=[64]", "optimizer.lr=0.01", "callbacks.early_stopping.patience=2",
            "trainer.max_epochs=40", "last_checkpoint_every_s=0", "-m", "seed=0-3"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The early-stopping sweep run without a disturbance: each job's dir by name."""
    root = tmp_path_factory.mktemp("uninterrupted")
    done = run_train(*STOPPING, f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return {path.name: path for path in job_dirs(root / "sweep")}


def assert_same_jobs(sweep: Path, reference: dict[str, Path]) -> None:
    """Every job of ``sweep`` ended as its namesake in ``reference``: status, epochs, stop reason, every metric, rows."""
    dirs = job_dirs(sweep)
    assert sorted(d.name for d in dirs) == sorted(reference)
    for job in dirs:
        got, want = read_result(job), read_result(reference[job.name])
        assert (got.status, got.epochs, got.steps, got.stop_reason) == (want.status, want.epochs, want.steps,
                                                                         want.stop_reason), job.name
        assert got.metrics == want.metrics, job.name
        assert read_epochs_csv(job / "metrics.csv") == read_epochs_csv(reference[job.name] / "metrics.csv")


def records_written(sweep: Path, n: int) -> None:
    """Wait until ``n`` jobs have their record (a member that stops writes its own at once)."""
    deadline = time.monotonic() + 240
    while len(list(sweep.glob("*/result.json"))) < n:
        assert time.monotonic() < deadline, f"fewer than {n} records within 240 s"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["stop then signal", "signal then stop", "two stops then kill -9"])
def test_members_that_stopped_early_keep_their_results_whatever_stops_their_pack_and_resume_ends_as_uninterrupted(
        tmp_path: Path, uninterrupted: dict[str, Path], order: str) -> None:
    sweep = tmp_path / "sweep"
    process = start_train(*STOPPING, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    if order == "signal then stop":
        wait_for(sweep, "*/checkpoints/last.ckpt")
    else:
        records_written(sweep, 1 if order == "stop then signal" else 2)
    process.send_signal(signal.SIGKILL if "kill" in order else signal.SIGTERM)
    process.communicate(timeout=240)
    stopped = {d.name: read_result(d) for d in job_dirs(sweep) if (d / "result.json").exists()}
    if order != "signal then stop":  # the members that had stopped: complete, tested, whatever came after
        done = [r for r in stopped.values() if r.status == "ok"]
        assert done and all(r.epochs > 0 and r.metrics["test"] and r.stop_reason for r in done)
        assert all(read_result(uninterrupted[name]).metrics == r.metrics for name, r in stopped.items()
                   if r.status == "ok")

    resumed = subprocess.run([sys.executable, "-m", "regsweep.resume", str(sweep)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_jobs(sweep, uninterrupted)


@pytest.mark.slow
def test_a_finished_job_whose_record_is_gone_is_written_again_from_its_checkpoint(
        tmp_path: Path, uninterrupted: dict[str, Path]) -> None:
    """Its last.ckpt says how it ended (here: early stopping), so it is tested and written again, not trained on."""
    sweep = tmp_path / "sweep"
    shutil.copytree(next(iter(uninterrupted.values())).parent, sweep)
    [gone] = [d for d in job_dirs(sweep) if d.name.startswith("2_")]
    (gone / "result.json").unlink()
    again = run_train(*STOPPING, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "had ended; testing and writing it again" in (gone / "train.log").read_text()
    assert_same_jobs(sweep, uninterrupted)


@pytest.mark.slow
def test_a_resume_runs_again_a_job_whose_record_is_damaged_or_not_its_own(tmp_path: Path) -> None:
    short = [*TINY, "trainer.max_epochs=1", "-m", "seed=0-2"]
    first, other = tmp_path / "first", tmp_path / "other"
    for sweep in (first, other):
        done = run_train(*short, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    jobs, others = job_dirs(first), job_dirs(other)
    kept = (jobs[0] / "result.json").stat().st_mtime_ns
    (jobs[1] / "result.json").write_text('{"status": "ok", "job": ')  # truncated
    shutil.copy(others[2] / "result.json", jobs[2] / "result.json")  # same job, another sweep's record

    resumed = run_train(*short, f"hydra.sweep.dir={first}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (jobs[0] / "result.json").stat().st_mtime_ns == kept
    log = resumed.stdout + resumed.stderr
    assert f"job {jobs[1].name}: its result.json is damaged (JSONDecodeError" in log
    assert f"job {jobs[2].name}: its result.json is not its own: it names another sweep" in log
    assert "Traceback" not in log
    assert read_result(jobs[2]).job.sweep_id == read_result(jobs[0]).job.sweep_id != read_result(others[2]).job.sweep_id


@pytest.mark.slow
def test_a_damaged_plan_is_rebuilt_from_the_command_beside_it_keeping_completed_jobs(tmp_path: Path) -> None:
    short = [*TINY, "trainer.max_epochs=1", "-m", "seed=0,1"]
    sweep = tmp_path / "sweep"
    assert run_train(*short, f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    kept = {d: (d / "result.json").stat().st_mtime_ns for d in job_dirs(sweep)}
    plan, command = sweep / PLAN_FILE, sweep / COMMAND_FILE
    plan.write_bytes(plan.read_bytes()[:40])

    other = run_train(*[*short[:-1], "seed=0,1,2"], f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert other.returncode != 0 and "holds another sweep" in other.stderr and "Traceback" not in other.stderr
    resumed = subprocess.run([sys.executable, "-m", "regsweep.resume", str(sweep)], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{plan} is damaged (JSONDecodeError" in resumed.stdout and "rebuilt" in resumed.stdout + resumed.stderr
    assert {d: (d / "result.json").stat().st_mtime_ns for d in job_dirs(sweep)} == kept  # completed: kept
    assert len(SweepPlan.load(sweep).jobs) == 2

    plan.write_text("garbage")
    command.write_text("{")
    resumed = subprocess.run([sys.executable, "-m", "regsweep.resume", str(sweep)], capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode != 0 and "Traceback" not in resumed.stderr
    [line] = resumed.stderr.strip().splitlines()
    assert f"{plan} is damaged (JSONDecodeError" in line and f"and so is {command}" in line
    again = run_train(*short, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode != 0 and f"and so is {command}" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_pack_fails_each_job_in_one_line_naming_the_file_and_the_errno(
        tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "30m")
    try:
        sweep = disk / "sweep"
        process = start_train("-m", "seed=0-3", *LONG, f"hydra.sweep.dir={sweep}", cwd=tmp_path)  # one pack
        wait_for(sweep, "*/checkpoints/last.ckpt")
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1M", "count=64"], capture_output=True)
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 1
        assert "Traceback" not in stdout + stderr and "Logging error" not in stderr
        assert "you tried to log" not in stdout + stderr  # a logger's words for a disk error
        failed = stderr.split("4 of 4 jobs failed")[1].strip().splitlines()[1:]
        assert len(failed) == 4 and all("[Errno 28] No space left on device: " in line for line in failed)
        assert not any("missing" in line for line in failed)  # the cause is known: not "crashed or killed"
    finally:
        subprocess.run(["umount", str(disk)])
