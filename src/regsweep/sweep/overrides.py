"""Override strings: integer ranges on the command line (``seed=0-9``, ``seed=0-4,7,10-12``), quoted values,
and what a sweep override (``a,b``, ``range(...)``, ``glob(...)``) takes, for both sweepers."""

from __future__ import annotations

import re
from typing import Any, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer, ValueType

from regsweep.errors import ConfigError

INTEGER_ITEMS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")  # 0-9 or 0-4,7,10-12; quoted values never match


def _expand_item(key: str, item: str) -> list[int]:
    first, _, last = item.partition("-")
    if not last:
        return [int(first)]
    if int(first) > int(last):
        raise ConfigError(key, item, f"an integer range a-b needs a <= b, e.g. {last}-{first}")
    return list(range(int(first), int(last) + 1))


def expand_integer_ranges(arguments: Sequence[str]) -> list[str]:
    """Rewrite ``key=a-b`` (unquoted, integers a <= b) into Hydra's ``key=range(a,b+1)``.

    Lists that mix ranges and integers (``key=0-4,7``) become explicit choices (``key=0,1,2,3,4,7``).
    """
    expanded = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if "-" not in value or not INTEGER_ITEMS.match(value):
            expanded.append(argument)
            continue
        items = value.split(",")
        values = [v for item in items for v in _expand_item(key.lstrip("+~"), item)]
        if len(items) == 1:
            expanded.append(f"{key}=range({values[0]},{values[-1] + 1})")
        else:
            expanded.append(f"{key}={','.join(map(str, values))}")
    return expanded


def quoted(value: str) -> str:
    """``value`` as a quoted override value: paths with ``=``, ``,`` or brackets parse as one string."""
    return "'" + str(value).replace("'", "\\'") + "'"


def parse_overrides(arguments: Sequence[str], config_loader: ConfigLoader | None) -> list[Override]:
    """Parsed overrides whose ``glob(...)`` can list its config group's options, as in Hydra's basic sweeper.

    The loader is the sweeper's (``hydra_context.config_loader``); without one a glob cannot be expanded.
    """
    return OverridesParser.create(config_loader=config_loader).parse_overrides(list(arguments))


def sweep_values(override: Override, transformer: Any = Transformer.str) -> list[Any]:
    """The values a choice, range or glob sweep takes; a ConfigError when it takes none.

    An empty sweep would run nothing: a glob that matches no option of its group (or names no
    group at all) and an empty ``range(5,1)`` are refused as typed.
    """
    values = list(override.sweep_iterator(transformer=transformer))
    if values:
        return values
    key, written = override.get_key_element(), override.input_line.partition("=")[2]
    if override.value_type != ValueType.GLOB_CHOICE_SWEEP:
        raise ConfigError(key, written, "the sweep takes no value")
    group = override.key_or_group
    options = override.config_loader.get_group_options(group, results_filter=ObjectType.CONFIG)
    if not options:
        raise ConfigError(key, written, f"{group} is not a config group: glob() picks options of a config group, "
                          "e.g. regularizer=glob(*)")
    raise ConfigError(key, written, f"matches none of the options of config group {group}: {', '.join(options)}")
