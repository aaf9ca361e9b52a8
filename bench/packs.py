"""Packs: what training a sweep's jobs as one batched model buys, measured end to end (``make bench-packs``).

1. The default 10-seed sweep (``python train.py regularizer=l1l2 -m seed=0-9 callbacks=no_stop``,
   digits, 30 epochs), command to shell prompt, packed vs ``pack.size=off`` vs the bare
   sequential script bench/bare_sweep.py; with a breakdown of the packed sweep's time.
2. Fashion-MNIST, the default 784-512-256-10 MLP, 10 seeds: epoch throughput (member-epochs per
   second) of one pack of 10 vs the 10 jobs one after another, and vs a bare loop of the pack's
   arithmetic in this process (what the harness adds to it); that bare loop's training step per
   member, alone and packed, by phase (what batching buys the arithmetic itself).
3. Chunk size on a CPU: that bare loop's member-epoch in chunks of 10, of packing.CPU_MAX_MEMBERS
   (what ``pack.size=auto`` trains at once on a CPU) and of twice that: why larger packs are split.
4. Threads: 4 jobs side by side on joblib's 2 workers, torch threads divided (``threads=auto``,
   one each on this 2-core machine) vs not (``threads=2`` each: 4 threads on 2 cores).

Every harness timing is a real run of train.py in a fresh process; contenders alternate within rounds.
Results: bench/results/packs.{json,md}.
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
from common import (PHASES, RESULTS, ROOT, SHARED_FASHION, TRAIN, machine, pack_seconds, paired_rounds, ratio_summary,
                    ratio_text, run_script, sweep_records, timed)

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.data.datamodule import EVAL_MEMBER_ROWS
from regsweep.packing import CPU_MAX_MEMBERS

DEFAULT_SWEEP = ["regularizer=l1l2", "-m", "seed=0-9", "callbacks=no_stop", "trainer.enable_progress_bar=false"]
# A Fashion-MNIST member-epoch as the harness runs it (conf/model/mlp.yaml, conf/data/mnist.yaml): the layer
# widths, 60,000 training images less the 5,000 validation ones, the evaluation passes (validation and the
# eval-mode training subset of its size), the batch size
WIDTHS, N_TRAIN, N_EVAL, BATCH = (784, 512, 256, 10), 55_000, 10_000, 128


def in_process_seconds(code: str) -> float:
    """Seconds a snippet takes inside a fresh interpreter (its last printed line)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def breakdown(sweep_dir: Path, total: float) -> dict[str, float]:
    """Where the packed sweep's wall time goes: imports, the pack's phases, the summary, the rest."""
    record = sweep_records(sweep_dir)[0]  # one pack: every member carries the pack's timings
    # the imports as train.py makes them (collector paused, see regsweep.startup); the summary in a process
    # that holds what train.py's does when its sweep ends (Lightning pulls in part of scipy and matplotlib)
    imports = in_process_seconds("import time; from regsweep import startup; startup.pause_collection(); "
                                 "t = time.perf_counter(); import regsweep.config, regsweep.job, "
                                 "hydra_plugins.regsweep_sweeper._impl; print(time.perf_counter() - t)")
    summary = in_process_seconds("import time, regsweep.job; t = time.perf_counter(); "
                                 "from regsweep.aggregate import aggregate_sweep; "
                                 f"aggregate_sweep({str(sweep_dir)!r}); print(time.perf_counter() - t)")
    phases = {name: record.timings.get(name, 0.0) for name in PHASES}
    pack = pack_seconds(phases)
    return {"total_s": total, "imports_s": imports, **phases,
            "training_s": phases["fit_s"] - phases["log_s"] - phases["histograms_s"] - phases["checkpoints_s"],
            "epoch_s": record.timings.get("epoch_s", 0.0), "summary_s": summary,
            "startup_compose_plan_exit_s": total - imports - pack - summary}


