"""Shared fixtures: compose the real configs (shrunk to tiny settings) and run train.py as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from regsweep.config import register_configs, register_resolvers

pytest_plugins = ["servers"]  # tests/servers.py: the real SLURM and PostgreSQL fixtures

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"
register_resolvers()
register_configs()  # what train.py does before Hydra composes anything

# Small and fast, but still a real run: a few epochs of a narrow MLP on the real digits.
TINY = [
    "trainer.max_epochs=2",
    "model.hidden_sizes=[32]",
    "data.batch_size=128",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGSWEEP_ROOT", str(ROOT))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, writing outputs under tmp_path."""

    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR)):
            extra = [*TINY] if tiny else []
            return compose("train", overrides=[f"paths.output_dir={tmp_path}", *extra, *overrides])  # later ones win

    return _make


def run_train(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` in a fresh process, the way users do."""
    env = {**os.environ, "REGSWEEP_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
