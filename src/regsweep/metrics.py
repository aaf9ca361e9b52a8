"""Every metric a job emits, declared once: its name, which way is better, when it is measured, which tasks have it.

The module computes these, the records store them, TensorBoard and ``metrics.csv`` show them
(``stage/metric``, step = epoch), searches optimize them and the aggregation compares them: all of
those ask this table, so a metric cannot be optimized in one place and missing in another.

Names in aggregated outputs carry a section prefix (``best/val/acc``, ``final/gen_gap/loss``);
:func:`metric` strips it.
"""

from __future__ import annotations

from dataclasses import dataclass

from regsweep.errors import ConfigError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
EPOCH, TEST = "epoch", "test"  # measured after every epoch / once, on the test set, from the kept epoch
HIGHER, LOWER = "higher", "lower"
SECTIONS = ("best/", "final/")  # prefixes of the record sections (the test section keeps bare names)
SPARSITY_THRESHOLD = 1e-3  # |w| below this counts as zero in weights/sparsity
SPARSITY_TINY = 1e-5  # ... in weights/sparsity_1e-5: weights an L1 penalty really drove to zero
SPARSITY_RELATIVE = 0.01  # ... in weights/sparsity_rel: |w| below 1% of its layer's RMS


@dataclass(frozen=True)
class Metric:
    name: str
    better: str | None  # HIGHER, LOWER, or None when neither is an improvement (weight norms)
    when: str  # EPOCH or TEST
    classification_only: bool = False
    percent: bool = False  # a fraction, shown in percent (differences in percentage points)
    doc: str = ""
    formula: str = ""  # how a derived metric is computed, for plot titles and tables

    def emitted_for(self, task: str) -> bool:
        return task == CLASSIFICATION or not self.classification_only


def _declare(*metrics: Metric) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


METRICS: dict[str, Metric] = _declare(
    Metric("train/loss", LOWER, EPOCH, doc="data loss, running mean over the epoch's minibatches (train mode)"),
    Metric("train/acc", HIGHER, EPOCH, True, True, "accuracy, running mean over the epoch (train mode)"),
    Metric("train/penalty", LOWER, EPOCH, doc="l1*sum|w| + l2*sum w^2, mean over the epoch's minibatches"),
    Metric("train/total_loss", LOWER, EPOCH, doc="train/loss + train/penalty"),
    Metric("train_eval/loss", LOWER, EPOCH, doc="data loss on a fixed training subset, eval mode, end of epoch"),
    Metric("train_eval/acc", HIGHER, EPOCH, True, True, "accuracy on that subset, eval mode, end of epoch"),
    Metric("val/loss", LOWER, EPOCH, doc="data loss on the validation set, eval mode, end of epoch"),
    Metric("val/acc", HIGHER, EPOCH, True, True, "validation accuracy"),
    Metric("val/error", LOWER, EPOCH, True, True, "1 - val/acc (derived in the aggregation)"),
    Metric("gen_gap/loss", LOWER, EPOCH, doc="val/loss - train_eval/loss: both measured alike",
           formula="val loss - train loss"),
    Metric("gen_gap/acc", LOWER, EPOCH, True, True, "train_eval/acc - val/acc", formula="train acc - val acc"),
    Metric("weights/l1", None, EPOCH, doc="sum |w| over the penalized weights"),
    Metric("weights/l2", None, EPOCH, doc="sqrt(sum w^2) over the penalized weights"),
    Metric("weights/sparsity", None, EPOCH, percent=True, doc=f"fraction of |w| < {SPARSITY_THRESHOLD:g}"),
    Metric("weights/sparsity_1e-5", None, EPOCH, percent=True, doc=f"fraction of |w| < {SPARSITY_TINY:g}"),
    Metric("weights/sparsity_rel", None, EPOCH, percent=True,
           doc=f"fraction of |w| < {SPARSITY_RELATIVE:g} x the RMS of its layer's weights"),
    Metric("lr", None, EPOCH, doc="learning rate the epoch trained with"),
    Metric("test/loss", LOWER, TEST, doc="data loss on the test set, weights of the kept (best) epoch"),
    Metric("test/total_loss", LOWER, TEST, doc="test/loss + the penalty of the tested weights (as Keras' evaluate())"),
    Metric("test/acc", HIGHER, TEST, True, True, "test accuracy, weights of the kept epoch"),
    Metric("test/error", LOWER, TEST, True, True, "1 - test/acc (derived in the aggregation)"),
)
DERIVED_ERRORS = {"val/error": "val/acc", "test/error": "test/acc"}  # computed by the aggregation, not the job


