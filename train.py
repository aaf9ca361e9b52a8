"""Entry point: `python train.py [group=option ...] [-m key=a,b seed=0-9]`. See README.md."""

from regsweep import startup

startup.pause_collection()  # the imports below build objects that live as long as the process

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from regsweep.config import register_configs, register_resolvers  # noqa: E402
from regsweep.errors import install_compact_excepthook, refuse_null_group_choices  # noqa: E402
from regsweep.instantiate import TRUSTED_TARGETS, user_code_importable  # noqa: E402
from regsweep.job import run  # noqa: E402

startup.imports_done()

os.environ.setdefault("REGSWEEP_ROOT", str(Path(__file__).resolve().parent))
user_code_importable()  # a _target_ of the user's own package, in the directory they run from
install_compact_excepthook()
register_resolvers()
register_configs()


@hydra.main(config_path="conf", config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> object:
    return run(cfg)


if __name__ == "__main__":
    refuse_null_group_choices(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    main()
