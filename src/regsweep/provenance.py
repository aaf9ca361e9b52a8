"""Where a job's numbers come from: the harness's code, the libraries and the device, recorded in result.json.

Another machine's or library's kernels round differently, so two runs of one command agree bit for bit
only in the same environment; the record says which one, and the seed summary says when the jobs it
aggregates ran in more than one.
"""

from __future__ import annotations

import functools
import importlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the aggregation reads records without importing torch
    import torch

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # src/regsweep/ -> the repository, when run from a checkout
LIBRARIES = ("torch", "lightning", "numpy")  # the libraries whose versions can move the numbers
GIT_TIMEOUT_S = 10
# What can move the numbers: the code, the configs, the pinned dependencies (not docs, notes or results)
RESULT_SOURCES = ("src", "conf", "train.py", "pyproject.toml")


def environment(device: torch.device) -> dict[str, str | bool | None]:
    """The harness's version and commit, Python's and the numeric libraries' versions, and the device's model."""
    return {**software(SOURCE_ROOT), "device": describe_device(device)}


@functools.cache
def software(source_root: Path) -> dict[str, str | bool | None]:
    """The versions, and the commit of ``source_root`` when it is a repository's top (not a repository that a
    virtual environment with the package installed happens to lie in)."""
    top = _git(source_root, "rev-parse", "--show-toplevel")
    checkout = top is not None and Path(top).resolve() == source_root.resolve()
    commit = _git(source_root, "rev-parse", "HEAD") if checkout else None
    changes = _git(source_root, "status", "--porcelain", "--", *RESULT_SOURCES) if commit else None
    return {
        "regsweep": _version("regsweep"),
        "git_commit": commit,
        "git_dirty": None if changes is None else bool(changes),  # uncommitted changes to RESULT_SOURCES
        "python": platform.python_version(),
        **{library: _library_version(library) for library in LIBRARIES},
    }


def describe_device(device: torch.device) -> str:
    """E.g. ``cuda (NVIDIA H200)`` or ``cpu (Intel(R) Xeon(R) Processor, x86_64)``."""
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({', '.join(filter(None, [_cpu_model(), platform.machine()]))})"


@functools.cache
def _cpu_model() -> str | None:
    """The CPU's model name as Linux reports it; platform.processor() elsewhere (often empty)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _library_version(name: str) -> str | None:
    """The version the library itself reports: torch's names its build (``2.11.0+cu130`` or ``+cpu``), which a
    PyPI wheel's package metadata (``2.11.0``) does not, and a CUDA build's kernels round differently."""
    try:
        return str(importlib.import_module(name).__version__)
    except ImportError:
        return None


def _git(root: Path, *args: str) -> str | None:
    """A git command's output in ``root``; None outside a repository, or without git."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment_text(recorded: dict[str, str | bool | None]) -> str:
    """A recorded environment in one line, e.g. ``regsweep 0.1.0 (git ea65c77, uncommitted changes), Python
    3.11.7, torch 2.13.0+cpu, lightning 2.6.6, numpy 2.4.6; cpu (Intel(R) Xeon(R) Processor, x86_64)``."""
    commit = recorded.get("git_commit")
    source = f"git {str(commit)[:7]}" + (", uncommitted changes" if recorded.get("git_dirty") else "") if commit else ""
    harness = f"regsweep {recorded.get('regsweep') or '?'}" + (f" ({source})" if source else "")
    versions = [f"Python {recorded.get('python') or '?'}", *(f"{key} {recorded.get(key) or '?'}" for key in LIBRARIES)]
    return f"{', '.join([harness, *versions])}; {recorded.get('device') or 'device not recorded'}"
