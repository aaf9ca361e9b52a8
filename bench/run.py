"""Speed benchmarks of the training path (`make bench`); results go to bench/results/bench.{json,md}.

Measures, on the default 784-512-256-10 MLP with batch 128:
1. the data path alone: one shuffled epoch of TensorBatches vs DataLoader(TensorDataset);
2. an epoch of the harness (Lightning module, metrics, TensorBoard, checkpoint) vs a bare PyTorch loop,
   with the default data.batches_per_step and with one minibatch per Lightning step;
3. small-learning-rate Adam epochs with and without torch.set_flush_denormal(True), each in a fresh
   process (torch's worker threads inherit the mode when they start), with the subnormal floats left
   in the weights and Adam state.

Uses the real Fashion-MNIST from ../shared/data when present, else random images of the same shape
(timings of 1 and 2 do not depend on pixel values; 3 does, so it is marked synthetic then).
Timings are paired: contenders run in alternating order within each round and ratios are taken
within a round, because this shared VM's speed drifts over minutes.
Targets: data path < 10% of a harness epoch; harness epoch <= 1.15 x the bare loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from regsweep.config import ImageDataConfig, MLPConfig, OptimizerConfig, RegularizerConfig
from regsweep.data.batches import TensorBatches
from regsweep.data.datamodule import TensorDataModule
from regsweep.data.sources import load_splits
from regsweep.data.splits import CLASSIFICATION, Splits
from regsweep.models import build_model
from regsweep.module import RegularizedModule, build_optimizer
from regsweep.records import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHARED_FASHION = ROOT.parent / "shared" / "data" / "fashion_mnist"
BATCH_SIZE = 128
SMALL_LR = 1e-5  # small-learning-rate Adam: where denormal slowdowns are reported
DEFAULT_BATCHES_PER_STEP: int = OmegaConf.load(ROOT / "conf" / "data" / "mnist.yaml").batches_per_step
MODEL = MLPConfig(name="mlp", hidden_sizes=[512, 256], activation="relu", dropout=0.0, norm="none")
NO_PENALTY = RegularizerConfig(name="none", l1=0.0, l2=0.0, scale_by_n_train=False, grad_noise_std=0.0)


def adam(lr: float) -> OptimizerConfig:
    return OptimizerConfig(name="adam", lr=lr, weight_decay=0.0, schedule="none", step_size=10, gamma=0.5,
                           clip_grad_norm=0.0)


def load_data() -> tuple[Splits, str]:
    if SHARED_FASHION.is_dir():
        cfg = ImageDataConfig(name="fashion_mnist", batch_size=BATCH_SIZE, normalize="minmax", split_seed=0,
                              batches_per_step=DEFAULT_BATCHES_PER_STEP, val_size=5000, data_dir=str(SHARED_FASHION))
        return load_splits(cfg), "fashion_mnist (real)"
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 1, 28, 28), generator=gen).float() / 255

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, 10, (n,), generator=gen)

    return Splits(images(55000), labels(55000), images(5000), labels(5000), images(10000), labels(10000),
                  CLASSIFICATION, 10), "synthetic 28x28 (shared data absent)"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def data_path_epoch(splits: Splits, repeats: int = 3) -> dict[str, float]:
    """Seconds for one shuffled pass over the training set, batches only (no model)."""
    x, y = splits.x_train, splits.y_train

    def tensor_batches() -> None:
        for xb, yb in TensorBatches(x, y, BATCH_SIZE, torch.Generator().manual_seed(0)):
            pass

    def data_loader() -> None:
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True):
            pass

    return {
        "tensor_batches_s": min(timed(tensor_batches) for _ in range(repeats)),
        "dataloader_tensordataset_s": min(timed(data_loader) for _ in range(repeats)),
    }


def subnormal_count(optimizer: torch.optim.Optimizer) -> int:
    """Nonzero floats below the smallest normal float32 in the parameters and optimizer state."""
    tiny = torch.finfo(torch.float32).tiny
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    tensors += [v for state in optimizer.state.values() for v in state.values() if v.is_floating_point()]
    return sum(int(((t.abs() < tiny) & (t != 0)).sum()) for t in tensors)


def bare_loop(splits: Splits, epochs: int, lr: float) -> tuple[list[float], torch.optim.Optimizer]:
    """A plain PyTorch loop doing the same work per epoch: shuffled batches, Adam steps, validation."""
    torch.manual_seed(0)
    net = build_model(MODEL, splits.input_shape, splits.output_size)
    optimizer = build_optimizer(adam(lr), net.parameters())
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for xb, yb in TensorBatches(splits.x_train, splits.y_train, BATCH_SIZE, generator):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for xb, yb in TensorBatches(splits.x_val, splits.y_val, 4096):
                F.cross_entropy(net(xb), yb)
        times.append(time.perf_counter() - start)
    return times, optimizer


def denormal_child(flush: bool, epochs: int) -> None:
    """Small-lr Adam epochs in a fresh process, printed as JSON with the final subnormal count.

    torch.set_flush_denormal acts on the calling thread; torch's intra-op threads inherit the mode
    when they start. So each setting needs its own process, with the mode set before any torch work.
    """
    torch.set_flush_denormal(flush)
    splits, _ = load_data()
    times, optimizer = bare_loop(splits, epochs, SMALL_LR)
    print(json.dumps({"epoch_s": times, "subnormals": subnormal_count(optimizer)}))


def denormal_epochs(flush: bool, epochs: int, subnormals: dict[str, int]) -> list[float]:
    mode = "on" if flush else "off"
    child = subprocess.run([sys.executable, __file__, "--denormal-child", mode, "--epochs", str(epochs)],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.splitlines()[-1])
    subnormals[f"flush_{mode}"] = result["subnormals"]
    return result["epoch_s"]


class EpochTimer(Callback):
    """Wall time from one training epoch start to the next (validation and logging included)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    @property
    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


