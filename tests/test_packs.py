"""Packs: jobs trained together as one batched model leave what each job alone would have left.

Each test trains a pack in-process through the real pack-job path (a manifest of member configs, as
the sweeper writes it) and compares every member with the same job trained alone (a pack of one).
Tolerance: members never share a parameter and every member-wise op (init, batch order, dropout
masks, augmentation, penalty, optimizer step) is computed from that member's own values and
streams, so training is identical up to float rounding in batched kernels (matrix products, batch
norm over n*C channels), which another CPU or a GPU may split differently for a pack than for one
model: float32 values agree to ~1e-6 relative. The comparisons allow 1e-5 relative and 1e-5
absolute, the latter for derived differences such as gen_gap/loss = val/loss - train loss. (On the
Intel CPU this was written on, an MLP member trains bit for bit the same in any pack of two or more,
and alone with one thread: alone on two, the BLAS splits MNIST's 128x784x512 product across them.
The rounding the harness itself could make place-dependent, the optimizer step, gradient clipping, a
single-output layer, the weight statistics and the evaluation batches, is tested exactly.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF_DIR, TINY, run_train
from regsweep import packing
from regsweep.checkpoints import CHECKPOINT_DIR, LAST_FILE
from regsweep.job import run
from regsweep.networks import MLPConfig, family
from regsweep.networks.layers import PackedLinear
from regsweep.data.augment import AugmentSettings
from regsweep.memberwise import MemberSpec, MemberValues
from regsweep.training.module import PackModule
from regsweep.training.optim import OPTIMIZERS, OptimizerConfig, build_optimizer, clip_member_gradients, net_param_groups
from regsweep.records import EPOCHS_FILE, WEIGHTS_FILE, ResultRecord, read_epochs_csv, read_result
from regsweep.seeding import STREAMS, SeedStreams

RTOL, ATOL = 1e-5, 1e-5
SMALL = [*TINY, "trainer.max_epochs=3", "callbacks=no_stop", "data.batch_size=64"]


def member_config(job_dir: Path, overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=[*SMALL, *overrides, f"paths.output_dir={job_dir}"])
    return OmegaConf.to_container(cfg, resolve=True)


def train_pack(root: Path, members: list[list[str]], name: str = "pack") -> list[ResultRecord]:
    """Train ``members`` (override lists) as one pack job, the way a sweep's pack job does; their records."""
    entries = []
    for index, overrides in enumerate(members):
        job_dir = root / name / f"{index}"
        job_dir.mkdir(parents=True)
        entries.append({"dir": str(job_dir), "num": index, "overrides": overrides,
                        "config": member_config(job_dir, overrides)})
    manifest = root / f"{name}.json"
    manifest.write_text(json.dumps({"pack": name, "sweep_dir": str(root), "members": entries}))
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        run(compose("train", overrides=[*SMALL, f"pack.manifest={manifest}", f"paths.output_dir={root / name}"]))
    return [read_result(Path(entry["dir"])) for entry in entries]


def train_alone(root: Path, overrides: list[str], name: str) -> ResultRecord:
    return train_pack(root, [overrides], name)[0]


def weights(record: ResultRecord) -> dict[str, np.ndarray]:
    with np.load(Path(record.job.dir) / WEIGHTS_FILE) as archive:
        return {name: archive[name] for name in archive.files}


def tensors_in(payload: object) -> list[torch.Tensor]:
    if torch.is_tensor(payload):
        return [payload]
    values = payload.values() if isinstance(payload, dict) else payload if isinstance(payload, (list, tuple)) else []
    return [t for value in values for t in tensors_in(value)]


def assert_same_job(packed: ResultRecord, alone: ResultRecord) -> None:
    assert packed.status == alone.status == "ok" and packed.epochs == alone.epochs
    rows, alone_rows = (read_epochs_csv(Path(r.job.dir) / EPOCHS_FILE) for r in (packed, alone))
    assert [row.keys() for row in rows] == [row.keys() for row in alone_rows]
    for row, alone_row in zip(rows, alone_rows):
        assert row == pytest.approx(alone_row, rel=RTOL, abs=ATOL)
    for section in ("best", "test"):
        assert packed.metrics[section] == pytest.approx(alone.metrics[section], rel=RTOL, abs=ATOL)
    packed_weights, alone_weights = weights(packed), weights(alone)
    assert packed_weights.keys() == alone_weights.keys()
    for name in packed_weights:
        np.testing.assert_allclose(packed_weights[name], alone_weights[name], rtol=RTOL, atol=ATOL)