def base_name(name: str) -> str:
    """``best/val/acc`` -> ``val/acc``: the metric behind a record-section name."""
    for prefix in SECTIONS:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def metric(name: str) -> Metric | None:
    """The declaration behind ``name`` (section prefixes allowed), or None for bookkeeping (epochs, wall time)."""
    return METRICS.get(base_name(name))


def higher_is_better(name: str) -> bool:
    """Direction of improvement; metrics without one (weights, epochs) count "higher" as the improvement,
    so their probability of improvement reads as P(group > reference)."""
    declared = metric(name)
    return declared is None or declared.better != LOWER


def is_percent(name: str) -> bool:
    declared = metric(name)
    return declared is not None and declared.percent


def epoch_metrics(task: str) -> list[str]:
    """The per-epoch columns a job of ``task`` writes (not the ones the aggregation derives)."""
    return [m.name for m in METRICS.values() if m.when == EPOCH and m.emitted_for(task) and m.name not in DERIVED_ERRORS]


def epoch_metric(name: str, task: str, key: str) -> str:
    """``name`` if a job of ``task`` writes it every epoch; else a ConfigError for ``key``.

    Selection (a search's objective, early stopping, the kept checkpoint) must never look at the
    test set, and a metric the job never writes would fail a run at its very end.
    """
    allowed = [m for m in epoch_metrics(task) if m != "lr"]
    if name not in allowed:
        why = "test metrics are never used for selection; " if str(name).startswith("test/") else ""
        raise ConfigError(key, name, f"{why}must be a per-epoch metric of a {task} job: {', '.join(allowed)}")
    return name


def objective(name: str, task: str, key: str = "optimized_metric") -> str:
    """What a sweep optimizes: ``auto`` is val/acc for classification and val/loss for regression."""
    if name == "auto":
        return "val/acc" if task == CLASSIFICATION else "val/loss"
    return epoch_metric(name, task, key)


def answer_metrics(names: object, task: str, key: str = "answer_on") -> list[str]:
    """The metrics a sweep's summary answers its question on, as the aggregation names them (``final/val/loss``,
    ``test/acc``); ``auto`` (an empty list) leaves the aggregation's own: test accuracy, test loss for regression."""
    if names == "auto":
        return []
    allowed = [f"{section}{m.name}" for m in METRICS.values() if m.emitted_for(task) and m.better is not None
               for section in (("",) if m.when == TEST else SECTIONS)]
    chosen = [names] if isinstance(names, str) else list(names) if isinstance(names, (list, tuple)) else None
    if chosen is None or not all(name in allowed for name in chosen):
        raise ConfigError(key, names, f"must be auto or a list of metrics of a {task} job with a direction, "
                                      f"e.g. [final/val/loss, final/gen_gap/loss]: {', '.join(allowed)}")
    return chosen


def direction(name: str) -> str | None:
    """``maximize`` / ``minimize`` for metrics with a natural direction, None for the others."""
    declared = metric(name)
    if declared is None or declared.better is None:
        return None
    return "maximize" if declared.better == HIGHER else "minimize"


def mode(name: str) -> str | None:
    """``max`` / ``min`` (a callback's mode) for metrics with a natural direction, None for the others."""
    better = direction(name)
    return None if better is None else "max" if better == "maximize" else "min"
