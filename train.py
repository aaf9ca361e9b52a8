"""Entry point: `python train.py [group=option ...] [-m key=a,b seed=0-9]`. See README.md."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from regsweep.config import register_configs, register_resolvers
from regsweep.errors import install_compact_excepthook, refuse_null_group_choices
from regsweep.instantiate import TRUSTED_TARGETS

os.environ.setdefault("REGSWEEP_ROOT", str(Path(__file__).resolve().parent))
install_compact_excepthook()
register_resolvers()
register_configs()


@hydra.main(config_path="conf", config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> object:
    from regsweep.job import run

    return run(cfg)


if __name__ == "__main__":
    refuse_null_group_choices(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    main()
