"""The plots of a sweep, one function per figure, written as PNG (and PDF or SVG on request), and drawn as SVG for
report.html; matplotlib is imported only when plots are asked for.

Figures are drawn on the Agg canvas without pyplot (no global figure state, no display needed)
and written atomically like every other output. Series are labelled by what differs between
them only (the overrides every job shares are left out), and legends sit outside the axes.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regsweep.aggregate.curves import Curve, GroupCurves
from regsweep.aggregate.load import (
    ARCHITECTURE_KEYS,
    MODEL_SIZE_KEY,
    Group,
    GroupValues,
    Job,
    Predictions,
    Sweep,
    group_label,
    load_predictions,
    numeric_value,
    read_predictions,
    read_weights,
    safe_name,
)
from regsweep.aggregate.output import remove, write_bytes
from regsweep.aggregate.stats import Description
from regsweep.aggregate.summary import Descriptions, has_data
from regsweep.console import count
from regsweep.errors import ConfigError
from regsweep.metrics import CLASSIFICATION, SPARSITY_THRESHOLD, SPARSITY_TINY, base_name, is_percent
from regsweep.metrics import metric as declared_metric  # `metric` names a loop variable here
from regsweep.records import OK, PREDICTIONS_FILE

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.contour import ContourSet
    from matplotlib.figure import Figure

PLOTS_DIR = "plots"
# The seed summary's figures in plots/ (names without their format), in the order summary.md shows them, then one
# VS_PREFIX figure per swept number.
FIGURES = ("test_metrics", "learning_curves", "weight_histograms", "generalization_gap", "predictions")
VS_PREFIX = "vs_"
SHOWN_FORMAT = "png"  # every figure; summary.md shows it
VECTOR_FORMATS = ("pdf", "svg")  # on request, beside the PNG: figures for a paper, sharp at any size
PAGE_FORMAT = "svg"  # report.html's figures, kept in memory: vector, text drawn as paths (no font to fetch)
# What each figure shows, for report.html's captions (summary.md's plots carry their own titles).
CAPTIONS = {
    "test_metrics": "Test accuracy and loss per group: each seed a dot, beside them the mean ± SE.",
    "learning_curves": "Learning curves: mean ± SE over seeds per epoch and group; val solid, train dashed.",
    "weight_histograms": "Densities of the kept epoch's weight values per group (all seeds pooled), and of their "
                         "magnitudes with the sparsity cut-offs.",
    "generalization_gap": "Generalization gap of the last epoch per group, mean ± SE.",
    "predictions": "Regression: mean |prediction - truth| over seeds on the test grid, per group.",
}
# No date in a vector file, and SVG element ids from a fixed salt instead of a random one: the same sweep, the same
# bytes. PDF fonts embedded as TrueType (42), not matplotlib's default Type 3, which publishers' checks refuse.
UNDATED = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}
VECTOR_SETTINGS = {"svg.hashsalt": "regsweep", "pdf.fonttype": 42}
PREDICTION_PLOT = "prediction.png"  # in each regression job's dir
LOG_SCALE_KEY_PARTS = ("l1", "l2", "lr", "weight_decay", "n_train", "batch_size", "parameters")
GAP_METRICS = ("final/gen_gap/acc", "final/gen_gap/loss")
TEST_METRICS = ("test/acc", "test/loss")  # what a study's question is answered by, shown seed by seed
VS_HYPERPARAMETER_METRICS = ("test/acc", "test/loss", *GAP_METRICS, "best/weights/sparsity")
CURVE_PANELS = {"loss": "loss", "accuracy": "acc"}  # panel -> metric, drawn for val and a train stage
TRAIN_STAGES = ("train_eval", "train")  # the eval-mode pass (what gen_gap uses) when the jobs logged it
SECTION_WORDS = {"best/": "kept epoch", "final/": "last epoch", "test/": "test set, kept epoch's weights"}
LOG_SPAN = 10.0  # positive values spanning this factor or more get a log axis
MAGNITUDE_FLOOR = 1e-8  # exact zeros are drawn at this |w| on the log-magnitude axis
MAX_LEGEND_ENTRIES = 12
ARCHITECTURE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # one per architecture, vs model size
LEGEND_WRAP = 32  # characters per legend line
TICK_WRAP = 18  # characters per line of a group's name under its bar
TICK_CHAR_WIDTH = 0.075  # inches per character of a tick label (fontsize "small")
WIDE_PANEL = 8.0  # inches: per-group panels wider than this are stacked, not put side by side
LEGEND_WIDTH = 2.8  # inches added to a figure for its legend on the right
DPI = 110
# A job's prediction plot, drawn once per regression job: fixed margins (room for a three-line title) instead of
# constrained layout, which took 40 % of its time
PREDICTION_MARGINS = {"left": 0.05, "right": 0.97, "bottom": 0.1, "top": 0.8, "wspace": 0.35}
Colors = dict[str, tuple[float, ...]]  # label -> RGBA, the same in every figure


def checked_vector_formats(key: str, formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` if each is one of VECTOR_FORMATS, else a ConfigError naming ``key``: before a sweep, not after it."""
    if any(file_format not in VECTOR_FORMATS for file_format in formats):
        raise ConfigError(key, list(formats), f"each must be one of {', '.join(VECTOR_FORMATS)}")
    return tuple(formats)


