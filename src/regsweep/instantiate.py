"""Building objects from ``_target_`` configs (trainer, callbacks, loggers, pruners), in one place.

Hydra asks every caller of ``instantiate`` which packages a config may name (its execution
whitelist); these are the ones a regsweep config may use.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate

TRUSTED_TARGETS = ["lightning.pytorch.*", "regsweep.*", "optuna.pruners.*", "optuna.samplers.*", "hydra_plugins.*"]


def instantiate_trusted(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` limited to TRUSTED_TARGETS (nested targets included)."""
    return instantiate(node, _execution_whitelist_=TRUSTED_TARGETS, **kwargs)
