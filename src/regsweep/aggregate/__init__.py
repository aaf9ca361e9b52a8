"""Aggregate a sweep over seeds: statistics per configuration, comparisons, plots, TensorBoard runs."""

from regsweep.aggregate.api import SweepAggregate, aggregate_sweep
from regsweep.aggregate.load import AggregateError

__all__ = ["AggregateError", "SweepAggregate", "aggregate_sweep"]
