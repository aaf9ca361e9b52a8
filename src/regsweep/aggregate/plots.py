"""PNG plots of a sweep, one function per figure; matplotlib is imported only when plots are asked for.

Figures are drawn on the Agg canvas without pyplot (no global figure state, no display needed)
and written atomically like every other output.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regsweep.aggregate.curves import Curve, GroupCurves
from regsweep.aggregate.load import Group, Sweep, group_label, safe_name
from regsweep.aggregate.stats import Description
from regsweep.aggregate.summary import Descriptions, has_data
from regsweep.atomic import atomic_write_bytes
from regsweep.metrics import SPARSITY_THRESHOLD, is_percent
from regsweep.records import OK, WEIGHTS_FILE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS_DIR = "plots"
LOG_SCALE_KEY_PARTS = ("l1", "l2", "lr", "weight_decay")
GAP_METRICS = ("final/gen_gap/acc", "final/gen_gap/loss")
VS_HYPERPARAMETER_METRICS = ("test/acc", "test/loss", *GAP_METRICS, "final/weights/sparsity")
CURVE_PANELS = {"loss": ("train/loss", "val/loss"), "accuracy": ("train/acc", "val/acc")}
MAGNITUDE_FLOOR = 1e-8  # exact zeros are drawn at this |w| on the log-magnitude axis
MAX_LEGEND_ENTRIES = 12
DPI = 110
Colors = dict[str, tuple[float, ...]]  # label -> RGBA, the same in every figure


def new_figure(panels: int, panel_size: tuple[float, float] = (5.0, 3.6)) -> tuple["Figure", list["Axes"]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, list(axes[:panels])


def save_figure(figure: "Figure", path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def group_colors(labels: list[str]) -> Colors:
    """One color per group (or line), the same in every figure."""
    from matplotlib import colormaps

    colormap = colormaps["tab10" if len(labels) <= 10 else "viridis"]
    positions = range(len(labels)) if len(labels) <= 10 else np.linspace(0, 1, len(labels))
    return {label: tuple(colormap(p)) for label, p in zip(labels, positions)}


def add_legend(figure: "Figure", axes: "Axes") -> None:
    """A legend under the figure, left out when there are too many groups to read it (Optuna sweeps)."""
    handles, labels = axes.get_legend_handles_labels()
    if 0 < len(labels) <= MAX_LEGEND_ENTRIES:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize="small")


def metric_scale(metric: str) -> tuple[float, str]:
    """Fractions (accuracies) are shown in percent."""
    return (100.0, " (%)") if is_percent(metric) else (1.0, "")


def plot_learning_curves(curves: dict[str, GroupCurves], colors: Colors, path: Path) -> Path | None:
    """Mean ± SE per epoch and group; val solid, train dashed."""
    tags = {tag for group in curves.values() for tag in group.curves}
    panels = {name: pair for name, pair in CURVE_PANELS.items() if tags & set(pair)}
    if not panels:
        return None
    figure, axes = new_figure(len(panels))
    for ax, (name, pair) in zip(axes, panels.items()):
        for label, group in curves.items():
            for tag in pair:
                if tag in group.curves:
                    draw_band(ax, group.curves[tag], colors[label], tag, label if tag.startswith("val") else None)
        title = f"{name}: val (solid), train (dashed), ± SE"
        ax.set(xlabel="epoch", ylabel=name + metric_scale(pair[0])[1], title=title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    add_legend(figure, axes[0])
    return save_figure(figure, path)


def draw_band(ax: "Axes", curve: Curve, color: tuple[float, ...], tag: str, legend_label: str | None) -> None:
    scale, _ = metric_scale(tag)
    mean, se = curve.mean * scale, np.nan_to_num(curve.se * scale)
    style = "-" if tag.startswith("val") else "--"
    ax.plot(curve.epochs, mean, style, color=color, label=legend_label, linewidth=1.5)
    ax.fill_between(curve.epochs, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)


def means_and_errors(descriptions: list[Description | None], scale: float) -> tuple[list[float], list[float]]:
    """Scaled means and SE error bars (no bar where the SE is undefined, e.g. one seed)."""
    means = [d.mean * scale if d else math.nan for d in descriptions]
    errors = [float(np.nan_to_num(d.se * scale)) if d else 0.0 for d in descriptions]
    return means, errors


def numeric_value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def swept_numeric_keys(groups: list[Group]) -> list[str]:
    """Override keys whose values are numbers that differ between groups: the x-axes worth plotting."""
    keys = sorted({key for group in groups for key in group.overrides})
    swept = []
    for key in keys:
        values = [group.overrides[key] for group in groups if key in group.overrides]
        numbers = [numeric_value(v) for v in values]
        if None not in numbers and len(set(numbers)) > 1:
            swept.append(key)
    return swept


def set_x_scale(ax: "Axes", key: str, xs: list[float]) -> None:
    """Log x for rates and penalty strengths; symlog when the sweep includes 0 (no penalty)."""
    if not any(part in key.lower() for part in LOG_SCALE_KEY_PARTS):
        return
    positive = [x for x in xs if x > 0]
    if positive and len(positive) == len(xs):
        ax.set_xscale("log")
    elif positive:
        ax.set_xscale("symlog", linthresh=min(positive))


def plot_metric_vs_hyperparameter(sweep: Sweep, key: str, descriptions: Descriptions, path: Path) -> Path | None:
    """Mean ± SE of the main final metrics against one swept value; one line per setting of the other overrides."""
    groups = [g for g in sweep.groups if key in g.overrides]
    metrics = [m for m in VS_HYPERPARAMETER_METRICS if has_data(descriptions, [g.label for g in groups], m)]
    if not metrics:
        return None
    series: dict[str, list[Group]] = {}
    for group in groups:
        rest = {k: v for k, v in group.overrides.items() if k != key}
        series.setdefault(group_label(rest), []).append(group)
    series_colors = group_colors(list(series))
    figure, axes = new_figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        scale, unit = metric_scale(metric)
        for name, members in series.items():
            members = sorted(members, key=lambda g: float(g.overrides[key]))
            xs = [float(g.overrides[key]) for g in members]
            means, errors = means_and_errors([descriptions[g.label].get(metric) for g in members], scale)
            ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=name, color=series_colors[name])
        set_x_scale(ax, key, [float(g.overrides[key]) for g in groups])
        ax.set(xlabel=key, ylabel=metric + unit, title=f"{metric} (mean ± SE)")
        ax.grid(alpha=0.3)
    add_legend(figure, axes[0])
    return save_figure(figure, path)


def pooled_weights(group: Group) -> np.ndarray:
    """All weight-matrix values of the group's ok jobs (biases and norms left out: rarely penalized)."""
    arrays = []
    for job in group.with_status(OK):
        path = job.dir / WEIGHTS_FILE
        if path.exists():
            with np.load(path) as archive:
                parameters = [archive[name] for name in archive.files]  # each access decompresses: once
            arrays += [p.ravel() for p in parameters if p.ndim >= 2] or [p.ravel() for p in parameters]
    values = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.float32)
    return values[np.isfinite(values)]


