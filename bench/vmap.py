"""Speed of the generic path (``make bench-vmap``): any nn.Module packed by torch.func, vs one by one and vs packed layers.

1. A bare training step per member (forward, backward, fused Adam; no harness), 10 members, threads as torch has
   them: the members vmapped as one (regsweep.networks.vectorized.VmapNet), the same network alone as the harness
   runs a job alone (a VmapNet of one: no vmap), the ordinary module alone (plain PyTorch), and for the built-in
   MLP the packed layers (model.engine=layers, the default). On the example network (examples/tabular/resmlp.py,
   wine-sized), on overhead-bound MLPs (64-512-256-10, 784-64-32-10) and on an MNIST-sized one (784-512-256-10).
2. End to end, command to prompt: the example study (python train.py -cd examples/tabular -m
   experiment=wine_l1_vs_l2, 40 jobs) packed vs pack.size=off; and the MNIST-sized MLP through the generic path
   (model.engine=vmap, 10 seeds, 1 epoch) packed vs off, when ../shared/data has MNIST.
Targets (issue 32): packed / one by one >= 1.3x where the network is overhead-bound, never slower.
Results: bench/results/vmap.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Callable

import torch
import torch.nn.functional as F
from common import RESULTS, ROOT, SHARED_MNIST, TRAIN, machine, paired_rounds, ratio_summary, ratio_text, run_script
from torch import nn

from regsweep.atomic import atomic_write_text
from regsweep.console import cli_description
from regsweep.instantiate import user_code_importable
from regsweep.networks import MemberModel, MLPConfig, family
from regsweep.networks.user import UserFamily, user_model
from regsweep.seeding import SeedStreams

MEMBERS = 10
user_code_importable(str(ROOT))  # the example network is examples.tabular.resmlp, under the repository root
NETWORKS = {  # name -> (the model family, a sample's shape, classes, batch size)
    "example: residual MLP 13-64x2-3 (wine)": (lambda: UserFamily(user_model(
        {"_target_": "examples.tabular.resmlp.ResidualMLP"}), (13,), 3), (13,), 3, 32),
    "MLP 64-512-256-10 (digits)": (lambda: family(MLPConfig(name="mlp", hidden_sizes=[512, 256], activation="relu",
                                                             dropout=0.0, norm="none", engine="vmap"), (64,), 10),
                                   (64,), 10, 128),
    "MLP 784-64-32-10": (lambda: family(MLPConfig(name="mlp", hidden_sizes=[64, 32], activation="relu", dropout=0.0,
                                                  norm="none", engine="vmap"), (784,), 10), (784,), 10, 128),
    "MLP 784-512-256-10 (MNIST)": (lambda: family(MLPConfig(name="mlp", hidden_sizes=[512, 256], activation="relu",
                                                            dropout=0.0, norm="none", engine="vmap"), (784,), 10),
                                   (784,), 10, 128),
}


def members(n: int) -> list[MemberModel]:
    return [MemberModel(0.0, SeedStreams(s).generator("init"), SeedStreams(s).generator("dropout")) for s in range(n)]


def step_seconds(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per training step (after warm-up) of ``net`` on the batch ``x`` ([members, B, ...] or [B, ...])."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    for step in range(steps + 5):
        if step == 5:
            started = time.perf_counter()
        out = net(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def contenders(name: str, steps: int) -> dict[str, Callable[[], float]]:
    """Per-member seconds of a step, each way of training ``name``'s network."""
    make, shape, classes, batch = NETWORKS[name]
    fam = make()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(MEMBERS, batch, *shape, generator=generator)
    y = torch.randint(0, classes, (MEMBERS, batch), generator=generator)
    ways = {
        "vmap pack": lambda: step_seconds(fam.pack(members(MEMBERS)).train(), x, y, steps) / MEMBERS,
        "alone (harness)": lambda: step_seconds(fam.pack(members(1)).train(), x[:1], y[:1], steps),
        "alone (plain PyTorch)": lambda: step_seconds(fam.single(members(1)[0]).train(), x[0], y[0], steps),
    }
    if getattr(fam, "cfg", None) is not None and isinstance(fam.cfg, MLPConfig):
        layers = family(MLPConfig(**{**vars(fam.cfg), "engine": "layers"}), shape, classes)
        ways["packed layers"] = lambda: step_seconds(layers.pack(members(MEMBERS)).train(), x, y, steps) / MEMBERS
    return ways


