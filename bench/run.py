"""Speed of the training path (``make bench``): results in bench/results/bench.{json,md}.

On the default 784-512-256-10 MLP with batch 128 (Fashion-MNIST from ../shared/data when present,
else random images of its shape; timings do not depend on pixel values except the denormal count):
1. the data path alone: one shuffled epoch of the harness's batches vs DataLoader(TensorDataset);
2. an epoch of the harness (train.py, one job: module, metrics, TensorBoard, checkpoints) vs a bare
   PyTorch loop doing the same training and validation;
3. small-learning-rate Adam epochs with and without torch.set_flush_denormal(True), each in a fresh
   process (torch's worker threads inherit the mode when they start), with the subnormal floats left.
Targets: data path < 10% of a harness epoch; harness epoch <= 1.15 x the bare loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (RESULTS, SHARED_FASHION, TRAIN, machine, paired_rounds, ratio_summary, ratio_text, run_script,
                    steady_epoch, timed)
from torch.utils.data import DataLoader, TensorDataset

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.data.batches import MemberBatches, SharedBatches
from regsweep.data.sources import ImageDataConfig, load_splits
from regsweep.data.splits import Splits
from regsweep.metrics import CLASSIFICATION
from regsweep.records import read_result

BATCH_SIZE = 128
SMALL_LR = 1e-5  # small-learning-rate Adam: where denormal slowdowns are reported


def load_data() -> tuple[Splits, str]:
    if SHARED_FASHION.is_dir():
        cfg = ImageDataConfig(name="fashion_mnist", batch_size=BATCH_SIZE, normalize="minmax", split_seed=0,
                              val_size=5000, data_dir=str(SHARED_FASHION), mirrors=[], timeout_s=30, retries=1)
        return load_splits(cfg), "fashion_mnist (real)"
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 1, 28, 28), generator=gen).float() / 255

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, 10, (n,), generator=gen)

    return Splits(images(55000), labels(55000), images(5000), labels(5000), images(10000), labels(10000),
                  CLASSIFICATION, 10), "synthetic 28x28 (shared data absent)"


def data_path_epoch(splits: Splits, repeats: int = 3) -> dict[str, float]:
    """Seconds for one shuffled pass over the training set, batches only (no model)."""
    x, y = splits.x_train, splits.y_train

    def member_batches() -> None:
        for _ in MemberBatches(x, y, BATCH_SIZE, [torch.Generator().manual_seed(0)], members=1):
            pass

    def data_loader() -> None:
        for _ in DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True):
            pass

    return {"member_batches_s": min(timed(member_batches) for _ in range(repeats)),
            "dataloader_tensordataset_s": min(timed(data_loader) for _ in range(repeats))}


def subnormal_count(optimizer: torch.optim.Optimizer) -> int:
    """Nonzero floats below the smallest normal float32 in the parameters and optimizer state."""
    tiny = torch.finfo(torch.float32).tiny
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    tensors += [v for state in optimizer.state.values() for v in state.values() if v.is_floating_point()]
    return sum(int(((t.abs() < tiny) & (t != 0)).sum()) for t in tensors)


def bare_loop(splits: Splits, epochs: int, lr: float) -> tuple[list[float], torch.optim.Optimizer]:
    """A plain PyTorch loop doing the same work per epoch: shuffled batches, Adam steps, validation."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for xb, yb in MemberBatches(splits.x_train, splits.y_train, BATCH_SIZE, [generator], members=1):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb[0]), yb[0]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for xb, yb in SharedBatches(splits.x_val, splits.y_val, 4096):
                F.cross_entropy(net(xb), yb)
        times.append(time.perf_counter() - start)
    return times, optimizer