def test_every_member_of_a_pack_matches_the_same_job_trained_alone(tmp_path: Path) -> None:
    members = [[f"seed={seed}"] for seed in range(4)]
    packed = train_pack(tmp_path, members)
    assert {r.job.pack for r in packed} == {"pack"} and len({r.metrics["test"]["test/loss"] for r in packed}) == 4
    for index in (0, 3):  # the first and the last member
        assert_same_job(packed[index], train_alone(tmp_path, members[index], f"alone{index}"))
    last = torch.load(Path(packed[1].job.dir) / CHECKPOINT_DIR / LAST_FILE, weights_only=False)
    # the member's own tensors only: a slice of the pack's would carry its pack-mates' storage into its file
    assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in tensors_in(last))


def test_member_wise_penalties_learning_rates_and_weight_decay(tmp_path: Path) -> None:
    """A pack mixing regularizer options, strengths, learning rates and weight decay: each its own updates."""
    members = [
        ["regularizer=none"],
        ["regularizer=l1", "regularizer.l1=1e-3", "optimizer.lr=3e-3"],
        ["regularizer=l2", "regularizer.l2=1e-2", "optimizer.weight_decay=1e-3"],
        ["regularizer=l1l2", "regularizer.l1=1e-4", "regularizer.l2=1e-3", "regularizer.grad_noise_std=0.01",
         "optimizer.lr=3e-3"],
        ["regularizer=l1l2", "regularizer.l1=1e-4", "regularizer.l2=2e-3", "regularizer.l2_half=true",
         "regularizer.combined_scale=0.5"],  # a course report's 1/2 (l1 sum|w| + l2/2 sum w^2)
    ]
    packed = train_pack(tmp_path, members)
    penalties = [r.metrics["final"]["train/penalty"] for r in packed]
    assert penalties[0] == 0 and all(p > 0 for p in penalties[1:])
    assert [r.metrics["final"]["lr"] for r in packed] == pytest.approx([1e-3, 3e-3, 1e-3, 3e-3, 1e-3])
    assert (packed[4].penalty["l1_applied"], packed[4].penalty["l2_applied"]) == pytest.approx((5e-5, 5e-4))
    for record in packed:  # the tested weights are the kept epoch's: its weight statistics give their penalty
        kept, applied = record.metrics["best"], record.penalty
        penalty = applied["l1_applied"] * kept["weights/l1"] + applied["l2_applied"] * kept["weights/l2"] ** 2
        assert record.metrics["test"]["test/total_loss"] == pytest.approx(record.metrics["test"]["test/loss"] + penalty)
    for index, overrides in enumerate(members):
        assert_same_job(packed[index], train_alone(tmp_path, overrides, f"alone{index}"))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_members_optimizer_step_is_bit_for_bit_the_same_at_any_place_in_any_pack(name: str) -> None:
    """torch's fused CPU step rounds a tensor's last partial vector unlike its vector lanes, so a member whose share of
    a stacked tensor is not whole vectors (a 10-class bias) would update by its place in the pack; every member, first,
    middle or last in packs of 1, 3 and 7, updates exactly as in any other."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(10,), (3, 5), (16,), (64, 8)]  # per member: a 10-class bias, an odd weight, whole vectors
    values = [torch.randn(7, *shape, generator=generator) for shape in shapes]
    steps = [[torch.randn(7, *shape, generator=generator) for shape in shapes] for _ in range(3)]
    cfg = OptimizerConfig(name=name, lr=0.01, weight_decay=0.01, schedule="none", step_size=1, gamma=1.0,
                          clip_grad_norm=0.0, momentum=0.9 if name == "sgd" else 0.0)

    def trained(members: slice) -> list[torch.Tensor]:
        params = [v[members].clone().requires_grad_() for v in values]
        optimizer = build_optimizer(cfg, net_param_groups(params, cfg.lr, cfg.weight_decay, torch.device("cpu")))
        for grads in steps:
            for param, grad in zip(params, grads):
                param.grad = grad[members].clone()
            optimizer.step()
        return [p.detach() for p in params]

    pack = trained(slice(0, 7))
    for members in (slice(0, 1), slice(2, 3), slice(6, 7), slice(0, 3), slice(4, 7)):
        for alone, packed in zip(trained(members), pack):
            assert torch.equal(alone, packed[members]), (members, alone.shape)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: alone, a member's large reductions would otherwise be split across threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_members_clipped_gradient_is_bit_for_bit_the_same_at_any_place_in_any_pack(one_thread: None) -> None:
    """Clipping to a global norm adds up each member's squared norms over its parameters; summed over a stack of
    them, the pack's size would set the order of those additions and a member's last bits."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(64, 512), (512,), (512, 256), (256,), (256, 10), (10,)]  # the default MLP's gradients on digits
    grads = [torch.randn(7, *shape, generator=generator) * 10.0 ** -torch.rand(7, *[1] * len(shape),
                                                                                generator=generator) * 3
             for shape in shapes]

    def clipped(members: slice) -> list[torch.Tensor]:
        member_grads = [g[members].clone() for g in grads]
        clip_member_gradients(member_grads, max_norm=1.0)
        return member_grads

    pack = clipped(slice(0, 7))
    norms = sum(g.flatten(1).double().pow(2).sum(1) for g in pack).sqrt()
    assert norms == pytest.approx([1.0] * 7, rel=1e-5)  # every member above the limit before
    for members in (slice(0, 1), slice(2, 3), slice(6, 7), slice(0, 3), slice(4, 7)):
        for alone, packed in zip(clipped(members), pack):
            assert torch.equal(alone, packed[members]), (members, alone.shape)


