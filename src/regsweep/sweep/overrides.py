"""Override strings: integer ranges on the command line (``seed=0-9``, ``seed=0-4,7,10-12``), quoted values."""

from __future__ import annotations

import re
from typing import Sequence

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