def default_sweep(rounds: int, work: Path) -> dict[str, object]:
    counter = iter(range(10**6))
    last: dict[str, Path] = {}

    def sweep(size: str) -> float:
        last[size] = work / f"sweep_{size}_{next(counter)}"
        return run_script(TRAIN, *DEFAULT_SWEEP, f"pack.size={size}", f"hydra.sweep.dir={last[size]}")

    times = paired_rounds({
        "packed": lambda: sweep("auto"),
        "off": lambda: sweep("off"),
        "bare": lambda: run_script(ROOT / "bench" / "bare_sweep.py"),
    }, rounds)
    packed_acc = statistics.mean(r.metrics["test"]["test/acc"] for r in sweep_records(last["auto"]))
    off_acc = statistics.mean(r.metrics["test"]["test/acc"] for r in sweep_records(last["off"]))
    return {"command": "python train.py " + " ".join(DEFAULT_SWEEP), "wall_s": times,
            "off_over_packed": ratio_summary(times, "off", "packed"),
            "packed_over_bare": ratio_summary(times, "packed", "bare"),
            "mean_test_acc": {"packed": packed_acc, "off": off_acc},
            "breakdown_last_packed_round": breakdown(last["auto"], times["packed"][-1])}


def fashion_throughput(rounds: int, epochs: int, work: Path) -> dict[str, object]:
    data = ["data=fashion_mnist", f"data.data_dir={SHARED_FASHION}"] if SHARED_FASHION.is_dir() else None
    if data is None:
        return {"skipped": f"Fashion-MNIST not found in {SHARED_FASHION}"}
    counter = iter(range(10**6))

    def sweep(size: str) -> float:
        sweep_dir = work / f"fashion_{size}_{next(counter)}"
        run_script(TRAIN, *data, "-m", "seed=0-9", "callbacks=no_stop", f"trainer.max_epochs={epochs}",
                   "trainer.enable_progress_bar=false", "hydra.callbacks.sweep_summary.aggregate=false",
                   f"pack.size={size}", f"hydra.sweep.dir={sweep_dir}")
        records = sweep_records(sweep_dir)
        # member-epoch seconds: a pack's steady epoch trains all 10; a job alone trains one
        return records[0].timings["epoch_s"] / 10 if size == "auto" else statistics.mean(
            r.timings["epoch_s"] for r in records)

    times = paired_rounds({"packed": lambda: sweep("auto"), "off": lambda: sweep("off"),
                           "bare_loop": lambda: BarePack(members=10).member_epoch_s()}, rounds)
    flops = member_epoch_flops()
    products_only = member_epoch_products_s(members=10)
    return {"model": f"{'-'.join(map(str, WIDTHS))} MLP, Adam, batch {BATCH}, 10 seeds", "epochs": epochs,
            "member_epoch_s": times, "speedup": ratio_summary(times, "off", "packed"),
            "member_epoch_gflop": flops / 1e9, "matmul_gflops": matmul_gflops(),
            "gflops": {name: flops / 1e9 / statistics.median(t) for name, t in times.items()},
            "products_only_member_epoch_s": products_only,
            "ceiling_speedup": statistics.median(times["off"]) / products_only,
            "packed_over_bare_loop": ratio_summary(times, "packed", "bare_loop"),
            "step_phases": step_phases(rounds)}