def test_a_single_output_layer_is_bit_for_bit_the_same_at_any_place_in_any_pack(one_thread: None) -> None:
    """A regression head: torch's batched product of one member's matrix by a vector rounds unlike a pack's."""
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(7, 256, 1, generator=generator) / 16, torch.randn(7, 1, generator=generator)
    inputs, output_grad = torch.randn(7, 100, 256, generator=generator), torch.randn(7, 100, 1, generator=generator)

    def forward_and_backward(members: slice) -> list[torch.Tensor]:
        layer = PackedLinear(len(range(7)[members]), 256, 1)
        with torch.no_grad():
            layer.weight.copy_(weight[members])
            layer.bias.copy_(bias[members])
        x = inputs[members].clone().requires_grad_()
        output = layer(x)
        output.backward(output_grad[members])
        return [output.detach(), x.grad, layer.weight.grad, layer.bias.grad]

    pack = forward_and_backward(slice(0, 7))
    torch.testing.assert_close(pack[0], torch.baddbmm(bias.unsqueeze(1), inputs, weight))  # the linear layer
    for members in (slice(0, 1), slice(2, 3), slice(6, 7), slice(0, 3), slice(4, 7)):
        for alone, packed in zip(forward_and_backward(members), pack):
            assert torch.equal(alone, packed[members]), (members, alone.shape)


def test_dropout_and_augmentation_are_per_member_and_deterministic(tmp_path: Path) -> None:
    """Masks and augmentation draws come from each member's own streams: the same numbers in or out of a pack."""
    members = [["model.dropout=0.3", "augment=all", f"seed={seed}"] for seed in range(3)] + [["model.dropout=0"]]
    packed = train_pack(tmp_path, members)
    again = train_pack(tmp_path, members, "again")
    for first, second in zip(packed, again):  # same command, same numbers
        assert first.metrics == second.metrics
    assert_same_job(packed[1], train_alone(tmp_path, members[1], "alone1"))
    assert_same_job(packed[3], train_alone(tmp_path, members[3], "alone3"))  # dropout 0 beside dropout 0.3


def test_batch_norm_and_layer_norm_pack(tmp_path: Path) -> None:
    for norm in ("batch", "layer"):
        members = [[f"model.norm={norm}", f"seed={seed}"] for seed in range(2)]
        packed = train_pack(tmp_path, members, f"pack_{norm}")
        assert_same_job(packed[1], train_alone(tmp_path, members[1], f"alone_{norm}"))


