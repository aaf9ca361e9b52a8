"""Per-group statistics of every metric: the numbers that summary.csv, summary.md and the plots share."""

from __future__ import annotations

from regsweep.aggregate.load import GroupValues
from regsweep.aggregate.stats import Description, describe

Descriptions = dict[str, dict[str, Description]]  # group label -> metric -> statistics


def describe_groups(values: GroupValues) -> Descriptions:
    return {label: {metric: describe(v) for metric, v in metrics.items()} for label, metrics in values.items()}


def has_data(descriptions: Descriptions, labels: list[str], metric: str) -> bool:
    """Whether any of the groups has a finite value of the metric (regression sweeps have no accuracy)."""
    return any(metric in descriptions[label] and descriptions[label][metric].n > 0 for label in labels)
