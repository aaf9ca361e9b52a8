"""What the figures show a reader: labels by what differs, legends that fit, n = 1, log losses, predictions."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from test_aggregate_fixtures import TEST_ACC, make_job, make_regression_sweep, make_regularizer_sweep, write_predictions

from regsweep.aggregate import aggregate_sweep, plots
from regsweep.aggregate.load import UnreadableFile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LONG_PATH = "data.data_dir=/very/long/shared/path/to/the/datasets/of/the/course/mnist"


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """File name -> the figure written there, for looking at what a reader sees (texts, scales, bars)."""
    captured: dict[str, object] = {}
    save = plots.save_figure

    def capture(figure, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
        captured[Path(path).name] = figure
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    return captured


def legend_texts(figure) -> list[str]:  # noqa: ANN001
    return [text.get_text().replace("\n", " ") for legend in figure.legends for text in legend.get_texts()]


def assert_legend_inside_figure_and_beside_the_axes(figure) -> None:  # noqa: ANN001
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    for legend in figure.legends:
        box = legend.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1  # not clipped
        for ax in figure.axes:
            if ax.get_visible() and ax.get_label() != "<colorbar>":
                assert not box.overlaps(ax.get_window_extent(renderer))  # never over the data


def make_strength_grid(sweep_dir: Path, seeds: int = 2) -> None:
    """regularizer.l1 x regularizer.l2, every job also sharing trainer.max_epochs and a long data path."""
    num = 0
    for l1 in (0.0, 1e-5):
        for l2 in (0.0, 1e-4):
            for seed in range(seeds):
                overrides = ["regularizer=l1l2", f"regularizer.l1={l1:g}", f"regularizer.l2={l2:g}", f"seed={seed}",
                             "trainer.max_epochs=5", LONG_PATH]
                make_job(sweep_dir, num, overrides, 0.9 + seed / 100 + l2 * 100,
                         params={"regularizer.l1": l1, "regularizer.l2": l2})  # fmt: skip
                num += 1


def test_vs_plot_series_are_labelled_by_what_differs_only(tmp_path: Path, figures: dict) -> None:
    make_strength_grid(tmp_path)
    aggregate_sweep(tmp_path)
    figure = figures["vs_regularizer.l1.png"]
    assert legend_texts(figure) == ["regularizer.l2=0", "regularizer.l2=0.0001"]  # no shared override, no path
    assert_legend_inside_figure_and_beside_the_axes(figure)
    assert legend_texts(figures["learning_curves.png"])[2:] == [
        "regularizer.l1=0, regularizer.l2=0", "regularizer.l1=0, regularizer.l2=0.0001",
        "regularizer.l1=1e-05, regularizer.l2=0", "regularizer.l1=1e-05, regularizer.l2=0.0001"]  # fmt: skip
    for name in ("learning_curves.png", "weight_histograms.png"):
        assert_legend_inside_figure_and_beside_the_axes(figures[name])


def test_long_labels_are_wrapped_between_overrides_never_inside_one() -> None:
    label = "data.n_train=1000,regularizer.l2=0.0001,model.hidden_sizes=[64,64]"
    lines = plots.wrap(label, 20).splitlines()
    assert lines == ["data.n_train=1000,", "regularizer.l2=0.0001,", "model.hidden_sizes=[64,", "64]"]


def test_one_seed_points_have_no_error_bar_and_say_n_1(tmp_path: Path, figures: dict) -> None:
    make_strength_grid(tmp_path, seeds=1)
    aggregate_sweep(tmp_path)
    ax = figures["vs_regularizer.l1.png"].axes[0]
    assert "n = 1 seed: no error bars" in ax.get_title()
    for container in ax.containers:
        segments = [s for collection in container.lines[2] for s in collection.get_segments()]
        assert all(np.isnan(s).all() or not len(s) for s in segments)  # no bar that reads as SE = 0
    gap = figures["generalization_gap.png"].axes[0]
    assert "n = 1 seed: no error bars" in gap.get_title()
    assert all("(n = 1)" in tick.get_text() for tick in gap.get_xticklabels())
    assert "diamond: n = 1 seed: no error bars" in figures["test_metrics.png"].axes[0].get_title()
    assert "no SE band" in figures["learning_curves.png"].axes[0].get_title()


def test_mixed_seed_counts_say_which_points_have_no_bar() -> None:
    assert plots.single_seed_note([]) == "mean ± SE over seeds"
    from regsweep.aggregate.stats import describe

    assert plots.single_seed_note([describe([0.9]), describe([0.8, 0.9])]) == "mean ± SE; no bar: n = 1"
    means, errors = plots.means_and_errors([describe([0.9]), describe([0.8, 0.9])], 100.0)
    assert means[0] == pytest.approx(90.0) and math.isnan(errors[0]) and errors[1] == pytest.approx(5.0)


def test_regression_losses_spanning_decades_get_log_axes(tmp_path: Path, figures: dict) -> None:
    make_regression_sweep(tmp_path, epochs=30)  # test MSE ~ 6e-3 (n_train = 100) vs ~ 1e-5 (1000)
    aggregate_sweep(tmp_path)
    test_loss = figures["vs_data.n_train.png"].axes[0]
    assert test_loss.get_title().startswith("test/loss") and test_loss.get_yscale() == "log"
    assert "log scale" in test_loss.get_title() and test_loss.get_xscale() == "log"
    sparsity = next(ax for ax in figures["vs_data.n_train.png"].axes if "sparsity" in ax.get_title())
    assert sparsity.get_yscale() == "linear"  # percentages keep a linear axis
    loss = next(ax for ax in figures["learning_curves.png"].axes if ax.get_title().startswith("loss"))
    assert loss.get_yscale() == "log"  # train loss from 1 to 1/30


def test_classification_accuracy_axes_stay_linear_and_in_percent(tmp_path: Path, figures: dict) -> None:
    aggregate_sweep(make_regularizer_sweep(tmp_path))
    curves = figures["learning_curves.png"]
    accuracy = next(ax for ax in curves.axes if ax.get_title().startswith("accuracy"))
    assert accuracy.get_yscale() == "linear" and accuracy.get_ylabel() == "accuracy (%)"
    gap_acc = figures["generalization_gap.png"].axes[0]
    assert gap_acc.get_ylabel() == "gen_gap/acc (pp)"  # a difference of percentages
    assert gap_acc.get_title().startswith("gen_gap/acc (last epoch)")  # when: in the title, not the axis


def test_test_metrics_show_every_seed_and_the_mean_with_its_standard_error(tmp_path: Path, figures: dict) -> None:
    result = aggregate_sweep(make_regularizer_sweep(tmp_path))
    accuracy, loss = figures["test_metrics.png"].axes[:2]
    assert accuracy.get_title().startswith("test/acc") and accuracy.get_ylabel() == "test/acc (%)"
    assert loss.get_title().startswith("test/loss")
    dots = [collection.get_offsets() for collection in accuracy.collections if len(collection.get_offsets()) > 1]
    for place, (group, accuracies) in enumerate(TEST_ACC.items()):
        xs, ys = np.asarray(dots[place]).T
        assert sorted(ys) == pytest.approx(sorted(100 * np.array(accuracies)))  # one dot per seed, in percent
        assert np.all(np.abs(xs - place) < 0.5)  # at the group's place
        mean = next(line for line in accuracy.lines if line.get_marker() == "D" and abs(line.get_xdata()[0] - place) < 0.5)
        assert mean.get_ydata()[0] == pytest.approx(100 * np.mean(accuracies))
        assert result.descriptions[f"regularizer={group}"]["test/acc"].mean == pytest.approx(np.mean(accuracies))
    bars = [c for c in accuracy.containers]
    half_heights = [np.ptp(segment[:, 1]) / 2 for bar in bars for segment in bar.lines[2][0].get_segments()]
    expected = [100 * np.std(a, ddof=1) / np.sqrt(len(a)) for a in TEST_ACC.values()]
    assert half_heights == pytest.approx(expected)  # the bars are standard errors


def test_a_group_whose_every_job_failed_has_no_dots_and_the_others_are_drawn(tmp_path: Path, figures: dict) -> None:
    make_job(tmp_path, 0, ["optimizer.lr=1e6", "seed=0"], 0.9, status="failed", error="DivergenceError: diverged")
    for num, seed in enumerate((0, 1), start=1):
        make_job(tmp_path, num, ["optimizer.lr=1e-3", f"seed={seed}"], 0.9 + seed / 100)
    aggregate_sweep(tmp_path)
    accuracy = figures["test_metrics.png"].axes[0]
    from matplotlib.collections import PathCollection

    dots = [len(c.get_offsets()) for c in accuracy.collections if isinstance(c, PathCollection)]
    assert dots == [0, 2]  # the failed group's place stays, without a dot


def test_group_names_get_room_side_by_side_under_per_group_panels() -> None:
    short, long = plots.group_panel_size(["l1", "l2"]), plots.group_panel_size(["model.hidden_sizes=[128]"] * 4)
    assert short[0] == 4.0  # the smallest panel
    assert long[0] >= 4 * plots.TICK_CHAR_WIDTH * len("model.hidden_sizes=[128]")  # an unbreakable name fits


def test_many_groups_stack_their_panels_instead_of_a_figure_wider_than_a_screen(tmp_path: Path, figures: dict) -> None:
    for num in range(16):
        make_job(tmp_path, num, [f"optimizer.lr={num + 1}e-4", f"seed={num % 2}"], 0.9 + num / 1000)
    aggregate_sweep(tmp_path)
    for name in ("test_metrics.png", "generalization_gap.png"):
        figure = figures[name]
        assert figure.get_figwidth() <= 16.0
        top, bottom = (ax.get_position() for ax in figure.axes[:2])
        assert bottom.y1 < top.y0  # one above the other


def test_a_full_batch_is_drawn_at_the_batch_size_its_jobs_recorded(tmp_path: Path, figures: dict) -> None:
    """``data.batch_size=null`` is no number, but a batch-size study wants it on the axis: at n_train."""
    for num, (size, seed) in enumerate((size, seed) for size in ("16", "128", "null") for seed in (0, 1)):
        recorded = 1500 if size == "null" else int(size)
        make_job(tmp_path, num, [f"data.batch_size={size}", f"seed={seed}"], 0.9 + recorded / 1e5 + seed / 100,
                 data={"task": "classification", "n_train": 1500, "batch_size": recorded})
    aggregate_sweep(tmp_path)
    ax = figures["vs_data.batch_size.png"].axes[0]
    assert ax.get_xscale() == "log" and "null = 1500 (as recorded)" in ax.get_xlabel()
    assert list(ax.lines[0].get_xdata()) == [16.0, 128.0, 1500.0]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([100 * (0.905 + s / 1e5) for s in (16, 128, 1500)])


ARCHITECTURES = {"[128]": 101_770, "[512]": 407_050, "[512,256]": 535_818}  # hidden sizes -> recorded parameters


def make_architecture_grid(sweep_dir: Path) -> None:
    """hidden sizes x dropout 0 / 0.5, 2 seeds; test accuracy grows with the log of the size, dropout adds 1 pp."""
    num = 0
    for (sizes, parameters), dropout, seed in itertools.product(ARCHITECTURES.items(), (0, 0.5), (0, 1)):
        accuracy = 0.8 + math.log10(parameters) / 100 + dropout / 50 + seed / 1000
        make_job(sweep_dir, num, [f"model.hidden_sizes={sizes}", f"model.dropout={dropout}", f"seed={seed}"],
                 accuracy, model={"parameters": parameters, "penalized_weights": parameters - 10})
        num += 1


def test_an_architecture_grid_is_drawn_against_the_recorded_model_size(tmp_path: Path, figures: dict) -> None:
    make_architecture_grid(tmp_path)
    aggregate_sweep(tmp_path)
    ax = figures["vs_model.parameters.png"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "trainable parameters per model (as recorded)"
    assert legend_texts(figures["vs_model.parameters.png"]) == [  # the series, then each architecture's marker
        "model.dropout=0", "model.dropout=0.5",
        "hidden_sizes=[128]: 102k", "hidden_sizes=[512]: 407k", "hidden_sizes=[512, 256]: 536k"]
    means = [line for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) > 1]  # not caps
    for line, dropout in zip(means, (0, 0.5), strict=True):  # a line per dropout, a point per architecture
        assert list(line.get_xdata()) == sorted(ARCHITECTURES.values())
        expected = [100 * (0.8005 + math.log10(n) / 100 + dropout / 50) for n in sorted(ARCHITECTURES.values())]
        assert list(line.get_ydata()) == pytest.approx(expected)
    points = {(line.get_xdata()[0], line.get_marker()) for line in ax.lines if len(line.get_xdata()) == 1}
    assert points == set(zip(ARCHITECTURES.values(), plots.ARCHITECTURE_MARKERS))  # a marker per architecture
    assert_legend_inside_figure_and_beside_the_axes(figures["vs_model.parameters.png"])
    text = (tmp_path / "summary.md").read_text()
    assert "| model.dropout=0,model.hidden_sizes=[512,256] | 535,818 | 535,808 |" in text
    with open(tmp_path / "jobs.csv", newline="", encoding="utf-8") as handle:
        sizes = {(row["model.hidden_sizes"], row["model.parameters"]) for row in csv.DictReader(handle)}
    assert sizes == {(name, str(parameters)) for name, parameters in ARCHITECTURES.items()}


def test_a_numeric_architecture_key_is_its_own_axis_with_the_size_in_the_table(tmp_path: Path, figures: dict) -> None:
    for num, (kernel, seed) in enumerate(itertools.product((5, 10), (0, 1))):
        make_job(tmp_path, num, [f"model.kernel_size={kernel}", f"seed={seed}"], 0.98 + kernel / 1000,
                 model={"parameters": 1000 * kernel, "penalized_weights": 990 * kernel})
    aggregate_sweep(tmp_path)
    assert "vs_model.kernel_size.png" in figures and "vs_model.parameters.png" not in figures
    assert "| model.kernel_size=10 | 10,000 | 9,900 |" in (tmp_path / "summary.md").read_text()


def test_no_model_size_plot_or_table_when_the_architecture_is_the_same(tmp_path: Path, figures: dict) -> None:
    for num, (regularizer, seed) in enumerate(itertools.product(("none", "l2"), (0, 1))):
        make_job(tmp_path, num, [f"regularizer={regularizer}", f"seed={seed}"], 0.9 + seed / 100,
                 model={"parameters": 1000, "penalized_weights": 990})
    aggregate_sweep(tmp_path)
    assert "vs_model.parameters.png" not in figures
    assert "## Model size" not in (tmp_path / "summary.md").read_text()


def test_a_figure_this_aggregation_does_not_draw_is_removed_from_plots(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "vs_optimizer.lr.png").write_bytes(PNG_SIGNATURE)  # an earlier aggregation's
    (tmp_path / "plots" / "optimization_history.png").write_bytes(PNG_SIGNATURE)  # a search report's
    result = aggregate_sweep(tmp_path)
    drawn = {path.name for path in result.outputs if path.parent.name == "plots"}
    assert {path.name for path in (tmp_path / "plots").glob("*.png")} == drawn | {"optimization_history.png"}
    assert "test_metrics.png" in drawn and "vs_optimizer.lr.png" not in drawn


def test_weight_histograms_say_they_show_the_kept_epoch(tmp_path: Path, figures: dict) -> None:
    aggregate_sweep(make_regularizer_sweep(tmp_path))
    values_ax, log_ax = figures["weight_histograms.png"].axes[:2]
    assert values_ax.get_title().startswith("kept-epoch weights (weights.npz)")
    assert "final" not in values_ax.get_title()
    assert [t.get_text() for t in log_ax.get_legend().get_texts()] == ["|w| = 0.001", "|w| = 1e-05"]


def test_strength_axis_says_applied_is_nominal_over_n_train_when_scaled(tmp_path: Path, figures: dict) -> None:
    for num, l1 in enumerate([0.1, 1.0, 0.1, 1.0]):
        penalty = {"l1": l1, "l2": 0.0, "l1_applied": l1 / 1149, "l2_applied": 0.0, "scale_by_n_train": True}
        make_job(tmp_path, num, ["regularizer=l1", f"regularizer.l1={l1:g}", f"seed={num // 2}"], 0.9 + l1 / 10,
                 data={"task": "classification", "n_train": 1149}, penalty=penalty)  # fmt: skip
    aggregate_sweep(tmp_path)
    ax = figures["vs_regularizer.l1.png"].axes[0]
    assert ax.get_xlabel() == "regularizer.l1, nominal\napplied = nominal / n_train (n_train = 1149)"
    assert list(ax.get_lines()[0].get_xdata()) == [0.1, 1.0]  # the axis stays on the nominal value


def test_write_prediction_plot_draws_truth_prediction_and_error(tmp_path: Path, figures: dict) -> None:
    write_predictions(tmp_path, error_scale=0.01)
    path = plots.write_prediction_plot(tmp_path)
    assert path == tmp_path / "prediction.png" and path.read_bytes().startswith(PNG_SIGNATURE)
    figure = figures["prediction.png"]
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["truth f(x)", "prediction (kept epoch)", "error: prediction - truth"]
    assert "MSE" in figure.get_suptitle()


def test_write_prediction_plot_without_predictions_or_with_a_broken_file(tmp_path: Path) -> None:
    assert plots.write_prediction_plot(tmp_path) is None
    write_predictions(tmp_path, error_scale=0.01)
    data = (tmp_path / "predictions.npz").read_bytes()
    (tmp_path / "predictions.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFile):
        plots.write_prediction_plot(tmp_path)
    np.savez(tmp_path / "predictions.npz", x=np.zeros((4, 3)), y_true=np.zeros(4), y_pred=np.zeros(4))
    with pytest.raises(UnreadableFile, match="unexpected shapes"):
        plots.write_prediction_plot(tmp_path)


def test_aggregate_draws_every_ok_regression_job_and_one_panel_per_group(tmp_path: Path, figures: dict) -> None:
    make_regression_sweep(tmp_path)
    failed = make_job(tmp_path, 9, ["data.n_train=100", "regularizer.l2=0", "seed=9", "trainer.max_epochs=30"], 0.5,
                      status="failed", error="DivergenceError", data={"task": "regression"})  # fmt: skip
    write_predictions(failed, error_scale=1.0)
    result = aggregate_sweep(tmp_path)
    drawn = sorted(p.parent.name for p in result.outputs if p.name == "prediction.png")
    ok_jobs = sorted(job.name for job in result.sweep.jobs if job.ok)
    assert drawn == ok_jobs and len(drawn) == 6 and not (failed / "prediction.png").exists()
    panels = [ax for ax in figures["predictions.png"].axes if ax.get_title()]
    assert [ax.get_title().splitlines()[0] for ax in panels] == ["data.n_train=100", "data.n_train=1000"]
    assert all("n = 3 seeds" in ax.get_title() for ax in panels)
    text = (tmp_path / "summary.md").read_text()
    assert "![predictions](plots/predictions.png)" in text and "own prediction.png (6 jobs)" in text


def test_classification_sweeps_draw_no_prediction_plots(tmp_path: Path) -> None:
    result = aggregate_sweep(make_regularizer_sweep(tmp_path))
    assert not [p for p in result.outputs if p.name in ("prediction.png", "predictions.png")]


def test_vector_figures_are_the_shown_figures_as_pdf_and_svg_and_go_when_not_asked_for(tmp_path: Path) -> None:
    plots_dir = tmp_path / "plots"
    make_regularizer_sweep(tmp_path)
    aggregate_sweep(tmp_path)
    shown = {path.name: path.read_bytes() for path in plots_dir.glob("*.png")}
    result = aggregate_sweep(tmp_path, vector_formats=("pdf", "svg"))
    assert {path.name: path.read_bytes() for path in plots_dir.glob("*.png")} == shown  # the PNGs do not change
    vector = {path.name: path.read_bytes() for path in plots_dir.glob("*") if path.suffix != ".png"}
    names = {Path(name).stem for name in shown}
    assert set(vector) == {f"{name}.pdf" for name in names} | {f"{name}.svg" for name in names}
    for name, data in vector.items():
        assert data.startswith(b"%PDF" if name.endswith(".pdf") else b"<?xml")
        if name.endswith(".pdf"):
            assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType fonts embedded, as publishers ask
    assert {path for path in result.outputs if path.parent == plots_dir} == set(plots_dir.iterdir())
    aggregate_sweep(tmp_path, vector_formats=("pdf", "svg"))
    assert {name: (plots_dir / name).read_bytes() for name in vector} == vector  # no date, no random ids
    aggregate_sweep(tmp_path)
    assert {path.name for path in plots_dir.iterdir()} == set(shown)