def test_the_cnn_packs(tmp_path: Path) -> None:
    cnn = ["model=cnn", "model.channels=[4,8]", "model.kernel_size=3", "model.norm=batch", "regularizer=l1"]
    members = [[*cnn, f"seed={seed}"] for seed in range(2)]
    packed = train_pack(tmp_path, members)
    assert_same_job(packed[0], train_alone(tmp_path, members[0], "alone"))


def test_a_diverging_member_fails_alone_and_its_pack_mates_finish(tmp_path: Path) -> None:
    members = [["data=regression", "optimizer=sgd", f"optimizer.lr={lr}", "data.batch_size=null"] for lr in (1e6, 1e-2)]
    diverged, healthy = train_pack(tmp_path, members)
    assert diverged.status == "failed" and "DivergenceError: training diverged" in diverged.error
    assert healthy.status == "ok" and healthy.epochs == 3
    assert_same_job(healthy, train_alone(tmp_path, members[1], "alone"))



def test_the_pack_regroups_when_the_member_between_two_equal_learning_rates_fails(tmp_path: Path) -> None:
    """Members 0 and 2 share (lr, weight_decay): once member 1 diverges they become one optimizer group."""
    healthy = ["data=regression", "optimizer=sgd", "optimizer.lr=1e-2", "data.batch_size=null",
               "optimizer.schedule=step"]
    diverging = [*healthy[:2], "optimizer.lr=1e6", *healthy[3:]]
    first, diverged, last = train_pack(tmp_path, [[*healthy, "seed=0"], diverging, [*healthy, "seed=2"]])
    assert diverged.status == "failed" and "DivergenceError" in diverged.error
    assert_same_job(first, train_alone(tmp_path, [*healthy, "seed=0"], "alone0"))
    assert_same_job(last, train_alone(tmp_path, [*healthy, "seed=2"], "alone2"))


def test_a_member_that_stops_leaves_its_own_last_epoch_in_last_ckpt(tmp_path: Path) -> None:
    stopping = ["callbacks=default", "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5",
                "optimizer.lr=3e-3", "trainer.max_epochs=4", "test=false"]
    full, stopped = train_pack(tmp_path, [["trainer.max_epochs=4", "test=false"], stopping])
    assert (full.status, full.epochs, stopped.status, stopped.epochs) == ("ok", 4, "ok", 2)
    for record in (full, stopped):
        last = torch.load(Path(record.job.dir) / CHECKPOINT_DIR / LAST_FILE, weights_only=False)
        assert last["epochs"] == record.epochs and len(last["history"]) == record.epochs


def test_an_early_stopped_member_is_frozen_while_the_others_go_on(tmp_path: Path) -> None:
    stopping = ["callbacks=default", "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5",
                "trainer.max_epochs=6"]
    stopped, full = train_pack(tmp_path, [stopping, ["trainer.max_epochs=6"]])
    assert stopped.epochs == 2 and "early stopping: val/loss did not improve" in stopped.stop_reason
    assert full.epochs == 6 and full.stop_reason is None
    assert_same_job(stopped, train_alone(tmp_path, stopping, "alone_stopped"))
    assert_same_job(full, train_alone(tmp_path, ["trainer.max_epochs=6"], "alone_full"))


def test_each_member_tests_its_own_best_epoch(tmp_path: Path) -> None:
    checkpoint = ["callbacks=no_stop", "callbacks.model_checkpoint.monitor=val/acc", "trainer.max_epochs=5"]
    packed = train_pack(tmp_path, [[*checkpoint, f"seed={seed}"] for seed in range(3)])
    for record in packed:
        rows = read_epochs_csv(Path(record.job.dir) / EPOCHS_FILE)
        best = max(rows, key=lambda row: row["val/acc"])
        assert record.metrics["best"]["epoch"] == next(r["epoch"] for r in rows if r["val/acc"] == best["val/acc"])
        saved = torch.load(Path(record.job.dir) / "checkpoints" / "best.ckpt", weights_only=False)
        assert saved["epoch"] == record.metrics["best"]["epoch"] and saved["monitor"] == "val/acc"


