"""``regsweep-aggregate <sweep_dir>``: aggregate a sweep after the fact (or again, with other options)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regsweep.aggregate.api import aggregate_sweep
from regsweep.aggregate.compare import Detect
from regsweep.aggregate.load import AggregateError
from regsweep.aggregate.output import OutputError
from regsweep.aggregate.plots import VECTOR_FORMATS
from regsweep.aggregate.tables import HTML_FILE, SUMMARY_FILE

USAGE_ERROR = 2
OUTPUT_ERROR = 1  # a full disk, a read-only dir: nothing wrong with the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="regsweep-aggregate",
        description="Summarize a sweep dir over seeds: summary.md/.csv/.tex, report.html, comparisons, plots, "
        "TensorBoard runs.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun dir, or a dir above several: every job under it")
    parser.add_argument(
        "--baseline",
        help="group label to compare every group with (default: the group with every swept regularization "
        "strength at 0, else the first group)",
    )
    pairs = parser.add_mutually_exclusive_group()
    pairs.add_argument("--all-pairs", dest="all_pairs", action="store_const", const=True,
                       help="compare every pair of groups (default for 2-6 groups)")
    pairs.add_argument("--against-baseline", dest="all_pairs", action="store_const", const=False,
                       help="compare each group with the baseline only (default for more than 6 groups)")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots (faster)")
    parser.add_argument("--vector-figures", nargs="+", choices=VECTOR_FORMATS, default=[], metavar="FORMAT",
                        help=f"also write every figure in these formats ({', '.join(VECTOR_FORMATS)}) beside its "
                        "PNG: vector figures for a paper")
    parser.add_argument("--detect", type=detect_difference, metavar="DIFFERENCE",
                        help="a difference of the headline metric (test accuracy; test loss for regression) the power "
                        "lines give the seeds per group for, at 80%% power: 0.2pp (percentage points of accuracy) or "
                        "a plain number in the metric's units (0.01 of test loss)")
    args = parser.parse_args(argv)
    if args.vector_figures and not args.plots:
        parser.error("--vector-figures draws the plots: leave out --no-plots")
    return args


def detect_difference(text: str) -> Detect:
    try:
        return Detect.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = aggregate_sweep(args.sweep_dir, baseline=args.baseline, all_pairs=args.all_pairs, plots=args.plots,
                                 vector_formats=args.vector_figures, detect=args.detect)
    except AggregateError as exc:
        print(f"regsweep-aggregate: error: {exc}", file=sys.stderr)
        return OUTPUT_ERROR if isinstance(exc, OutputError) else USAGE_ERROR
    print(result.console_summary())
    print(f"Wrote {len(result.outputs)} files; see {args.sweep_dir / SUMMARY_FILE} and {args.sweep_dir / HTML_FILE}")
    return 0