def caption(name: str) -> str:
    """What the summary figure ``name`` (a file stem in plots/) shows."""
    if name.startswith(VS_PREFIX):
        return f"Final metrics against {name.removeprefix(VS_PREFIX)}, mean ± SE per group."
    return CAPTIONS.get(name, name)


@dataclass(frozen=True)
class PlotFiles:
    summary: list[Path]  # the PNGs under plots/, shown in summary.md
    jobs: list[Path]  # one prediction.png per regression job
    vector: list[Path] = field(default_factory=list)  # the same figures as the PNGs in the VECTOR_FORMATS asked for
    page: dict[Path, bytes] = field(default_factory=dict)  # each summary PNG's figure in PAGE_FORMAT, for report.html


# --- figure plumbing --------------------------------------------------------------------------------


def new_figure(
    panels: int, panel_size: tuple[float, float] = (5.0, 3.6), columns: int = 3, legend: bool = False,
    margins: dict[str, float] | None = None,
) -> tuple["Figure", list["Axes"]]:
    """A figure of ``panels`` axes; ``legend`` leaves room on the right for one. Laid out by matplotlib's
    constrained layout, or with fixed ``margins`` (``Figure.subplots_adjust``'s), which draw in ~60 % of the time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(panels, columns)
    rows = math.ceil(panels / columns)
    width = panel_size[0] * columns + (LEGEND_WIDTH if legend else 0.0)
    figure = Figure(figsize=(width, panel_size[1] * rows + 0.6), layout=None if margins else "constrained")
    if margins:
        figure.subplots_adjust(**margins)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, list(axes[:panels])


def figure_bytes(figure: "Figure", file_format: str) -> bytes:
    """``figure`` as a file of ``file_format`` (png, or one of VECTOR_FORMATS): the same figure, the same bytes."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context(VECTOR_SETTINGS):
        figure.savefig(buffer, format=file_format, dpi=DPI, metadata=UNDATED.get(file_format))
    return buffer.getvalue()


def save_figure(figure: "Figure", path: Path) -> Path:
    """Writes ``figure`` in the format its file name ends with (an OutputError when the disk refuses)."""
    return write_bytes(path, figure_bytes(figure, path.suffix.removeprefix(".")))


def group_colors(labels: list[str]) -> Colors:
    """One color per group (or line), the same in every figure."""
    from matplotlib import colormaps

    colormap = colormaps["tab10" if len(labels) <= 10 else "viridis"]
    positions = range(len(labels)) if len(labels) <= 10 else np.linspace(0, 1, len(labels))
    return {label: tuple(colormap(p)) for label, p in zip(labels, positions)}


def wrap(label: str, width: int = LEGEND_WRAP) -> str:
    """A comma-joined label broken between its overrides, so a legend or tick label stays narrow."""
    spaced = re.sub(r",(?! )", ", ", label)
    return "\n".join(textwrap.wrap(spaced, width, break_long_words=False, break_on_hyphens=False)) or label


def add_legend(figure: "Figure", handles: Sequence["Artist"], labels: Sequence[str]) -> None:
    """A legend right of the axes (never over the data, never clipped), left out for too many groups."""
    if 0 < len(labels) <= MAX_LEGEND_ENTRIES:
        figure.legend(handles, [wrap(label) for label in labels], loc="outside right upper", fontsize="small")


def axes_legend(figure: "Figure", ax: "Axes") -> None:
    add_legend(figure, *ax.get_legend_handles_labels())


def metric_unit(metric: str) -> tuple[float, str]:
    """Fractions (accuracies) are shown in percent, differences of them (gaps) in percentage points."""
    if not is_percent(metric):
        return 1.0, ""
    return 100.0, " (pp)" if metric in GAP_METRICS else " (%)"


def name_and_moment(metric: str) -> tuple[str, str | None]:
    """``final/gen_gap/acc`` -> (``gen_gap/acc``, ``last epoch``): the metric's name and when it was measured."""
    prefix = next((p for p in SECTION_WORDS if metric.startswith(p)), None)
    return base_name(metric), SECTION_WORDS.get(prefix)