def harness_epoch(epochs: int, per_step: int, work: Path, counter: list[int]) -> float:
    """The steady epoch of one real job (train.py), as its record measures it."""
    counter[0] += 1
    out = work / f"run{counter[0]}"
    data = ["data=fashion_mnist", f"data.data_dir={SHARED_FASHION}"] if SHARED_FASHION.is_dir() else ["data=mnist"]
    run_script(TRAIN, *data, f"trainer.max_epochs={epochs}", "callbacks=no_stop", f"minibatches_per_step={per_step}",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    return read_result(out).timings["epoch_s"]


def denormal_child(flush: bool, epochs: int) -> None:
    """Small-lr Adam epochs in a fresh process, printed as JSON with the final subnormal count."""
    torch.set_flush_denormal(flush)
    splits, _ = load_data()
    times, optimizer = bare_loop(splits, epochs, SMALL_LR)
    print(json.dumps({"epoch_s": times, "subnormals": subnormal_count(optimizer)}))


def denormal_epoch(flush: bool, epochs: int, subnormals: dict[str, int]) -> float:
    mode = "on" if flush else "off"
    child = subprocess.run([sys.executable, __file__, "--denormal-child", mode, "--epochs", str(epochs)],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.splitlines()[-1])
    subnormals[f"flush_{mode}"] = result["subnormals"]
    return steady_epoch(result["epoch_s"])


def run(rounds: int, epochs: int) -> dict:
    splits, source = load_data()
    data = data_path_epoch(splits)
    counter = [0]
    with tempfile.TemporaryDirectory() as tmp:
        speed = paired_rounds({
            "bare": lambda: steady_epoch(bare_loop(splits, epochs, lr=1e-3)[0]),
            "harness": lambda: harness_epoch(epochs, 16, Path(tmp), counter),
            "harness_1_minibatch_per_step": lambda: harness_epoch(epochs, 1, Path(tmp), counter),
        }, rounds)
    subnormals: dict[str, int] = {}
    denormal = paired_rounds({
        "flush_off": lambda: denormal_epoch(False, epochs, subnormals),
        "flush_on": lambda: denormal_epoch(True, epochs, subnormals),
    }, rounds)
    harness_s = statistics.median(speed["harness"])
    return {
        "machine": machine(), "data": source, "model": "784-512-256-10 MLP, Adam, batch 128", "epochs": epochs,
        "method": f"{rounds} rounds, contenders in alternating order; per contender and round the median of "
                  f"epochs 2..{epochs}; ratios are taken within a round",
        "data_path": {**data, "fraction_of_harness_epoch": data["member_batches_s"] / harness_s,
                      "target_fraction": 0.10},
        "epoch_s": {name: statistics.median(t) for name, t in speed.items()},
        "epoch_s_per_round": {name: [round(x, 3) for x in t] for name, t in speed.items()},
        "harness_over_bare": ratio_summary(speed, "harness", "bare"),
        "harness_1_minibatch_per_step_over_bare": ratio_summary(speed, "harness_1_minibatch_per_step", "bare"),
        "target_harness_over_bare": 1.15,
        "flush_denormal": {"lr": SMALL_LR, "epoch_s": {name: statistics.median(t) for name, t in denormal.items()},
                           "speedup": ratio_summary(denormal, "flush_off", "flush_on"),
                           "subnormals_after_run": subnormals},
    }


def markdown(results: dict) -> str:
    d, f, e = results["data_path"], results["flush_denormal"], results["epoch_s"]
    return "\n".join([
        f"# Benchmarks ({results['data']}, {results['model']}, {results['machine']['threads']} threads)", "",
        f"Method: {results['method']}.", "",
        "| measurement | value | target |", "|---|---|---|",
        f"| data path epoch (the harness's MemberBatches) | {d['member_batches_s']:.3f} s | |",
        f"| data path epoch (DataLoader(TensorDataset)) | {d['dataloader_tensordataset_s']:.3f} s | |",
        f"| data path / harness epoch | {d['fraction_of_harness_epoch']:.1%} | < 10% |",
        f"| bare PyTorch epoch | {e['bare']:.2f} s | |",
        f"| harness epoch (minibatches_per_step=16, the default) | {e['harness']:.2f} s | |",
        f"| harness epoch (minibatches_per_step=1) | {e['harness_1_minibatch_per_step']:.2f} s | |",
        f"| harness / bare | {ratio_text(results['harness_over_bare'])} | <= 1.15 |",
        f"| harness with 1 minibatch per step / bare | {ratio_text(results['harness_1_minibatch_per_step_over_bare'])} | |",
        f"| Adam lr={f['lr']:g} epoch, flush_denormal off | {f['epoch_s']['flush_off']:.2f} s | |",
        f"| same, flush_denormal on | {f['epoch_s']['flush_on']:.2f} s | |",
        f"| speed-up from flushing denormals | {ratio_text(f['speedup'])} | |",
        f"| subnormal floats in weights + Adam state after {results['epochs']} epochs, flush off / on "
        f"| {f['subnormals_after_run']['flush_off']} / {f['subnormals_after_run']['flush_on']} | |",
        f"| CPU | {results['machine']['cpu']} | |", "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
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
