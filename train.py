"""Entry point: `python train.py [group=option ...] [-m key=a,b seed=0-9]`. See README.md."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from regsweep.errors import install_compact_excepthook
from regsweep.sweeps import register_resolvers

os.environ.setdefault("REGSWEEP_ROOT", str(Path(__file__).resolve().parent))
install_compact_excepthook()
register_resolvers()


@hydra.main(config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from regsweep.train import run  # imported here so `--help` and config errors stay fast

    return run(cfg)


if __name__ == "__main__":
    main()
