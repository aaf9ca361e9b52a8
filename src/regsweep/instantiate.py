"""Building objects from ``_target_`` configs (trainer, callbacks, loggers, networks, data, pruners), in one place.

Hydra asks every caller of ``instantiate`` which targets a config may name (its execution
whitelist). The configs a user composes (their config dirs, the command line) are code that user
runs, so a target they name is trusted as well as regsweep's own packages; each target is checked
(it imports, it is the kind of object its key expects, its constructor takes the arguments given)
before any job starts, so a mistake is one line, not a traceback from inside a job.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from regsweep.errors import ConfigError

TRUSTED_TARGETS = ["lightning.pytorch.*", "regsweep.*", "optuna.pruners.*", "optuna.samplers.*", "hydra_plugins.*"]
TARGET = "_target_"


def targets_in(node: Any) -> list[str]:
    """Every ``_target_`` a config node names, nested ones included."""
    if isinstance(node, (DictConfig, dict)):
        own = [str(node[TARGET])] if TARGET in node and node[TARGET] is not None else []
        return own + [target for key, value in node.items() if key != TARGET for target in targets_in(value)]
    if isinstance(node, (ListConfig, list, tuple)):
        return [target for value in node for target in targets_in(value)]
    return []


def instantiate_trusted(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, trusting regsweep's packages and the targets the (user's own) node names."""
    return instantiate(node, _execution_whitelist_=[*TRUSTED_TARGETS, *targets_in(node)], **kwargs)


def user_code_importable(launch_dir: str | None = None) -> None:
    """Let ``_target_: mypackage.Thing`` import from the directory the command was started in, as ``python -m``
    would (a script's own directory is on ``sys.path``, the one it was started from is not), in every process of a
    sweep: the sweeper's, joblib's workers, a SLURM task."""
    directory = os.path.abspath(launch_dir or os.getcwd())
    if directory not in sys.path:
        sys.path.append(directory)


def public_name(kind: type) -> str:
    """``lightning.pytorch.Callback`` rather than the module it is defined in (``...callbacks.callback.Callback``)."""
    module = kind.__module__.split(".")
    for depth in range(1, len(module) + 1):
        if getattr(sys.modules.get(".".join(module[:depth])), kind.__name__, None) is kind:
            return f"{'.'.join(module[:depth])}.{kind.__name__}"
    return f"{kind.__module__}.{kind.__qualname__}"


def target_class(key: str, target: str, base: type | None = None) -> Any:
    """What ``_target_`` names, imported (a class, or a function when ``base`` is None); a ConfigError naming the key
    when it does not import or is not a ``base``."""
    try:
        found = get_class(target) if base is not None else get_method(target)
    except Exception as error:  # ImportError, AttributeError, ValueError: Hydra words them all its own way
        cause = error.__cause__ or error
        raise ConfigError(f"{key}._target_", target, f"does not import ({type(cause).__name__}: {cause}; "
                          f"searched {os.pathsep.join(p or '.' for p in sys.path)})") from None
    if base is not None and not (inspect.isclass(found) and issubclass(found, base)):
        raise ConfigError(f"{key}._target_", target, f"is not a {public_name(base)}")
    return found


def check_arguments(key: str, target: Any, node: Any, given: tuple[str, ...] = ()) -> None:
    """The config's arguments (and ``given``, those the harness passes) bind to the target's signature."""
    arguments = {k: None for k in node if not str(k).startswith("_")}
    arguments.update({name: None for name in given})
    try:
        inspect.signature(target).bind(**arguments)
    except TypeError as error:
        raise ConfigError(key, OmegaConf.to_container(node) if isinstance(node, DictConfig) else node,
                          f"{getattr(target, '__qualname__', target)} refuses these arguments "
                          f"({error})") from None
    except ValueError:  # a builtin without a signature: its own call will say
        return


def check_targets(group: str, nodes: Any, base: type) -> None:
    """Each ``_target_`` node of a group (``callbacks``, ``logger``) imports, is a ``base`` and takes its arguments."""
    for name, node in (nodes or {}).items():
        if isinstance(node, DictConfig) and node.get(TARGET) is not None:
            key = f"{group}.{name}"
            check_arguments(key, target_class(key, str(node[TARGET]), base), node)
