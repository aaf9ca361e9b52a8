"""The one style in which config values are checked: rules attached to the fields of a group's schema.

Each config group has a dataclass schema, registered in Hydra's ConfigStore by :mod:`regsweep.config`,
so wrong types and unknown keys already fail when Hydra composes the config. The ranges live on
the fields (``dropout: float = ruled(0.0, within(0, 1))``) and are checked when the composed node
becomes the dataclass (its ``__post_init__``), before any data is loaded: the first bad value
stops the run with one line naming the key and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar, Collection

from omegaconf import MISSING as OMEGACONF_MISSING

from regsweep.errors import ConfigError

_RULES = "regsweep.rules"


@dataclass(frozen=True)
class Rule:
    """A test a value must pass, and the words that say what is allowed."""

    test: Callable[[Any], bool]
    allowed: str | Callable[[], str]

    def describe(self) -> str:
        return self.allowed() if callable(self.allowed) else self.allowed


def is_integer(value: Any, low: int | None = None) -> bool:
    """An int that is not a bool (YAML's ``true`` is one in Python), at least ``low`` when given: the one test."""
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f"must be >= {low}")


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"must be > {low}")


def within(low: float, high: float, include_high: bool = False) -> Rule:
    """``low <= v < high`` (or ``<= high``)."""
    close = "]" if include_high else ")"
    return Rule(lambda v: low <= v <= high if include_high else low <= v < high,
                f"must be in [{low}, {high}{close}")


def one_of(options: Collection[str]) -> Rule:
    """A name from ``options``, usually a registry dict: the allowed values are its keys, read when checked."""
    return Rule(lambda v: v in options, lambda: f"must be one of {', '.join(options)}")


def positive_sizes(example: str) -> Rule:
    return Rule(lambda v: len(v) > 0 and all(s > 0 for s in v),
                f"must be a non-empty list of positive integers, e.g. {example}")


def ruled(default: Any = MISSING, *rules: Rule, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with a default (or a default factory) and the rules its value must pass."""
    if factory is not None:
        return field(default_factory=factory, metadata={_RULES: rules})
    return field(default=default, metadata={_RULES: rules})


_NUMBERS = {"float": ((int, float), "a number"), "int": ((int,), "an integer")}


def check_fields(node: object, prefix: str) -> None:
    """Raise ConfigError for the first field whose value breaks a rule; numbers must be finite numbers.

    Hydra's composition already enforces the types of a config; the type test here covers schemas
    built in Python (``AugmentSettings(noise_p=True)``).
    """
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        key = f"{prefix}.{f.name}"
        if value == OMEGACONF_MISSING:  # a schema's placeholder: OmegaConf reports it if it stays unset
            continue
        number = _NUMBERS.get(str(f.type).removeprefix("Optional[").removesuffix("]"))
        if number is not None and value is not None:
            if isinstance(value, bool) or not isinstance(value, number[0]):
                raise ConfigError(key, value, f"must be {number[1]}")
            if not math.isfinite(value):
                raise ConfigError(key, value, "must be a finite number")
        for rule in f.metadata.get(_RULES, ()):
            if value is not None and not rule.test(value):
                raise ConfigError(key, value, rule.describe())


def require(key: str, value: object, ok: bool, allowed: str) -> None:
    """A check that involves several fields (or a value outside any schema)."""
    if not ok:
        raise ConfigError(key, value, allowed)


class Checked:
    """Base of the group schemas (dataclasses): checks their field rules whenever an instance is made."""

    GROUP: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_fields(self, self.GROUP)