def micro(rounds: int, steps: int) -> dict[str, object]:
    results = {}
    for name in NETWORKS:
        times = paired_rounds(contenders(name, steps), rounds)
        entry = {"ms_per_member_step": {k: round(1e3 * statistics.median(v), 4) for k, v in times.items()},
                 "alone / vmap pack": ratio_summary(times, "alone (harness)", "vmap pack"),
                 "plain alone / vmap pack": ratio_summary(times, "alone (plain PyTorch)", "vmap pack")}
        if "packed layers" in times:
            entry["vmap pack / packed layers"] = ratio_summary(times, "vmap pack", "packed layers")
        results[name] = entry
        print(name, json.dumps(entry["ms_per_member_step"]), flush=True)
    return results


def end_to_end(rounds: int) -> dict[str, object]:
    """Command to prompt, packed vs one by one, in alternating order."""
    studies = {"example study (40 jobs, 60 epochs)": ["-cd", "examples/tabular", "-m", "experiment=wine_l1_vs_l2"]}
    if SHARED_MNIST.is_dir():
        studies["MNIST MLP via vmap (10 seeds, 1 epoch)"] = [
            "-m", "seed=0-9", "data=mnist", f"data.data_dir={SHARED_MNIST}", "model.engine=vmap",
            "trainer.max_epochs=1", "callbacks=no_stop"]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, arguments in studies.items():
            def run(pack: str) -> Callable[[], float]:
                return lambda: run_script(TRAIN, *arguments, f"pack.size={pack}", "trainer.enable_progress_bar=false",
                                          f"hydra.sweep.dir={scratch}/{time.monotonic_ns()}", cwd=ROOT)
            times = paired_rounds({"packed": run("auto"), "one by one": run("off")}, rounds)
            results[name] = {"seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
                             "one by one / packed": ratio_summary(times, "one by one", "packed")}
            print(name, json.dumps(results[name]["seconds"]), flush=True)
    return results


def markdown(report: dict[str, object]) -> str:
    lines = [f"# The generic path (torch.func): {report['machine']['cpu']}, torch {report['machine']['torch']}, "
             f"{report['machine']['threads']} threads", "",
             f"Bare training step per member, {MEMBERS} members (median ms over {report['rounds']} rounds):", "",
             "| network | vmap pack | alone (harness) | alone (plain PyTorch) | packed layers | alone / vmap pack | "
             "vmap pack / packed layers |", "|---|---|---|---|---|---|---|"]
    for name, entry in report["micro"].items():
        ms = entry["ms_per_member_step"]
        layers = entry.get("vmap pack / packed layers")
        packed = f"{ms['packed layers']:.3f}" if "packed layers" in ms else "-"  # built-in MLPs only
        lines.append(f"| {name} | {ms['vmap pack']:.3f} | {ms['alone (harness)']:.3f} | "
                     f"{ms['alone (plain PyTorch)']:.3f} | {packed} | "
                     f"{ratio_text(entry['alone / vmap pack'])} | {ratio_text(layers) if layers else '-'} |")
    lines += ["", "End to end, command to prompt (s):", "", "| study | packed | one by one | one by one / packed |",
              "|---|---|---|---|"]
    for name, entry in report["end_to_end"].items():
        seconds = entry["seconds"]
        lines.append(f"| {name} | {statistics.median(seconds['packed']):.1f} | "
                     f"{statistics.median(seconds['one by one']):.1f} | {ratio_text(entry['one by one / packed'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=cli_description(__doc__))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--end-to-end-rounds", type=int, default=2)
    args = parser.parse_args()
    report = {"machine": machine(), "rounds": args.rounds, "micro": micro(args.rounds, args.steps),
              "end_to_end": end_to_end(args.end_to_end_rounds)}
    atomic_write_text(RESULTS / "vmap.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(RESULTS / "vmap.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