def harness_epochs(splits: Splits, epochs: int, batches_per_step: int) -> list[float]:
    """Epochs of the real harness: module, on-device metrics, TensorBoard logs, best checkpoint."""
    L.seed_everything(0, verbose=False)
    net = build_model(MODEL, splits.input_shape, splits.output_size)
    module = RegularizedModule(net, splits.task, splits.num_classes, NO_PENALTY, adam(1e-3),
                               n_train=splits.n_train, max_epochs=epochs, seed=0)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        trainer = L.Trainer(
            max_epochs=epochs, accelerator="cpu", devices=1, deterministic=True, num_sanity_val_steps=0,
            enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
            logger=TensorBoardLogger(out, name="", version="", default_hp_metric=False),
            callbacks=[timer, ModelCheckpoint(dirpath=out, monitor="val/loss", save_weights_only=True)],
        )
        trainer.fit(module, datamodule=TensorDataModule(splits, BATCH_SIZE, seed=0, batches_per_step=batches_per_step))
    return timer.epochs


def cpu_model() -> str:
    """The CPU's model name (denormal arithmetic is slow on some CPUs and not on others)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def steady_epoch(times: list[float]) -> float:
    """Median of the epochs after the first (which pays one-off warm-up costs)."""
    return statistics.median(times[1:] or times)


def paired_rounds(contenders: dict[str, Callable[[], list[float]]], rounds: int) -> dict[str, list[float]]:
    """Steady epoch time of each contender per round, the order reversed every other round.

    This VM's speed drifts by tens of percent over minutes; comparing contenders within a round,
    in alternating order, keeps that drift out of their ratios.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(rounds):
        names = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
        for name in names:
            times[name].append(steady_epoch(contenders[name]()))
    return times


def ratio_summary(times: dict[str, list[float]], numerator: str, denominator: str) -> dict[str, object]:
    ratios = [a / b for a, b in zip(times[numerator], times[denominator])]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "per_round": [round(r, 3) for r in ratios]}


