"""Real SLURM and PostgreSQL servers for the test suite, one of each per test session.

Why real servers: Hydra's submitit launcher and Optuna's RDB storage fail in ways a mock does not
show (sacct polling without accounting, races while two workers create Optuna's schema). So each
fixture starts real daemons as child processes of the test run, in a fresh temp dir, on loopback
and on free ports, waits until they answer, and on teardown stops exactly the processes it started.

Binaries come from Debian (`.ci/install-debian-packages.sh`). Where they are missing or a server does
not come up, the fixture skips with the reason; set REGSWEEP_REQUIRE_SERVERS=1 (as CI should, after
installing them) to fail instead (``unavailable``: also for the other tools that script installs).
Outside pytest, `running_slurm()` and `running_postgres()` are plain context managers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import pytest

REQUIRE_ENV = "REGSWEEP_REQUIRE_SERVERS"
LOOPBACK = "127.0.0.1"
T = TypeVar("T")


class ServerUnavailable(RuntimeError):
    """A server's binaries are missing or it did not come up: its tests are skipped."""


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass
class Daemon:
    """One server process we started."""

    name: str
    proc: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Signal it, wait, then SIGKILL it."""
        if self.alive():
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Daemons:
    """The processes of one fixture, each logging to root/log/NAME.log, stopped in reverse order.

    Each gets MARKER=root in its environment, which its children inherit (postgres backends,
    slurmstepd), so teardown can find what is left of them, and nothing else, even after setsid.
    """

    MARKER = "REGSWEEP_SERVER_ROOT"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Daemon] = []
        (root / "log").mkdir(exist_ok=True)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        user: pwd.struct_passwd | None = None,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Daemon:
        log = self.root / "log" / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.root, env={**(env or os.environ), self.MARKER: str(self.root)},
                start_new_session=True, **_as_user(user),
            )
        daemon = Daemon(name, proc, log, stop_signal)
        self.started.append(daemon)
        return daemon

    def stop_all(self, *markers: str) -> None:
        """Stop the daemons, then SIGKILL any process still marked as ours (or with `markers`)."""
        while self.started:
            self.started.pop().stop()
        _kill_marked([f"{self.MARKER}={self.root}", *markers])


def _as_user(user: pwd.struct_passwd | None) -> dict:
    """Popen arguments that drop root to a service user (munged and postgres refuse root)."""
    if user is None or os.geteuid() != 0:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _kill_marked(markers: Sequence[str]) -> None:
    """SIGKILL processes whose environment holds one of `markers` (e.g. SLURM_CONF=our conf).

    slurmstepd and job scripts call setsid, so a daemon's session does not find them; but they
    inherit the environment of slurmd or of sbatch's caller, which names this fixture's files.
    """
    needles = [m.encode() + b"\0" for m in markers]
    spare = {os.getpid(), os.getppid()}
    for env_file in glob.glob("/proc/[0-9]*/environ"):
        pid = int(Path(env_file).parent.name)
        try:
            environ = b"\0" + Path(env_file).read_bytes()
            if pid not in spare and any(b"\0" + n in environ for n in needles):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _service_user(*names: str) -> pwd.struct_passwd | None:
    """As root: the first existing account among `names` to run a daemon as; otherwise ourselves."""
    if os.geteuid() != 0:
        return None
    for name in names:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerUnavailable(f"none of the users {', '.join(names)} exists to run the server as")


def _own(path: Path, user: pwd.struct_passwd | None, mode: int = 0o755) -> Path:
    """Create `path` for a service user, who must be able to write there."""
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- waiting


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (all held open while choosing, so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in socks]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_until(check: Callable[[], bool], what: str, daemon: Daemon | None = None,
               timeout: float = 30.0) -> float:
    """Poll `check` until true; fail fast with the daemon's log if it died. Returns seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        if daemon is not None and not daemon.alive():
            raise ServerUnavailable(f"{daemon.name} exited ({daemon.proc.returncode}) before "
                                    f"{what}:\n{_tail(daemon.log)}")
        time.sleep(0.05)
    log = f":\n{_tail(daemon.log)}" if daemon else ""
    raise ServerUnavailable(f"{what} not ready after {timeout:.0f} s{log}")


