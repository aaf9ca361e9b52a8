"""Schema of ``hydra/sweeper=regsweep``, registered in Hydra's ConfigStore when the plugin is discovered."""

from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RegsweepSweeperConf:
    _target_: str = "hydra_plugins.regsweep_sweeper.regsweep_sweeper.RegsweepSweeper"
    max_batch_size: Optional[int] = None  # jobs per launcher call; None = all at once
    params: Optional[Dict[str, str]] = None  # sweep params from the config (conf/experiment/*), as in the basic sweeper


ConfigStore.instance().store(group="hydra/sweeper", name="regsweep", node=RegsweepSweeperConf, provider="regsweep")
