"""A single run's output dir, checked before Hydra creates it: a clear line instead of a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from regsweep.atomic import require_writable_dir
from regsweep.errors import ConfigError


class RunDirCheck(Callback):
    """``hydra.callbacks.run_dir_check``: ``hydra.run.dir`` must be a directory this process can write.

    Hydra turns a callback's exception into a warning and runs on, so the refusal is a SystemExit.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            require_writable_dir("hydra.run.dir", Path(str(config.hydra.run.dir)))
        except ConfigError as error:
            raise SystemExit(str(error)) from None