def metric_title(metric: str) -> str:
    """``final/gen_gap/acc`` -> ``gen_gap/acc (last epoch)``."""
    name, moment = name_and_moment(metric)
    return name if moment is None else f"{name} ({moment})"


def metric_axis_label(metric: str) -> str:
    """``final/gen_gap/acc`` -> ``gen_gap/acc (pp)``: the title says when it was measured."""
    return name_and_moment(metric)[0] + metric_unit(metric)[1]


def single_seed_note(descriptions: Sequence[Description | None]) -> str:
    """Says when a point has one seed: no error bar there, rather than one that looks like SE = 0."""
    counts = [d.n for d in descriptions if d is not None and d.n > 0]
    if counts and all(n == 1 for n in counts):
        return "n = 1 seed: no error bars"
    if 1 in counts:
        return "mean ± SE; no bar: n = 1"
    return "mean ± SE over seeds"


def means_and_errors(descriptions: Sequence[Description | None], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Scaled means and SE error bars; NaN (no bar drawn) where the SE is undefined, e.g. one seed."""
    means = np.array([d.mean * scale if d else math.nan for d in descriptions])
    errors = np.array([d.se * scale if d else math.nan for d in descriptions])
    return means, errors


def finite(values: np.ndarray) -> np.ndarray:
    """The values without NaN (a job that lacks the metric) and infinities."""
    return values[np.isfinite(values)]


def spans_orders_of_magnitude(values: np.ndarray) -> bool:
    positive = finite(values)
    return positive.size > 1 and bool(np.all(positive > 0)) and positive.max() >= LOG_SPAN * positive.min()


def set_y_scale(ax: "Axes", metric: str, values: np.ndarray) -> str:
    """Log y for positive non-percent values spanning orders of magnitude (a loss at m = 100 vs 1000)."""
    if not is_percent(metric) and spans_orders_of_magnitude(values):
        ax.set_yscale("log")
        return ", log scale"
    return ""


# --- learning curves ----------------------------------------------------------------------------


def curve_tags(curves: dict[str, GroupCurves], name: str) -> tuple[str, str] | None:
    """(train tag, val tag) of a panel; the eval-mode training pass when logged, else the running train mean."""
    tags = {tag for group in curves.values() for tag in group.curves}
    train = next((f"{stage}/{name}" for stage in TRAIN_STAGES if f"{stage}/{name}" in tags), None)
    val = f"val/{name}" if f"val/{name}" in tags else None
    return (train or "", val or "") if train or val else None


def plot_learning_curves(curves: dict[str, GroupCurves], colors: Colors) -> "Figure | None":
    """Mean ± SE per epoch and group; val solid, train dashed; log loss axis when it spans decades."""
    panels = {name: tags for name, spec in CURVE_PANELS.items() if (tags := curve_tags(curves, spec))}
    if not panels:
        return None
    figure, axes = new_figure(len(panels), legend=True)
    for ax, (name, (train_tag, val_tag)) in zip(axes, panels.items()):
        drawn = []
        for label, group in curves.items():
            for tag in (train_tag, val_tag):
                if tag in group.curves:
                    draw_band(ax, group.curves[tag], colors[label], tag)
                    drawn.append(group.curves[tag].mean)
        values = np.concatenate(drawn) if drawn else np.empty(0)
        log_note = set_y_scale(ax, val_tag or train_tag, values)
        train_words = "train, eval-mode pass" if train_tag.startswith("train_eval") else "train, running mean"
        ax.set_title(f"{name}: val (solid), {train_words} (dashed)\n{band_note(curves)}{log_note}", fontsize="medium")
        unit = " (%)" if is_percent(val_tag or train_tag) else ""
        ax.set(xlabel="epoch", ylabel=name + unit)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    add_legend(figure, *curve_legend(list(curves), colors))
    return figure


def band_note(curves: dict[str, GroupCurves]) -> str:
    """Says when a group has one seed: no band there, rather than a line that looks certain."""
    seeds = [max((c.n.max(initial=0) for c in g.curves.values()), default=0) for g in curves.values()]
    if seeds and all(n <= 1 for n in seeds):
        return "n = 1 seed: no SE band"
    return "± SE over seeds" + ("; no band: n = 1" if any(n <= 1 for n in seeds) else "")


def curve_legend(labels: list[str], colors: Colors) -> tuple[list["Artist"], list[str]]:
    """One entry per group (its color) after two for the line styles."""
    from matplotlib.lines import Line2D

    styles = [Line2D([], [], color="black", linestyle=s) for s in ("-", "--")]
    groups = [Line2D([], [], color=colors[label], linewidth=2) for label in labels]
    return [*styles, *groups], ["val", "train", *labels]


def draw_band(ax: "Axes", curve: Curve, color: tuple[float, ...], tag: str) -> None:
    scale, _ = metric_unit(tag)
    mean, se = curve.mean * scale, np.nan_to_num(curve.se * scale)
    style = "-" if tag.startswith("val") else "--"
    ax.plot(curve.epochs, mean, style, color=color, linewidth=1.5)
    ax.fill_between(curve.epochs, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)


# --- metrics against a swept number -------------------------------------------------------------


def swept_numeric_keys(sweep: Sweep) -> list[str]:
    """Override keys whose values are numbers that differ between groups, and the model's size when the
    architecture differs in what is no number (``model.hidden_sizes``): the x-axes worth plotting."""
    keys = sorted({key for group in sweep.groups for key in group.overrides})
    swept = []
    for key in keys:
        numbers = [group.number(key) for group in sweep.groups if key in group.overrides]
        if None not in numbers and len(set(numbers)) > 1:
            swept.append(key)
    architecture = {key for key in sweep.varying_keys if key in ARCHITECTURE_KEYS}
    return swept + ([MODEL_SIZE_KEY] if sweep.sizes_compared and not architecture <= set(swept) else [])


def along_axis(groups: list[Group], key: str) -> tuple[list[Group], tuple[str, ...]]:
    """The groups drawn against ``key``, and the overrides that move along it (the others make the series):
    for the model's size, every override that sets it."""
    if key == MODEL_SIZE_KEY:
        return [g for g in groups if g.number(key) is not None], ARCHITECTURE_KEYS
    return [g for g in groups if key in g.overrides], (key,)


def set_x_scale(ax: "Axes", key: str, xs: list[float]) -> None:
    """Log x for rates, penalty strengths, sample and batch sizes; symlog when the sweep includes 0 (no penalty)."""
    if not any(part in key.lower() for part in LOG_SCALE_KEY_PARTS):
        return
    positive = [x for x in xs if x > 0]
    if positive and len(positive) == len(xs):
        ax.set_xscale("log")
    elif positive:
        ax.set_xscale("symlog", linthresh=min(positive))


def strength_axis_label(key: str, groups: list[Group]) -> str:
    """The swept key (nominal, as typed); says so when the penalty applied is nominal / n_train."""
    term = key.rpartition(".")[2]
    records = [g.record for g in groups if g.record is not None]
    scaled = [r for r in records if r.penalty.get("scale_by_n_train") and f"{term}_applied" in r.penalty]
    if not scaled:
        return key
    sizes = sorted({r.data["n_train"] for r in scaled if "n_train" in r.data})
    counts = f" (n_train = {', '.join(map(str, sizes))})" if sizes else ""
    return f"{key}, nominal\napplied = nominal / n_train{counts}"


def recorded_note(key: str, groups: list[Group]) -> str:
    """Where a value that is not a number (``null``: a full batch) is drawn: at what the records say it came to."""
    drawn = {g.overrides[key]: g.number(key) for g in groups if numeric_value(g.overrides[key]) is None}
    return "".join(f"\n{value} = {number:g} (as recorded)" for value, number in drawn.items())


def x_axis_label(key: str, groups: list[Group]) -> str:
    if key == MODEL_SIZE_KEY:
        return "trainable parameters per model (as recorded)"
    return strength_axis_label(key, groups) + recorded_note(key, groups)


def series_by_other_overrides(groups: list[Group], along: tuple[str, ...]) -> dict[str, list[Group]]:
    """One line per setting of the varying overrides not ``along`` the axis, labelled by those only."""
    series: dict[str, list[Group]] = {}
    for group in groups:
        rest = {k: v for k, v in group.varying.items() if k not in along}
        series.setdefault(group_label(rest), []).append(group)
    return series


def compact_count(count: float) -> str:
    """102k, 2.91M: a parameter count short enough for a legend (summary.md has the exact ones)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return f"{count:.0f}"


def architecture_name(group: Group, keys: tuple[str, ...]) -> str:
    """``hidden_sizes=[512,256]``: the group's values of the overrides that set its architecture."""
    return ",".join(f"{k.removeprefix('model.')}={v}" for k, v in group.varying.items() if k in keys)


def architecture_markers(groups: list[Group], keys: tuple[str, ...]) -> dict[str, tuple[str, "Artist"]]:
    """Architecture name -> its marker, and the legend entry that names it with its size, smallest first."""
    from matplotlib.lines import Line2D

    by_size = sorted(groups, key=lambda g: g.number(MODEL_SIZE_KEY))
    sizes = {architecture_name(g, keys): g.number(MODEL_SIZE_KEY) for g in by_size}
    markers = {}
    for index, (name, size) in enumerate(sizes.items()):
        marker = ARCHITECTURE_MARKERS[index % len(ARCHITECTURE_MARKERS)]
        entry = Line2D([], [], marker=marker, linestyle="", color="0.3", label=f"{name}: {compact_count(size)}")
        markers[name] = (marker, entry)
    return markers


def plot_metric_vs_hyperparameter(sweep: Sweep, key: str, descriptions: Descriptions) -> "Figure | None":
    """Mean ± SE of the main metrics against one swept value; one line per setting of the other overrides.
    Against the model's size, each architecture has its own marker, named in the legend with its size."""
    groups, along = along_axis(sweep.groups, key)
    metrics = [m for m in VS_HYPERPARAMETER_METRICS if has_data(descriptions, [g.label for g in groups], m)]
    if not metrics:
        return None
    series = series_by_other_overrides(groups, along)
    series_colors = group_colors(list(series))
    markers = architecture_markers(groups, along) if key == MODEL_SIZE_KEY else {}
    figure, axes = new_figure(len(metrics), legend=len(series) > 1 or bool(markers))
    x_label = x_axis_label(key, groups)
    swept_values = [g.number(key) for g in groups]
    for ax, metric in zip(axes, metrics):
        scale, _ = metric_unit(metric)
        shown: list[Description | None] = []
        for name, members in series.items():
            members = sorted(members, key=lambda g: g.number(key))
            xs = [g.number(key) for g in members]
            points = [descriptions[g.label].get(metric) for g in members]
            means, errors = means_and_errors(points, scale)
            ax.errorbar(xs, means, yerr=errors, marker="" if markers else "o", capsize=3, label=name,
                        color=series_colors[name])
            for group, x, y in zip(members, xs, means) if markers else ():
                ax.plot(x, y, marker=markers[architecture_name(group, along)][0], color=series_colors[name])
            shown += points
        set_x_scale(ax, key, swept_values)
        log_note = set_y_scale(ax, metric, means_and_errors(shown, scale)[0])
        ax.set_title(f"{metric_title(metric)}\n{single_seed_note(shown)}{log_note}", fontsize="medium")
        ax.set(xlabel=x_label, ylabel=metric_axis_label(metric))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels() if len(series) > 1 else ([], [])
    named = [entry for _, entry in markers.values()]
    add_legend(figure, [*handles, *named], [*labels, *(entry.get_label() for entry in named)])
    return figure


# --- weights ------------------------------------------------------------------------------------


def pooled_weights(group: Group) -> np.ndarray:
    """All weight-matrix values of the group's ok jobs (biases and norms left out: rarely penalized)."""
    arrays = []
    for job in group.with_status(OK):
        parameters = list(read_weights(job).values())
        arrays += [p.ravel() for p in parameters if p.ndim >= 2] or [p.ravel() for p in parameters]
    return finite(np.concatenate(arrays) if arrays else np.empty(0, dtype=np.float32))


def plot_weight_histograms(sweep: Sweep, colors: Colors) -> "Figure | None":
    """Weight-value densities per group: L1 piles weights at zero, L2 narrows the distribution.

    The weights are those of weights.npz: the kept (best-checkpoint) epoch's, like the sparsity
    table. Left: density of w on a log axis (tails and the spike at 0). Right: density of
    log10|w|, with the absolute sparsity cut-offs, where weights L1 drove to zero form their own mode.
    """
    weights = {g.label: w for g in sweep.groups if (w := pooled_weights(g)).size}
    if not weights:
        return None
    limit = max(float(np.percentile(np.abs(w), 99.9)) for w in weights.values()) or 1.0
    value_bins = np.linspace(-limit, limit, 121)
    log_bins = np.linspace(math.log10(MAGNITUDE_FLOOR), math.log10(limit), 101)
    figure, (values_ax, log_ax) = new_figure(2, legend=True)
    for label, w in weights.items():
        density, _ = np.histogram(w, bins=value_bins, density=True)
        values_ax.stairs(density, value_bins, color=colors[label], label=label, linewidth=1.3)
        magnitudes = np.log10(np.maximum(np.abs(w, dtype=np.float64), MAGNITUDE_FLOOR))
        log_density, _ = np.histogram(magnitudes, bins=log_bins, density=True)
        log_ax.stairs(log_density, log_bins, color=colors[label], linewidth=1.3)
    title = "kept-epoch weights (weights.npz)\nweight matrices, all seeds pooled"
    values_ax.set(yscale="log", xlabel="weight value", ylabel="density (log scale)", title=title)
    for threshold, style in ((SPARSITY_THRESHOLD, ":"), (SPARSITY_TINY, "-.")):
        log_ax.axvline(math.log10(threshold), color="gray", linestyle=style, label=f"|w| = {threshold:g}")
    log_ax.legend(loc="upper left", fontsize="small", title="sparsity cut-offs", title_fontsize="small")
    xlabel = f"log10 |weight| (exact zeros at {math.log10(MAGNITUDE_FLOOR):.0f})"
    log_ax.set(xlabel=xlabel, ylabel="density", title="weight magnitudes\n(same weights)")
    for ax in (values_ax, log_ax):
        ax.grid(alpha=0.3)
    axes_legend(figure, values_ax)
    return figure


# --- per group: test metrics, generalization gap -----------------------------------------------------


def group_panel_size(labels: list[str]) -> tuple[float, float]:
    """Room for the wrapped group names side by side under a per-group panel, up to a point."""
    widest = max((len(line) for label in labels for line in wrap(label, TICK_WRAP).splitlines()), default=0)
    per_group = max(1.5, TICK_CHAR_WIDTH * widest + 0.3)
    return min(max(4.0, per_group * len(labels) + 1), 16.0), 4.4


def set_group_ticks(ax: "Axes", labels: list[str], points: list[Description | None]) -> None:
    """Each group's name and seed count under its place; slanted when there are many."""
    rotate = len(labels) > 6
    names = [label if rotate else wrap(label, TICK_WRAP) for label in labels]
    ticks = [f"{name}\n(n = {d.n if d else 0})" for name, d in zip(names, points)]
    ax.set_xticks(range(len(labels)), ticks, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                  fontsize="small")
    if len(labels) == 1:
        ax.set_xlim(-1, 1)


def seed_offsets(n: int) -> np.ndarray:
    """Where a group's seed dots sit left of its mean: spread evenly, so equal values stay visible apart (none for a
    group whose every job failed)."""
    return np.linspace(-0.3, -0.05, n) if n > 1 else np.full(n, -0.15)


@dataclass(frozen=True)
class GroupPanel:
    """One metric's axes in a per-group figure, with each group's statistics on the figure's scale."""

    ax: "Axes"
    metric: str
    scale: float
    points: list[Description | None]
    means: np.ndarray
    errors: np.ndarray


def group_panels(
    labels: list[str], descriptions: Descriptions, metrics: Sequence[str]
) -> tuple["Figure", list[GroupPanel]] | None:
    """A panel per metric that some group has, groups side by side, named under their places; None for none."""
    metrics = [m for m in metrics if has_data(descriptions, labels, m)]
    if not metrics:
        return None
    size = group_panel_size(labels)
    figure, axes = new_figure(len(metrics), panel_size=size, columns=2 if size[0] <= WIDE_PANEL else 1)
    panels = []
    for ax, metric in zip(axes, metrics):
        scale, _ = metric_unit(metric)
        points = [descriptions[label].get(metric) for label in labels]
        set_group_ticks(ax, labels, points)
        ax.set(ylabel=metric_axis_label(metric))
        ax.grid(axis="y", alpha=0.3)
        panels.append(GroupPanel(ax, metric, scale, points, *means_and_errors(points, scale)))
    return figure, panels


def plot_test_metrics(
    labels: list[str], values: GroupValues, descriptions: Descriptions, colors: Colors
) -> "Figure | None":
    """Test accuracy and loss per group: every seed's value as a dot, beside it the mean ± SE (none for one seed)."""
    if (drawing := group_panels(labels, descriptions, TEST_METRICS)) is None:
        return None
    figure, panels = drawing
    for panel in panels:
        seeds = [finite(values[label][panel.metric]) * panel.scale for label in labels]
        for place, (label, seed_values) in enumerate(zip(labels, seeds)):
            panel.ax.scatter(place + seed_offsets(len(seed_values)), seed_values, s=14, color=colors[label], alpha=0.6)
            panel.ax.errorbar(place + 0.15, panel.means[place], yerr=panel.errors[place], marker="D", markersize=6,
                              capsize=4, color=colors[label], markeredgecolor="black")
        log_note = set_y_scale(panel.ax, panel.metric, np.concatenate(seeds))
        panel.ax.set_title(f"{metric_title(panel.metric)}{log_note}\ndots: seeds; diamond: "
                           f"{single_seed_note(panel.points)}", fontsize="medium")
    return figure


def plot_generalization_gap(labels: list[str], descriptions: Descriptions, colors: Colors) -> "Figure | None":
    """Last-epoch generalization gap per group, mean with SE error bars (none for one seed)."""
    if (drawing := group_panels(labels, descriptions, GAP_METRICS)) is None:
        return None
    figure, panels = drawing
    for panel in panels:
        width = 0.6 if len(labels) > 1 else 0.35
        panel.ax.bar(range(len(labels)), panel.means, yerr=panel.errors, width=width, capsize=4,
                     color=[colors[g] for g in labels])
        panel.ax.axhline(0, color="black", linewidth=0.8)
        panel.ax.set_title(f"{metric_title(panel.metric)}: {declared_metric(panel.metric).formula}\n"
                           f"{single_seed_note(panel.points)}", fontsize="medium")
    return figure


# --- regression predictions ---------------------------------------------------------------------


def draw_surface(
    ax: "Axes", x: np.ndarray, z: np.ndarray, levels: np.ndarray, cmap: str, **kwargs: object
) -> "ContourSet":
    """A filled contour of z over the 2-D test points (regular grid or not), square axes in input units."""
    surface = ax.tricontourf(x[:, 0], x[:, 1], z, levels=levels, cmap=cmap, **kwargs)
    ax.set(xlabel="x1", ylabel="x2", aspect="equal")
    return surface


def add_colorbar(
    figure: "Figure", surface: "ContourSet", axes: "Axes | list[Axes]", label: str = "", log: bool = False
) -> None:
    """A colorbar with round tick values (contour levels are not), labelled at 1-2-5 steps on a log scale."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator

    bar = figure.colorbar(surface, ax=axes, shrink=0.85, label=label)
    if log:
        bar.locator = LogLocator(subs=(1.0, 2.0, 5.0))
        bar.formatter = LogFormatterSciNotation(labelOnlyBase=False)
    else:
        bar.locator = MaxNLocator(7)
    bar.update_ticks()


def symmetric_levels(values: np.ndarray, count: int = 21) -> np.ndarray:
    limit = float(np.max(np.abs(values))) or 1.0
    return np.linspace(-limit, limit, count)


def draw_prediction_plot(predictions: Predictions, title: str) -> "Figure":
    """Truth, prediction (same color scale) and signed error over the test grid, side by side."""
    p = predictions
    low, high = min(p.y_true.min(), p.y_pred.min()), max(p.y_true.max(), p.y_pred.max())
    levels = np.linspace(low, high if high > low else low + 1.0, 21)
    figure, (true_ax, pred_ax, error_ax) = new_figure(3, panel_size=(4.2, 3.9), margins=PREDICTION_MARGINS)
    for ax, values, name in ((true_ax, p.y_true, "truth f(x)"), (pred_ax, p.y_pred, "prediction (kept epoch)")):
        add_colorbar(figure, draw_surface(ax, p.x, values, levels, "viridis"), ax)
        ax.set_title(name)
    add_colorbar(figure, draw_surface(error_ax, p.x, p.error, symmetric_levels(p.error), "RdBu_r"), error_ax)
    error_ax.set_title("error: prediction - truth")
    mse, worst = float(np.mean(p.error**2)), float(np.max(np.abs(p.error)))
    figure.suptitle(f"{wrap(title, 110)}\ntest grid: MSE {mse:.3g}, max |error| {worst:.3g}", fontsize="medium")
    return figure


def write_prediction_plot(job_dir: Path) -> Path | None:
    """``prediction.png`` in a regression job's dir, from its ``predictions.npz``: truth, prediction, error.

    Returns None when the job has no ``predictions.npz`` (classification, or test=false); raises
    ``UnreadableFile`` (an ``AggregateError``) when the file is truncated or garbled.
    """
    job_dir = Path(job_dir)
    source = job_dir / PREDICTIONS_FILE
    if not source.exists():
        return None
    return save_figure(draw_prediction_plot(load_predictions(source), job_dir.name), job_dir / PREDICTION_PLOT)


def is_regression_job(job: Job) -> bool:
    """An ok job whose record does not say classification (records without a task are tried too)."""
    return job.ok and job.record is not None and job.record.data.get("task") != CLASSIFICATION


def group_predictions(sweep: Sweep) -> dict[str, list[tuple[Job, Predictions]]]:
    """Label -> the ok regression jobs' readable predictions.

    An unreadable file is noted on its job, and a prediction.png drawn from it earlier is removed:
    a stale plot must not pass for the job's result.
    """
    found: dict[str, list[tuple[Job, Predictions]]] = {}
    for group in sweep.groups:
        for job in filter(is_regression_job, group.jobs):
            if (predictions := read_predictions(job)) is not None:
                found.setdefault(group.label, []).append((job, predictions))
            elif PREDICTIONS_FILE in job.file_problems:
                remove(job.dir / PREDICTION_PLOT)
    return found


def mean_abs_error(members: list[tuple[Job, Predictions]]) -> tuple[Predictions, np.ndarray, list[float]]:
    """Mean |error| over the seeds that share the first seed's test grid, and each of those seeds' MSE."""
    first = members[0][1]
    errors = [p.error for _, p in members if p.x.shape == first.x.shape and np.allclose(p.x, first.x)]
    return first, np.mean(np.abs(errors), axis=0), [float(np.mean(e**2)) for e in errors]


def plot_group_predictions(predictions: dict[str, list[tuple[Job, Predictions]]]) -> "Figure | None":
    """One panel per group: mean |error| over seeds on the test grid (shared log color scale), truth as contours."""
    if not predictions:
        return None
    from matplotlib.colors import LogNorm

    summaries = {label: mean_abs_error(members) for label, members in predictions.items()}
    high = max(float(errors.max()) for _, errors, _ in summaries.values()) or 1.0
    low = high / 1000
    levels = np.geomspace(low, high, 16)
    figure, axes = new_figure(len(summaries), panel_size=(4.0, 3.9), columns=math.ceil(math.sqrt(len(summaries))))
    for ax, (label, (first, errors, mses)) in zip(axes, summaries.items()):
        surface = draw_surface(ax, first.x, np.clip(errors, low, high), levels, "magma", norm=LogNorm(low, high))
        ax.tricontour(first.x[:, 0], first.x[:, 1], first.y_true, levels=9, colors="white", linewidths=0.6, alpha=0.7)
        seeds = f"n = {count(len(mses), 'seed')}"
        ax.set_title(f"{wrap(label, 40)}\n{seeds}, test MSE {np.mean(mses):.2g}", fontsize="medium")
    add_colorbar(figure, surface, axes, "mean |prediction - truth| over seeds (log scale)", log=True)
    figure.suptitle("test-grid error per group (white: contours of the truth, dashed < 0)", fontsize="medium")
    return figure


def write_job_prediction_plots(predictions: dict[str, list[tuple[Job, Predictions]]]) -> list[Path]:
    """prediction.png per job, titled by its group and seed (the dir name repeats every shared override)."""
    return [
        save_figure(draw_prediction_plot(p, f"{label}, seed {job.record.seed if job.record else '?'}"),
                    job.dir / PREDICTION_PLOT)
        for label, members in predictions.items()
        for job, p in members
    ]


# --- everything ---------------------------------------------------------------------------------


def write_plots(
    sweep: Sweep, values: GroupValues, descriptions: Descriptions, curves: dict[str, GroupCurves],
    vector_formats: Sequence[str] = (),
) -> PlotFiles:
    """Every figure that the sweep has data for, as PNG and in each of ``vector_formats``; returns the files written,
    and each figure drawn in PAGE_FORMAT for report.html.

    A figure of an earlier aggregation that this one does not draw (a partial sweep's, one made by another
    version, a vector copy not asked for again) is removed, so that plots/ never shows a figure summary.md
    does not stand behind."""
    plots_dir = sweep.sweep_dir / PLOTS_DIR
    labels = [g.label for g in sweep.groups]
    colors = group_colors(labels)
    predictions = group_predictions(sweep)
    drawn = dict(zip(FIGURES, (
        plot_test_metrics(labels, values, descriptions, colors),
        plot_learning_curves(curves, colors),
        plot_weight_histograms(sweep, colors),
        plot_generalization_gap(labels, descriptions, colors),
        plot_group_predictions(predictions),
    )))
    drawn |= {f"{VS_PREFIX}{safe_name(key)}": plot_metric_vs_hyperparameter(sweep, key, descriptions)
              for key in swept_numeric_keys(sweep)}
    figures = {name: figure for name, figure in drawn.items() if figure is not None}
    shown = [save_figure(figure, plots_dir / f"{name}.{SHOWN_FORMAT}") for name, figure in figures.items()]
    vector = [save_figure(figure, plots_dir / f"{name}.{file_format}")
              for file_format in vector_formats for name, figure in figures.items()]
    for stale in summary_figure_files(plots_dir) - {*shown, *vector}:  # plots/ may hold others' figures too:
        remove(stale)  # a search's report draws there
    page = {path: figure_bytes(figure, PAGE_FORMAT) for path, figure in zip(shown, figures.values())}
    return PlotFiles(shown, write_job_prediction_plots(predictions), vector, page)


def summary_figure_files(plots_dir: Path) -> set[Path]:
    """The files in plots/ that are figures of a seed summary, in any format it writes."""
    formats = {f".{file_format}" for file_format in (SHOWN_FORMAT, *VECTOR_FORMATS)}
    return {path for path in plots_dir.glob("*") if path.suffix in formats
            and (path.stem in FIGURES or path.stem.startswith(VS_PREFIX))}
