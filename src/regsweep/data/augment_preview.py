"""See what augmentation does before training with it: writes a PNG grid, one row per transform.

    python -m regsweep.data.augment_preview --out grid.png [--dataset digits|mnist|fashion_mnist]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from regsweep.console import cli_description
from regsweep.data.augment import AugmentSettings, augment_batch
from regsweep.errors import RegsweepError

DATASETS = ("digits", "mnist", "fashion_mnist")


def load_samples(dataset: str, data_dir: Path | None, n: int) -> torch.Tensor:
    """The first ``n`` test images as floats in [0, 1], shape [n, 1, H, W]."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        images = load_digits().images[:n] / 16.0
    else:
        from regsweep.data.images import load_image_dataset

        images = load_image_dataset(dataset, data_dir or Path("data") / dataset).x_test[:n] / 255.0
    return torch.as_tensor(np.asarray(images), dtype=torch.float32)[:, None]


def demo_rows(side: int) -> list[tuple[str, AugmentSettings]]:
    """One clearly visible setting per transform, scaled from 28 px MNIST to ``side`` px images."""
    scale = side / 28
    rows = [
        ("noise", AugmentSettings(noise_std=0.2, noise_p=1)),
        ("shift", AugmentSettings(shift_max_px=max(1, round(3 * scale)), shift_p=1)),
        ("rotation", AugmentSettings(rotate_max_deg=20, rotate_p=1)),
        # Simard et al.'s MNIST values (alpha 34, sigma 4); the displacement grows as alpha / sigma.
        ("elastic", AugmentSettings(elastic_alpha=34 * scale**2, elastic_sigma=4 * scale, elastic_p=1)),
    ]
    combined = {k: v for _, settings in rows for k, v in _changed(settings).items()}
    return [("original", AugmentSettings()), *rows, ("all combined", replace(AugmentSettings(), **combined))]


def _changed(settings: AugmentSettings) -> dict[str, float]:
    values, defaults = vars(settings), vars(AugmentSettings())
    return {key: value for key, value in values.items() if value != defaults[key]}


def _title(label: str, settings: AugmentSettings, width: int) -> str:
    """The label and every setting of the transforms in use (elastic_sigma too when it is the default)."""
    groups = {name.split("_")[0] for name in _changed(settings)}
    values = ", ".join(
        f"{f.name}={getattr(settings, f.name):.3g}" for f in fields(settings) if f.name.split("_")[0] in groups
    )
    return textwrap.fill(f"{label}: {values}" if values else label, width)


def render(samples: torch.Tensor, rows: list[tuple[str, AugmentSettings]], seed: int) -> Figure:
    """Each row augments the same samples with its own generator seeded by ``seed``."""
    n = len(samples)
    figure = Figure(figsize=(1.2 * n + 0.4, 1.7 * len(rows)), layout="constrained")
    for subfigure, (label, settings) in zip(figure.subfigures(len(rows), 1), rows):
        subfigure.suptitle(_title(label, settings, width=int(14 * figure.get_figwidth())), fontsize=9)
        augmented = augment_batch(samples, settings, torch.Generator().manual_seed(seed))
        for axis, image in zip(np.atleast_1d(subfigure.subplots(1, n)), augmented[:, 0]):
            axis.imshow(image.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axis.set_axis_off()
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--dataset", choices=DATASETS, default="digits", help="digits works offline (default)")
    parser.add_argument("--data-dir", type=Path, help="dir of the dataset's files (default: data/<dataset>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=8, help="samples per row (columns)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    try:
        samples = load_samples(args.dataset, args.data_dir, args.n)
    except RegsweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    render(samples, demo_rows(samples.shape[-1]), args.seed).savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