def test_the_penalty_strengths_follow_the_nets_to_the_device_lightning_moves_them_to() -> None:
    """The module is made on the CPU and moved by Lightning before fit: strengths left behind failed every penalized
    job on a GPU. The meta device stands in for one here."""

    def member(seed: int, l1: float) -> MemberSpec:
        values = MemberValues(l1=l1, l2=0.0, grad_noise_std=0.0, lr=1e-3, weight_decay=0.0, dropout=0.0,
                              augment=AugmentSettings())
        return MemberSpec(seed, values, {name: SeedStreams(seed).generator(name) for name in STREAMS})

    module = PackModule(family(MLPConfig(name="mlp", hidden_sizes=[8], activation="relu", dropout=0.0, norm="none"),
                               (4,), 3),
                        OptimizerConfig(name="adam", lr=1e-3, weight_decay=0.0, schedule="none", step_size=1, gamma=1.0,
                                        clip_grad_norm=0.0),
                        [member(0, 1e-3), member(1, 1e-2)], "classification", max_epochs=1)
    module.to("meta")
    [strengths] = module.strengths
    assert strengths.l1.device == torch.device("meta") and strengths.l2 is None
    assert not any("strengths" in key for key in module.state_dict())  # from the configs, never from a checkpoint


def test_the_initial_weights_and_the_batch_order_are_drawn_on_the_cpu_for_any_device() -> None:
    """So a seed starts from the same weights and sees its batches in the same order on a GPU (asked for
    here without one: these generators never touch the device)."""
    for stream in ("init", "order"):
        on_gpu, on_cpu = SeedStreams(7).generator(stream, "cuda"), SeedStreams(7).generator(stream)
        assert on_gpu.device.type == "cpu"
        assert torch.equal(torch.randperm(100, generator=on_gpu), torch.randperm(100, generator=on_cpu))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
# CUDA against the CPU: the same initial weights and batch order (both drawn on the CPU) through other
# kernels (cuBLAS's float32 products, not TF32, summing in another order): rounding differences of
# ~1e-6 per step may grow over 3 epochs towards 1e-4, and a test accuracy may move by a sample or two.
DEVICE_RTOL, DEVICE_ATOL, DEVICE_ACC = 1e-3, 1e-4, 0.01


@needs_cuda
def test_a_pack_trains_on_cuda_as_on_the_cpu(tmp_path: Path) -> None:
    """With the defaults a user runs on a GPU: deterministic algorithms, weight histograms."""
    members = [[f"seed={seed}", "regularizer=l1l2"] for seed in range(3)]
    cuda = train_pack(tmp_path, [[*m, "trainer=gpu"] for m in members], "cuda")
    cpu = train_pack(tmp_path, [[*m, "trainer=cpu"] for m in members], "cpu")
    for on_gpu, on_cpu in zip(cuda, cpu):
        assert on_gpu.status == on_cpu.status == "ok"
        gpu_weights, cpu_weights = weights(on_gpu), weights(on_cpu)
        for name in cpu_weights:
            np.testing.assert_allclose(gpu_weights[name], cpu_weights[name], rtol=DEVICE_RTOL, atol=DEVICE_ATOL)
        gpu_test, cpu_test = on_gpu.metrics["test"], on_cpu.metrics["test"]
        assert gpu_test["test/loss"] == pytest.approx(cpu_test["test/loss"], rel=DEVICE_RTOL, abs=DEVICE_ATOL)
        assert gpu_test["test/acc"] == pytest.approx(cpu_test["test/acc"], abs=DEVICE_ACC)


@needs_cuda
def test_a_cnn_pack_with_dropout_and_augmentation_repeats_itself_on_cuda(tmp_path: Path) -> None:
    """Convolutions, batch norm, dropout masks and warped batches drawn on the device, under deterministic
    algorithms: the same seeds give the same numbers."""
    cnn = ["model=cnn", "model.channels=[4,8]", "model.kernel_size=3", "model.norm=batch", "model.dropout=0.2",
           "augment=all", "trainer=gpu"]
    members = [[*cnn, f"seed={seed}"] for seed in range(2)]
    first, second = train_pack(tmp_path, members, "first"), train_pack(tmp_path, members, "second")
    for one, again in zip(first, second):
        assert one.status == again.status == "ok" and one.metrics == again.metrics
        assert all(np.array_equal(w, weights(again)[name]) for name, w in weights(one).items())