def member_epoch_flops() -> float:
    """Multiply-adds x 2 of one member-epoch: forward, weight and input gradients (none for the input
    layer) over the training set, forward passes over validation and the eval-mode training subset."""
    products = [a * b for a, b in zip(WIDTHS, WIDTHS[1:])]
    per_sample_train = 2 * (sum(products) * 2 + sum(products[1:]))
    return float(per_sample_train * (N_TRAIN // BATCH) * BATCH + 2 * sum(products) * N_EVAL)


def member_epoch_products_s(members: int) -> float:
    """Seconds a member-epoch of a pack of ``members`` would take if only its matrix products took time.

    Each product timed as the pack runs it (torch.bmm over the members at the training batch size):
    forward, weight gradient and input gradient (none for the input layer) per training step, the
    forward per evaluation batch. Sequential training is bounded by nothing but these products
    either, so the sequential member-epoch over this is the most any packing could give here.
    """
    total = 0.0
    for layer, (inputs, outputs) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        x, w = torch.randn(members, BATCH, inputs), torch.randn(members, inputs, outputs)
        g = torch.randn(members, BATCH, outputs)
        forward = lambda: torch.bmm(x, w)  # noqa: E731
        backward = [lambda: torch.bmm(x.transpose(1, 2), g)] + ([lambda: torch.bmm(g, w.transpose(1, 2))] if layer else [])
        best = lambda product: min(timed(product) for _ in range(7))  # noqa: E731
        total += (N_TRAIN // BATCH) * (best(forward) + sum(best(p) for p in backward)) + N_EVAL / BATCH * best(forward)
    return total / members


class BarePack:
    """The pack's arithmetic with nothing around it, what the harness's pack is measured against.

    Per step: each member's own minibatch gathered from the training tensor, ``baddbmm`` layers with
    ReLU, cross-entropy, backward, one fused Adam step over the stacked weights; evaluation: the
    forwards over validation and the eval-mode training subset in batches of the harness's size.
    A pack of one is the same arithmetic for a job alone.
    """

    PHASES = ("gather", "forward", "backward", "optimizer")

    def __init__(self, members: int) -> None:
        self.members = members
        self.x, self.y = torch.randn(N_TRAIN, WIDTHS[0]), torch.randint(0, WIDTHS[-1], (N_TRAIN,))
        self.weights = [torch.randn(members, a, b).mul_(a**-0.5).requires_grad_() for a, b in zip(WIDTHS, WIDTHS[1:])]
        self.biases = [torch.zeros(members, 1, b, requires_grad=True) for b in WIDTHS[1:]]
        self.optimizer = torch.optim.Adam(self.weights + self.biases, fused=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            x = torch.relu(x) if layer < len(self.weights) - 1 else x
        return x

    def step(self) -> list[float]:
        """One training step; the seconds of each of PHASES (on a CPU every op has finished when it returns)."""
        marks = [time.perf_counter()]
        index = torch.randint(0, N_TRAIN, (self.members, BATCH))
        x, y = self.x[index], self.y[index].flatten()
        marks.append(time.perf_counter())
        loss = F.cross_entropy(self.forward(x).flatten(0, 1), y)
        marks.append(time.perf_counter())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        self.optimizer.step()
        marks.append(time.perf_counter())
        return [end - start for start, end in zip(marks, marks[1:])]

    def evaluate(self) -> None:
        with torch.no_grad():  # in the harness's evaluation batches
            for start in range(0, N_EVAL, EVAL_MEMBER_ROWS):
                self.forward(self.x[start : start + EVAL_MEMBER_ROWS].expand(self.members, -1, -1))

    def member_epoch_s(self, steps: int = 40) -> float:
        """Seconds of one member's epoch: the training steps and the evaluation forwards, over the members."""
        self.step()
        step_s = timed(lambda: [self.step() for _ in range(steps)]) / steps
        return ((N_TRAIN // BATCH) * step_s + min(timed(self.evaluate) for _ in range(3))) / self.members

    def member_step_ms(self, steps: int = 60) -> dict[str, float]:
        """Milliseconds per member of a training step, each of PHASES as its median over ``steps`` steps."""
        for _ in range(3):
            self.step()
        phases = list(zip(*(self.step() for _ in range(steps))))
        return {name: statistics.median(seconds) * 1e3 / self.members for name, seconds in zip(self.PHASES, phases)}


def step_phases(rounds: int, members: int = 10) -> dict[str, object]:
    """A bare training step per member, alone and in a pack of ``members``, by phase (medians over rounds).

    What batching buys the arithmetic itself, with no harness around it. On a CPU the products gain
    some; the optimizer step streams every member's weights and Adam state through memory either way.
    """
    alone, packed = BarePack(1), BarePack(members)
    per_round = paired_rounds({"alone": alone.member_step_ms, "packed": packed.member_step_ms}, rounds)
    phases = {name: {phase: statistics.median(r[phase] for r in rows) for phase in BarePack.PHASES}
              for name, rows in per_round.items()}
    totals = {name: sum(p.values()) for name, p in phases.items()}
    return {"members": members, "member_step_ms": phases, "total_ms": totals,
            "alone_over_packed": totals["alone"] / totals["packed"]}


def chunk_sizes(rounds: int) -> dict[str, object]:
    """The bare loop's member-epoch (Fashion-MNIST MLP) per chunk size: past CPU_MAX_MEMBERS, a chunk is slower."""
    sizes = (10, CPU_MAX_MEMBERS, 2 * CPU_MAX_MEMBERS)
    packs = {size: BarePack(size) for size in sizes}
    times = paired_rounds({str(size): lambda size=size: packs[size].member_epoch_s(steps=20) for size in sizes}, rounds)
    return {"cap": CPU_MAX_MEMBERS, "member_epoch_s": times,
            "median_member_epoch_s": {size: statistics.median(t) for size, t in times.items()}}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """What this machine's torch does at best: fp32 GEMM throughput, on the threads the jobs use."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def thread_division(rounds: int, work: Path) -> dict[str, object]:
    counter = iter(range(10**6))

    def sweep(threads: str) -> float:
        return run_script(TRAIN, "-m", "seed=0-3", "pack.size=off", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                          f"threads={threads}", "callbacks=no_stop", "trainer.max_epochs=15",
                          "trainer.enable_progress_bar=false", "hydra.callbacks.sweep_summary.aggregate=false",
                          f"hydra.sweep.dir={work / f'threads_{threads}_{next(counter)}'}")

    times = paired_rounds({"divided": lambda: sweep("auto"), "oversubscribed": lambda: sweep("2")}, rounds)
    return {"setup": "4 digits jobs, 15 epochs, hydra/launcher=joblib n_jobs=2 on 2 cores", "wall_s": times,
            "oversubscribed_over_divided": ratio_summary(times, "oversubscribed", "divided")}


def markdown(results: dict) -> str:
    sweep, fashion, threads = results["default_sweep"], results["fashion_mnist"], results["threads"]
    b = sweep["breakdown_last_packed_round"]
    median = {name: statistics.median(t) for name, t in sweep["wall_s"].items()}
    lines = [
        f"# Packs ({results['machine']['cpu']}, {results['machine']['threads']} threads, torch {results['machine']['torch']})",
        "", f"Method: {results['method']}.", "",
        "| measurement | result | target |", "|---|---|---|",
        f"| default 10-seed sweep, command to prompt: packed / `pack.size=off` / bare script | "
        f"{median['packed']:.1f} s / {median['off']:.1f} s / {median['bare']:.1f} s | |",
        f"| `pack.size=off` / packed | {ratio_text(sweep['off_over_packed'])} | >= 4 |",
        f"| packed / bare sequential script | {ratio_text(sweep['packed_over_bare'])} | <= 1 |",
        f"| mean test accuracy, packed / off | {sweep['mean_test_acc']['packed']:.4f} / "
        f"{sweep['mean_test_acc']['off']:.4f} | equal |",
    ]
    if "skipped" in fashion:
        lines.append(f"| Fashion-MNIST throughput | skipped: {fashion['skipped']} | >= 1.4 |")
    else:
        lines.append(f"| Fashion-MNIST, 10 seeds: member-epochs per second, packed / sequential | "
                     f"{ratio_text(fashion['speedup'])} | >= 1.4 |")
        lines.append(f"| the same as GFLOP/s (a member-epoch is {fashion['member_epoch_gflop']:.0f} GFLOP), packed / "
                     f"sequential / a bare 2048x2048 GEMM | {fashion['gflops']['packed']:.0f} / "
                     f"{fashion['gflops']['off']:.0f} / {fashion['matmul_gflops']:.0f} | |")
        lines.append(f"| a bound that ignores all but the products: sequential member-epoch / its matrix products alone "
                     f"({fashion['products_only_member_epoch_s']:.2f} s, timed as torch.bmm over 10 members) | "
                     f"{fashion['ceiling_speedup']:.2f} | |")
        lines.append(f"| the pack's member-epoch / a bare loop of its arithmetic "
                     f"({statistics.median(fashion['member_epoch_s']['bare_loop']):.2f} s: gathers, baddbmm, "
                     f"cross-entropy, backward, fused Adam, evaluation forwards) | "
                     f"{ratio_text(fashion['packed_over_bare_loop'])} | |")
        phases = fashion["step_phases"]
        split = {name: " + ".join(f"{ms:.2f}" for ms in p.values()) for name, p in phases["member_step_ms"].items()}
        lines.append(f"| a bare training step per member, alone / in a pack of {phases['members']} "
                     f"({' + '.join(BarePack.PHASES)}, ms): {split['alone']} / {split['packed']} | "
                     f"{phases['alone_over_packed']:.2f} | |")
    chunks = results["chunk_sizes"]
    lines.append(f"| a CPU chunk's size: bare member-epoch in chunks of "
                 f"{' / '.join(chunks['median_member_epoch_s'])} (the cap, `pack.size=auto`, is {chunks['cap']}) | "
                 f"{' / '.join(f'{s:.2f} s' for s in chunks['median_member_epoch_s'].values())} | |")
    lines += [
        f"| threads: 4 jobs on 2 joblib workers, 2 threads each / divided (1 each) | "
        f"{ratio_text(threads['oversubscribed_over_divided'])} | |",
        "", "Where the packed default sweep's time goes (last round):", "",
        "| part | seconds |", "|---|---|",
        f"| imports (torch, Lightning, Hydra, the harness) | {b['imports_s']:.2f} |",
        f"| Python start, Hydra compose, checking and planning the 10 jobs, exit | {b['startup_compose_plan_exit_s']:.2f} |",
        f"| pack set-up (data, model, trainer) | {b['setup_s']:.2f} |",
        f"| training (30 epochs of 10 members, validation included) | {b['training_s']:.2f} |",
        f"| per-epoch logging (TensorBoard scalars, 10 runs) | {b['log_s']:.2f} |",
        f"| weight histograms | {b['histograms_s']:.2f} |",
        f"| epoch-end snapshots for last.ckpt, log lines | {b['checkpoints_s']:.2f} |",
        f"| test | {b['test_s']:.2f} |",
        f"| writing outputs (records, CSV, weights, checkpoints, HParams) | {b['write_s']:.2f} |",
        f"| seed summary (statistics, tables, plots, TensorBoard aggregates) | {b['summary_s']:.2f} |",
        f"| total | {b['total_s']:.2f} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep-rounds", type=int, default=5,
                        help="rounds of the default sweep: its ratios swing most with this VM's drift")
    parser.add_argument("--fashion-epochs", type=int, default=3,
                        help="the first epoch pays warm-up: a job's steady epoch is the median of the others")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {
            "machine": machine(),
            "method": f"{args.sweep_rounds} rounds of the default sweep and {args.rounds} of the others, "
                      "contenders in alternating order, ratios within a round; "
                      "every harness measurement a fresh train.py process",
            "default_sweep": default_sweep(args.sweep_rounds, work),
            "fashion_mnist": fashion_throughput(args.rounds, args.fashion_epochs, work),
            "chunk_sizes": chunk_sizes(args.rounds),
            "threads": thread_division(args.rounds, work),
        }
    atomic_write_text(args.out / "packs.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(args.out / "packs.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