def _ok(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 5.0) -> bool:
    """Whether a client command succeeds (used as a readiness probe)."""
    try:
        return subprocess.run(list(argv), env=env, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _check(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 30.0,
           user: pwd.struct_passwd | None = None) -> subprocess.CompletedProcess:
    """Run a setup step; a failure makes the server unavailable, with the step's own output."""
    try:
        res = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, **_as_user(user))
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerUnavailable(f"{argv[0]}: {e}") from e
    if res.returncode != 0:
        raise ServerUnavailable(f"{' '.join(argv)} failed ({res.returncode}): "
                                f"{(res.stdout + res.stderr).strip()[-1500:]}")
    return res


# Debian puts the daemons in /usr/sbin, which is not on a non-root user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])


def _bin(name: str) -> str:
    """Absolute path of a server or client binary (found on PATH or in /usr/sbin)."""
    return shutil.which(name, path=SEARCH_PATH) or name


def _missing(names: Sequence[str], path: str = SEARCH_PATH) -> list[str]:
    return [n for n in names if shutil.which(n, path=path) is None]


@contextlib.contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    """A temp dir that service users can traverse (pytest's own tmp dirs are 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- SLURM

SLURM_BINARIES = ("munged", "mungekey", "munge", "slurmctld", "slurmd",
                  "sbatch", "squeue", "sinfo", "scancel")
ACCOUNTING_BINARIES = ("slurmdbd", "sacctmgr", "sacct", "mariadbd", "mariadb-install-db", "mariadb")
PARTITION = "debug"
CLUSTER_NAME = "regsweep"
FAKE_GPUS = 2  # so `--gpus-per-node` / `--gres=gpu:N` are accepted (jobs get CUDA_VISIBLE_DEVICES)


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    """A running single-node cluster. Clients need only `env` (SLURM_CONF) on top of os.environ."""

    root: Path
    conf: Path
    partition: str
    node: str
    accounting: bool  # slurmdbd + MariaDB running, so sacct works
    env: dict[str, str]

    def environ(self) -> dict[str, str]:
        """os.environ plus what a SLURM client of this cluster needs."""
        return {**slurm_free_environ(), **self.env}

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sbatch, squeue, sacct, scancel, ...) against this cluster.

        It runs in root/jobs, so a job's default slurm-%j.out lands there, not in the repo."""
        return subprocess.run(list(argv), env=self.environ(), capture_output=True, text=True,
                              check=check, timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd=self.root / "jobs")

    def sbatch(self, *args: str) -> str:
        """Submit with `sbatch --parsable ARGS`; returns the job id."""
        return self.run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]

    def queued(self) -> set[str]:
        """Ids of jobs squeue still lists (pending, running, completing)."""
        out = self.run("squeue", "-h", "-o", "%i").stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def wait_gone(self, job_id: str, timeout: float = 60.0) -> float:
        """Wait until squeue no longer lists the job (array jobs: any of its tasks)."""
        return wait_until(lambda: not any(j.split("_")[0] == job_id for j in self.queued()),
                          f"job {job_id} to leave the queue", timeout=timeout)

    def state(self, job_id: str) -> str:
        """The job's state from accounting (sacct), e.g. COMPLETED, CANCELLED, FAILED."""
        out = self.run("sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id).stdout.split()
        return out[0] if out else ""

    def cancel_all(self, timeout: float = 20.0) -> None:
        """scancel every job and wait until the queue is empty."""
        jobs = self.queued()
        if jobs:
            self.run("scancel", *sorted(jobs), check=False)
            with contextlib.suppress(ServerUnavailable):
                wait_until(lambda: not self.queued(), "the queue to drain", timeout=timeout)


def slurm_free_environ() -> dict[str, str]:
    """os.environ without SLURM_*/SBATCH_*/SRUN_*/SALLOC_* variables: tests run inside a SLURM
    job (or a shell with SBATCH_PARTITION set) must not send that cluster's settings to ours."""
    prefixes = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _start_munge(root: Path, daemons: Daemons) -> Path:
    """A private munged with its own key and socket, so no system munged is needed or touched."""
    user = _service_user("munge")
    mdir = _own(root / "munge", user)  # munged wants its socket dir executable by all
    key = mdir / "munge.key"
    _check([_bin("mungekey"), "--create", f"--keyfile={key}"])
    if user is not None:
        os.chown(key, user.pw_uid, user.pw_gid)
    sock = mdir / "munge.socket"
    daemon = daemons.start("munged", [
        _bin("munged"), "--foreground", f"--socket={sock}", f"--key-file={key}",
        f"--pid-file={mdir}/munged.pid", f"--log-file={mdir}/munged.log",
        f"--seed-file={mdir}/munged.seed", "--num-threads=4",
    ], user=user)
    wait_until(lambda: sock.exists() and _ok([_bin("munge"), "-n", f"--socket={sock}"]), "munged", daemon)
    return sock


MARIADB_FAST = ("--innodb-log-file-size=4M", "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                "--skip-log-bin", "--skip-name-resolve")


def _start_mariadb(root: Path, daemons: Daemons) -> tuple[int, str, str]:
    """A throwaway MariaDB for slurmdbd (~0.5 s initdb, 0.1 s start). Returns port, user, password."""
    user = _service_user("mysql", "slurm")
    mdir = _own(root / "mariadb", user)
    data = _own(mdir / "data", user, 0o700)
    as_user = [f"--user={user.pw_name}"] if user else []
    _check([_bin("mariadb-install-db"), "--no-defaults", f"--datadir={data}", *as_user,
            "--auth-root-authentication-method=normal", "--skip-test-db", *MARIADB_FAST], timeout=60)
    (port,) = free_ports(1)
    sock = mdir / "mysqld.sock"
    daemon = daemons.start("mariadbd", [
        _bin("mariadbd"), "--no-defaults", f"--datadir={data}", *as_user, f"--socket={sock}",
        f"--port={port}", f"--bind-address={LOOPBACK}", f"--pid-file={mdir}/mysqld.pid", *MARIADB_FAST,
    ])
    root_sql = [_bin("mariadb"), "--no-defaults", f"--socket={sock}", "-uroot"]
    wait_until(lambda: _ok([*root_sql, "-e", "SELECT 1"]), "MariaDB", daemon)
    password = secrets.token_hex(8)
    _check([*root_sql, "-e", f"CREATE USER 'slurm'@'{LOOPBACK}' IDENTIFIED BY '{password}'; "
                             f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{LOOPBACK}';"])
    return port, "slurm", password


def _start_slurmdbd(root: Path, daemons: Daemons, env: dict[str, str], munge_socket: Path,
                    slurm_user: str, port: int) -> None:
    """slurmdbd on `port`, storing into our MariaDB; it reads slurmdbd.conf beside SLURM_CONF."""
    db_port, db_user, db_pass = _start_mariadb(root, daemons)
    conf = root / "slurmdbd.conf"
    conf.write_text(_lines(
        AuthType="auth/munge", AuthInfo=f"socket={munge_socket}",
        DbdHost="localhost", DbdAddr=LOOPBACK, DbdPort=port, SlurmUser=slurm_user,
        LogFile=root / "log" / "slurmdbd.file.log", PidFile=root / "slurmdbd.pid",
        StorageType="accounting_storage/mysql", StorageHost=LOOPBACK, StoragePort=db_port,
        StorageUser=db_user, StoragePass=db_pass, StorageLoc="slurm_acct_db",
    ))
    conf.chmod(0o600)  # slurmdbd refuses a config others can read (it holds the DB password)
    daemon = daemons.start("slurmdbd", [_bin("slurmdbd"), "-D"], env=env)
    wait_until(lambda: port_open(port), "slurmdbd", daemon)
    _check([_bin("sacctmgr"), "-i", "add", "cluster", CLUSTER_NAME], env=env)  # before slurmctld registers


def _lines(**settings: object) -> str:
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _node_hardware() -> str:
    """This host's node line from `slurmd -C` (CPUs, sockets, cores, memory), minus the name."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True, timeout=10).stdout
        words = out.splitlines()[0].split() if out.strip() else []
        if words and words[0].startswith("NodeName="):
            return " ".join(w for w in words[1:] if not w.startswith("UpTime"))
    return f"CPUs={os.cpu_count() or 1}"


def _slurm_conf(root: Path, host: str, munge_socket: Path, user: str, dbd_port: int | None) -> str:
    """slurm.conf for one node on loopback: no cgroups, no systemd, fast scheduling."""
    ctld_port, slurmd_port = free_ports(2)
    accounting = (dict(AccountingStorageType="accounting_storage/slurmdbd",
                       AccountingStorageHost=LOOPBACK, AccountingStoragePort=dbd_port,
                       AccountingStoragePass=munge_socket)  # dbd connections use this munge socket
                  if dbd_port else dict(AccountingStorageType="accounting_storage/none"))
    return _lines(
        ClusterName=CLUSTER_NAME, SlurmctldHost=f"{host}({LOOPBACK})",
        SlurmctldPort=ctld_port, SlurmdPort=slurmd_port, SlurmUser=user, SlurmdUser=user,
        AuthType="auth/munge", AuthInfo=f"socket={munge_socket}", CredType="cred/munge",
        StateSaveLocation=root / "state", SlurmdSpoolDir=root / "spool",
        SlurmctldPidFile=root / "slurmctld.pid", SlurmdPidFile=root / "slurmd.pid",
        SlurmctldLogFile=root / "log" / "slurmctld.file.log",
        SlurmdLogFile=root / "log" / "slurmd.file.log",
        ProctrackType="proctrack/linuxproc", TaskPlugin="task/none",
        SelectType="select/cons_tres", SelectTypeParameters="CR_CPU",
        SchedulerType="sched/backfill",
        SchedulerParameters="batch_sched_delay=0,sched_min_interval=100000",  # ~0.5 s job start
        ReturnToService=2, MpiDefault="none", MailProg="/bin/true", KillWait=2,
        JobAcctGatherType="jobacct_gather/none", JobCompType="jobcomp/none", **accounting,
        GresTypes="gpu",
    ) + (f"NodeName={host} NodeAddr={LOOPBACK} {_node_hardware()} Gres=gpu:{FAKE_GPUS} State=UNKNOWN\n"
         f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP\n")


@contextlib.contextmanager
def running_slurm() -> Iterator[SlurmCluster]:
    """Start munged [, MariaDB, slurmdbd when their binaries are installed], slurmctld, slurmd; yield the
    cluster; stop them all."""
    if missing := _missing(SLURM_BINARIES):
        raise ServerUnavailable(f"not installed: {', '.join(missing)} (run .ci/install-debian-packages.sh)")
    with_dbd = not _missing(ACCOUNTING_BINARIES)
    host = socket.gethostname().split(".")[0]
    user = pwd.getpwuid(os.geteuid()).pw_name
    with _scratch("regsweep-slurm-") as root:
        daemons = Daemons(root)
        cluster = None
        try:
            for sub in ("state", "spool", "jobs"):
                (root / sub).mkdir()
            conf = root / "slurm.conf"
            env = {**slurm_free_environ(), "SLURM_CONF": str(conf)}
            sock = _start_munge(root, daemons)
            dbd_port = free_ports(1)[0] if with_dbd else None
            conf.write_text(_slurm_conf(root, host, sock, user, dbd_port))
            if dbd_port:  # slurmdbd finds slurmdbd.conf in SLURM_CONF's directory
                _start_slurmdbd(root, daemons, env, sock, user, dbd_port)
            _fake_gpus(root, host)
            ctld = daemons.start("slurmctld", [_bin("slurmctld"), "-D", "-i", "-f", str(conf)], env=env)
            slurmd = daemons.start("slurmd", [_bin("slurmd"), "-D", "-f", str(conf), "-N", host], env=env)
            cluster = SlurmCluster(root=root, conf=conf, partition=PARTITION, node=host,
                                   accounting=bool(dbd_port), env={"SLURM_CONF": str(conf)})
            probe = [_bin("sinfo"), "-h", "-N", "-n", host, "-o", "%T"]
            wait_until(lambda: _first_line(probe, env) == "idle", "the node to be idle", ctld)
            if not slurmd.alive():
                raise ServerUnavailable(f"slurmd exited:\n{_tail(slurmd.log)}")
            yield cluster
        finally:
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.cancel_all()
            daemons.stop_all(f"SLURM_CONF={root / 'slurm.conf'}")  # and jobs that outlived scancel


def _fake_gpus(root: Path, host: str) -> None:
    """gres.conf with FAKE_GPUS GPUs whose device files are links to /dev/null: slurmd drops
    GPUs without a File and rejects files that are not devices; task/none never opens them."""
    (root / "dev").mkdir()
    for i in range(FAKE_GPUS):
        (root / "dev" / f"gpu{i}").symlink_to("/dev/null")
    (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File={root}/dev/gpu[0-{FAKE_GPUS - 1}]\n")


def _first_line(argv: Sequence[str], env: dict[str, str]) -> str:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=5).stdout
        return out.strip().splitlines()[0] if out.strip() else ""
    return ""


# --------------------------------------------------------------------------- PostgreSQL


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL. `url` is for SQLAlchemy 2 + psycopg 3 (Optuna's RDBStorage)."""

    host: str
    port: int
    user: str
    password: str
    database: str
    socket_dir: Path
    bindir: Path

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh empty database owned by `user` (e.g. one per test); returns its URL."""
        _psql(self.bindir, self.socket_dir, self.port, f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.url_for(name)


def postgres_bindir() -> Path | None:
    """Debian keeps the server binaries in /usr/lib/postgresql/VERSION/bin, off PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _psql(bindir: Path, sock: Path, port: int, sql: str) -> None:
    psql = bindir / "psql" if (bindir / "psql").exists() else Path(shutil.which("psql") or "psql")
    _check([str(psql), "-h", str(sock), "-p", str(port), "-U", "postgres", "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """initdb into a temp dir, run postgres on a free loopback port, create a user and a database."""
    bindir = postgres_bindir()
    if bindir is None or _missing(("initdb", "postgres", "pg_isready"), path=str(bindir)):
        raise ServerUnavailable("PostgreSQL server binaries not found (run .ci/install-debian-packages.sh)")
    user = _service_user("postgres")
    with _scratch("regsweep-pg-") as root:
        daemons = Daemons(root)
        try:
            data = _own(root / "data", user, 0o700)
            sock = _own(root / "run", user)
            _check([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                    "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                    "--no-instructions"], user=user, timeout=60)
            (port,) = free_ports(1)
            daemon = daemons.start("postgres", [
                str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ], user=user, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown
            ready = [str(bindir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port)]
            wait_until(lambda: _ok(ready), "PostgreSQL", daemon)
            server = PostgresServer(host=LOOPBACK, port=port, user="regsweep",
                                    password=secrets.token_hex(8), database="regsweep",
                                    socket_dir=sock, bindir=bindir)
            _psql(bindir, sock, port, f"CREATE ROLE regsweep LOGIN PASSWORD '{server.password}'")
            server.create_database(server.database)
            yield server
        finally:
            daemons.stop_all()


# --------------------------------------------------------------------------- fixtures


def unavailable(what: str, err: Exception | str) -> None:
    """Skip (developer without the Debian packages) or fail (CI, REGSWEEP_REQUIRE_SERVERS=1)."""
    reason = f"{what} unavailable: {err}"
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _start(stack: contextlib.ExitStack, server: contextlib.AbstractContextManager[T], what: str) -> T:
    """Enter a server's context manager, or skip/fail (outside the except, for a short report)."""
    try:
        return stack.enter_context(server)
    except ServerUnavailable as e:
        error = e
    unavailable(what, error)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A real single-node SLURM cluster (with accounting when slurmdbd is installed)."""
    with contextlib.ExitStack() as stack:
        yield _start(stack, running_slurm(), "SLURM cluster")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server with database `regsweep`, reachable through `.url`."""
    try:
        import psycopg  # noqa: F401  (the driver behind postgresql+psycopg:// URLs)
    except ImportError as e:
        error = ServerUnavailable(f"{e}; pip install 'psycopg[binary]'")
    else:
        error = None
    if error is not None:
        unavailable("PostgreSQL", error)
    with contextlib.ExitStack() as stack:
        yield _start(stack, running_postgres(), "PostgreSQL")
