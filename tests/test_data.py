"""Splits are fixed by the split seed, normalization uses training statistics, batches cover the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regsweep.config import validate
from regsweep.data.batches import MemberBatches, MinibatchGroups, PackProgress, SharedBatches
from regsweep.data.datamodule import EVAL_MEMBER_ROWS, PackDataModule
from regsweep.data.sources import load_splits, regression_target
from regsweep.data.splits import Splits
from regsweep.metrics import CLASSIFICATION
from regsweep.trainer import BatchPlan


def test_digits_split_depends_on_split_seed_not_on_run_seed(make_cfg) -> None:
    a = load_splits(validate(make_cfg("seed=1")).data)
    b = load_splits(validate(make_cfg("seed=2")).data)
    c = load_splits(validate(make_cfg("data.split_seed=7")).data)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.y_train, c.y_train)
    n = len(a.x_train) + len(a.x_val) + len(a.x_test)
    assert n == 1797 and len(a.x_test) == 360
    assert a.input_shape == (1, 8, 8) and a.output_size == 10


def test_minmax_scales_the_training_range_to_unit_interval(make_cfg) -> None:
    splits = load_splits(validate(make_cfg("data.normalize=minmax")).data)
    assert splits.x_train.min().item() == 0.0 and splits.x_train.max().item() == 1.0
    raw = load_splits(validate(make_cfg("data.normalize=none")).data)
    assert torch.allclose(splits.x_test, raw.x_test / 16.0)  # digits pixels are 0..16


def test_standardize_uses_training_statistics_only(make_cfg) -> None:
    splits = load_splits(validate(make_cfg("data.normalize=standardize")).data)
    flat = splits.x_train.reshape(len(splits.x_train), -1)
    varying = flat.std(dim=0) > 0
    assert torch.allclose(flat.mean(dim=0), torch.zeros(flat.shape[1]), atol=1e-5)
    assert torch.allclose(flat.std(dim=0)[varying], torch.ones(int(varying.sum())), atol=1e-4)
    assert not torch.allclose(splits.x_test.reshape(len(splits.x_test), -1).mean(dim=0), torch.zeros(64), atol=1e-3)


@pytest.mark.parametrize("n_train", [100, 1000])
def test_regression_data_samples_the_target_surface(make_cfg, n_train: int) -> None:
    splits = load_splits(validate(make_cfg("data=regression", f"data.n_train={n_train}")).data)
    assert splits.x_train.shape == (n_train, 2) and splits.y_train.shape == (n_train, 1)
    assert splits.x_train.abs().max() <= 2.0
    expected = regression_target(splits.x_train.double().numpy())
    assert np.allclose(splits.y_train[:, 0].numpy(), expected, atol=1e-6)  # noise_std = 0
    assert splits.x_test.shape == (2500, 2)  # the 50 x 50 grid
    assert sorted(set(splits.x_test[:, 0].tolist()))[:2] == pytest.approx([-2.0, -2.0 + 4 / 49])


def test_regression_noise_changes_targets_not_inputs(make_cfg) -> None:
    clean = load_splits(validate(make_cfg("data=regression")).data)
    noisy = load_splits(validate(make_cfg("data=regression", "data.noise_std=0.1")).data)
    assert torch.equal(clean.x_train, noisy.x_train)
    assert (noisy.y_train - clean.y_train).std().item() == pytest.approx(0.1, rel=0.3)
    assert torch.equal(clean.y_test, noisy.y_test)


def test_shuffled_batches_cover_every_sample_once_and_follow_the_generator() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)

    def epoch(seed: int) -> list[int]:
        batches = MemberBatches(x, y, 3, [torch.Generator().manual_seed(seed)], members=1)
        assert len(batches) == 4
        return [int(v) for _, yb in batches for v in yb[0]]

    assert sorted(epoch(0)) == list(range(10))
    assert epoch(0) == epoch(0) and epoch(0) != epoch(1)


def test_each_member_walks_the_data_in_the_order_of_its_own_generator() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    alone = [yb[0].tolist() for _, yb in MemberBatches(x, y, 4, [torch.Generator().manual_seed(7)], members=1)]
    pack = MemberBatches(x, y, 4, [torch.Generator().manual_seed(s) for s in (3, 7)], members=2)
    batches = list(pack)
    assert [xb.shape for xb, _ in batches] == [(2, 4, 1), (2, 4, 1), (2, 2, 1)]  # [members, batch, features]
    assert [yb[1].tolist() for _, yb in batches] == alone  # the member seeded 7 sees what it sees alone
    assert all(torch.equal(xb[..., 0].long(), yb) for xb, yb in batches)  # inputs and targets stay paired


def test_full_batch_and_ordered_batches() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    full = list(MemberBatches(x, y, None, None, members=1))
    assert len(full) == 1 and torch.equal(full[0][1][0], y)
    assert [len(b[1][0]) for b in MemberBatches(x, y, 4, None, members=1)] == [4, 4, 2]
    assert [len(b.y) for b in SharedBatches(x, y, 4)] == [4, 4, 2]


def test_a_members_evaluation_batches_are_the_same_whatever_the_size_of_its_pack() -> None:
    """A member's evaluation sums then add the same partial sums in a pack of any size (packs agree bit for bit)."""
    rows = 2 * EVAL_MEMBER_ROWS + 5
    x, y = torch.zeros(rows, 1), torch.zeros(rows, dtype=torch.int64)
    splits = Splits(x, y, x, y, x, y, CLASSIFICATION, num_classes=2)
    plan = BatchPlan(max_epochs=1, min_epochs=1, max_steps=None, train=None, val=None, test=None)

    def batch_rows(members: int) -> list[list[int]]:
        data = PackDataModule(splits, 32, {}, plan, 1, 0, PackProgress(active=list(range(members))))
        data.setup("fit")
        loaders = [*data.val_dataloader(), data.test_dataloader()]
        return [[len(batch.y) for batch in loader] for loader in loaders]

    alone = batch_rows(1)
    assert alone[0] == [EVAL_MEMBER_ROWS, EVAL_MEMBER_ROWS, 5]
    assert batch_rows(3) == batch_rows(16) == alone


def test_a_batch_limit_ends_a_pass_early() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    batches = MemberBatches(x, y, 3, None, members=1, limit=2)
    assert len(batches) == 2 and [b.y[0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]


def test_minibatch_groups_hand_over_the_same_minibatches_in_lists() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    minibatches = [yb.tolist() for _, yb in MemberBatches(x, y, 3, [torch.Generator().manual_seed(0)], members=1)]
    groups = MinibatchGroups(MemberBatches(x, y, 3, [torch.Generator().manual_seed(0)], members=1), 3)
    assert len(groups) == 2
    assert [[yb.tolist() for _, yb in group] for group in groups] == [minibatches[:3], minibatches[3:]]
    with pytest.raises(ValueError, match=">= 1"):
        MinibatchGroups(MemberBatches(x, y, 3, None, members=1), 0)