def run(rounds: int, epochs: int) -> dict:
    splits, source = load_data()
    data = data_path_epoch(splits)
    speed = paired_rounds({
        "bare": lambda: bare_loop(splits, epochs, lr=1e-3)[0],
        "harness": lambda: harness_epochs(splits, epochs, DEFAULT_BATCHES_PER_STEP),
        "harness_1_batch_per_step": lambda: harness_epochs(splits, epochs, batches_per_step=1),
    }, rounds)
    subnormals: dict[str, int] = {}
    denormal = paired_rounds({
        "flush_off": lambda: denormal_epochs(False, epochs, subnormals),
        "flush_on": lambda: denormal_epochs(True, epochs, subnormals),
    }, rounds)
    harness_s = statistics.median(speed["harness"])
    return {
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "data": source,
        "model": "784-512-256-10 MLP, Adam, batch 128",
        "epochs": epochs,
        "method": f"{rounds} rounds, contenders in alternating order; per contender and round the median of "
                  f"epochs 2..{epochs}; ratios are taken within a round",
        "data_path": {**data, "fraction_of_harness_epoch": data["tensor_batches_s"] / harness_s,
                      "target_fraction": 0.10},
        "epoch_s": {name: statistics.median(t) for name, t in speed.items()},
        "epoch_s_per_round": {name: [round(x, 3) for x in t] for name, t in speed.items()},
        "harness_over_bare": ratio_summary(speed, "harness", "bare"),
        "harness_1_batch_per_step_over_bare": ratio_summary(speed, "harness_1_batch_per_step", "bare"),
        "target_harness_over_bare": 1.15,
        "flush_denormal": {"lr": SMALL_LR, "epoch_s": {name: statistics.median(t) for name, t in denormal.items()},
                           "speedup": ratio_summary(denormal, "flush_off", "flush_on"),
                           "subnormals_after_run": subnormals},
    }


def markdown(results: dict) -> str:
    d, f, e = results["data_path"], results["flush_denormal"], results["epoch_s"]

    def ratio(r: dict) -> str:
        return f"{r['median']:.3f} (rounds: {r['min']:.2f}-{r['max']:.2f})"

    return "\n".join([
        f"# Benchmarks ({results['data']}, {results['model']}, {results['machine']['threads']} threads)",
        "",
        f"Method: {results['method']}.",
        "",
        "| measurement | value | target |",
        "|---|---|---|",
        f"| data path epoch (TensorBatches) | {d['tensor_batches_s']:.3f} s | |",
        f"| data path epoch (DataLoader(TensorDataset)) | {d['dataloader_tensordataset_s']:.3f} s | |",
        f"| data path / harness epoch | {d['fraction_of_harness_epoch']:.1%} | < 10% |",
        f"| bare PyTorch epoch | {e['bare']:.2f} s | |",
        f"| harness epoch (data.batches_per_step={DEFAULT_BATCHES_PER_STEP}, the default) | {e['harness']:.2f} s | |",
        f"| harness epoch (data.batches_per_step=1) | {e['harness_1_batch_per_step']:.2f} s | |",
        f"| harness / bare | {ratio(results['harness_over_bare'])} | <= 1.15 |",
        f"| harness with 1 batch per step / bare | {ratio(results['harness_1_batch_per_step_over_bare'])} | |",
        f"| Adam lr={f['lr']:g} epoch, flush_denormal off | {f['epoch_s']['flush_off']:.2f} s | |",
        f"| same, flush_denormal on | {f['epoch_s']['flush_on']:.2f} s | |",
        f"| speed-up from flushing denormals | {ratio(f['speedup'])} | |",
        f"| subnormal floats in weights + Adam state after {results['epochs']} epochs, flush off / on "
        f"| {f['subnormals_after_run']['flush_off']} / {f['subnormals_after_run']['flush_on']} | |",
        f"| CPU | {results['machine']['cpu']} | |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--denormal-child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.denormal_child:
        denormal_child(args.denormal_child == "on", args.epochs)
        return
    torch.set_flush_denormal(True)  # as the harness does (flush_denormal: true), before any torch work
    results = run(args.rounds, args.epochs)
    atomic_write_text(args.out / "bench.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(args.out / "bench.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