@pytest.mark.slow
def test_a_packed_multirun_leaves_what_the_sequential_one_leaves(tmp_path: Path) -> None:
    """End to end through train.py: pack.size=auto and pack.size=off, the same job dirs and numbers."""
    sweeps = {}
    for size in ("auto", "off"):
        sweep = tmp_path / size
        result = run_train("-m", "seed=0-2", "regularizer=none,l1l2", *SMALL, f"pack.size={size}",
                           f"hydra.sweep.dir={sweep}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        sweeps[size] = sweep
    auto_dirs = sorted(p.name for p in sweeps["auto"].iterdir() if (p / "result.json").exists())
    off_dirs = sorted(p.name for p in sweeps["off"].iterdir() if (p / "result.json").exists())
    assert len(auto_dirs) == 6 and [d.replace("pack.size=auto", "") for d in auto_dirs] == [
        d.replace("pack.size=off", "") for d in off_dirs]
    packs = {read_result(sweeps["auto"] / d).job.pack for d in auto_dirs}
    assert len(packs) == 1  # seeds and regularizer options are member-wise: one pack
    for auto_dir, off_dir in zip(auto_dirs, off_dirs):
        packed, alone = read_result(sweeps["auto"] / auto_dir), read_result(sweeps["off"] / off_dir)
        assert_same_job(packed, alone)
        assert (sweeps["auto"] / auto_dir / ".hydra" / "overrides.yaml").exists()
        assert list((sweeps["auto"] / auto_dir).glob("events.out.tfevents.*"))
    for name in ("summary.md", "summary.csv", "comparisons.csv"):
        assert (sweeps["auto"] / name).exists()


def test_a_chunk_is_what_fits_in_memory_and_on_a_cpu_no_more_than_the_cap() -> None:
    """A CPU trains large packs in chunks of at most CPU_MAX_MEMBERS (faster per member); a GPU only by memory."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    many = 3 * packing.CPU_MAX_MEMBERS
    capped, limit = packing.chunk_size(10, 10**9, cpu, many)
    assert capped == packing.CPU_MAX_MEMBERS and "on a CPU" in limit
    assert packing.chunk_size(10, 10**9, cpu, 5)[0] == 5
    assert packing.chunk_size(10, 10**9, cuda, many)[0] == many
    assert packing.chunk_size(10 * 2**20, 55 * 2**20, cuda, many) == (5, "10 MB a member, 55 MB for the pack on cuda")
    tight, limit = packing.chunk_size(10, 5, cpu, many)
    assert tight == 1 and "MB a member" in limit  # not even one fits: one at a time, and memory is the reason


def test_a_members_memory_counts_the_larger_of_a_training_minibatch_and_an_evaluation_batch() -> None:
    weights = 4 * 1000 * (2 + 2)  # parameters, their gradients and two Adam states, in float32 bytes
    assert packing.member_bytes(1000, 50, 128, 2, eval_rows=64) == weights + 4 * 50 * 3 * 128  # autograd's
    assert packing.member_bytes(1000, 50, 128, 2, eval_rows=4096) == weights + 4 * 50 * 4096  # evaluation's


def test_a_pack_larger_than_memory_trains_in_chunks_with_the_same_numbers(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pack.size=auto splits a pack the device cannot hold into chunks; every member's numbers stay its own."""
    members = [[f"seed={seed}"] for seed in range(3)]
    whole = train_pack(tmp_path, members, "whole")
    planned: list[tuple[int, str]] = []
    real_chunk_size = packing.chunk_size
    monkeypatch.setattr(packing, "memory_budget", lambda device: 1)  # less than one member: one member a chunk
    monkeypatch.setattr(packing, "chunk_size", lambda *a: planned.append(real_chunk_size(*a)) or planned[-1])
    chunked = train_pack(tmp_path, members, "chunked")
    assert [size for size, _ in planned] == [1]
    for packed, alone in zip(chunked, whole):
        assert_same_job(packed, alone)