def plot_weight_histograms(sweep: Sweep, colors: Colors, path: Path) -> Path | None:
    """Weight-value densities per group: L1 piles weights at zero, L2 narrows the distribution.

    Left: density of w on a log axis (tails and the spike at 0). Right: density of log10|w|, where
    the weights L1 drove to (near) zero form their own mode below the sparsity threshold.
    """
    weights = {g.label: w for g in sweep.groups if (w := pooled_weights(g)).size}
    if not weights:
        return None
    limit = max(float(np.percentile(np.abs(w), 99.9)) for w in weights.values()) or 1.0
    value_bins = np.linspace(-limit, limit, 121)
    log_bins = np.linspace(math.log10(MAGNITUDE_FLOOR), math.log10(limit), 101)
    figure, (values_ax, log_ax) = new_figure(2)
    for label, w in weights.items():
        density, _ = np.histogram(w, bins=value_bins, density=True)
        values_ax.stairs(density, value_bins, color=colors[label], label=label, linewidth=1.3)
        magnitudes = np.log10(np.maximum(np.abs(w, dtype=np.float64), MAGNITUDE_FLOOR))
        log_density, _ = np.histogram(magnitudes, bins=log_bins, density=True)
        log_ax.stairs(log_density, log_bins, color=colors[label], linewidth=1.3)
    values_ax.set(yscale="log", xlabel="weight value", ylabel="density", title="final weights (all seeds pooled)")
    log_ax.axvline(math.log10(SPARSITY_THRESHOLD), color="gray", linestyle=":")
    xlabel = f"log10 |weight| (exact zeros at {math.log10(MAGNITUDE_FLOOR):.0f})"
    log_ax.set(xlabel=xlabel, ylabel="density", title="weight magnitudes (dotted: sparsity threshold)")
    for ax in (values_ax, log_ax):
        ax.grid(alpha=0.3)
    add_legend(figure, values_ax)
    return save_figure(figure, path)


def plot_generalization_gap(labels: list[str], descriptions: Descriptions, colors: Colors, path: Path) -> Path | None:
    """Final generalization gap per group, mean with SE error bars."""
    metrics = [m for m in GAP_METRICS if has_data(descriptions, labels, m)]
    if not metrics:
        return None
    panel_width = min(max(5.0, 0.7 * len(labels) + 2), 16.0)  # room for the group names, up to a point
    figure, axes = new_figure(len(metrics), panel_size=(panel_width, 4.2))
    for ax, metric in zip(axes, metrics):
        scale, unit = metric_scale(metric)
        means, errors = means_and_errors([descriptions[label].get(metric) for label in labels], scale)
        ax.bar(range(len(labels)), means, yerr=errors, capsize=4, color=[colors[label] for label in labels])
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize="small")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(ylabel=metric + unit, title=f"{metric} (mean ± SE)")
        ax.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)


def write_plots(sweep: Sweep, descriptions: Descriptions, curves: dict[str, GroupCurves]) -> list[Path]:
    """Every figure that the sweep has data for; returns the files written."""
    plots_dir = sweep.sweep_dir / PLOTS_DIR
    labels = [g.label for g in sweep.groups]
    colors = group_colors(labels)
    written = [
        plot_learning_curves(curves, colors, plots_dir / "learning_curves.png"),
        plot_weight_histograms(sweep, colors, plots_dir / "weight_histograms.png"),
        plot_generalization_gap(labels, descriptions, colors, plots_dir / "generalization_gap.png"),
    ]
    written += [
        plot_metric_vs_hyperparameter(sweep, key, descriptions, plots_dir / f"vs_{safe_name(key)}.png")
        for key in swept_numeric_keys(sweep.groups)
    ]
    return [path for path in written if path is not None]
