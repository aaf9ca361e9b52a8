"""The penalty and its gradient against a hand computation; what is and is not penalized; member by member."""

from __future__ import annotations

import pytest
import torch

from regsweep.networks import MemberModel, MLPConfig
from regsweep.networks.builtin import PackNet
from regsweep.training.penalty import RegularizerConfig, add_gradient_noise, add_penalty_gradient, weight_statistics


def small_net(members: int = 1) -> PackNet:
    cfg = MLPConfig(name="mlp", hidden_sizes=[3], activation="relu", dropout=0.0, norm="batch")
    spec = [MemberModel(0.0, torch.Generator().manual_seed(m), torch.Generator()) for m in range(members)]
    return PackNet(cfg, spec, (2,), 2)


def regularizer(l1: float = 0.0, l2: float = 0.0, scale: bool = False, l2_half: bool = False,
                combined_scale: float = 1.0) -> RegularizerConfig:
    return RegularizerConfig(name="l1l2", l1=l1, l2=l2, scale_by_n_train=scale, l2_half=l2_half,
                             combined_scale=combined_scale, grad_noise_std=0.0)


def test_only_weight_matrices_are_penalized() -> None:
    net = small_net()
    assert sorted(net.penalized()) == ["1.weight", "4.weight"]  # Linear(2,3) and Linear(3,2)
    names = {id(p): n for n, p in net.named_parameters()}
    penalized = {names[id(w)] for w in net.penalized().values()}
    assert not any("bias" in n for n in penalized)
    assert "2.weight" not in penalized  # the BatchNorm scale


def test_penalty_value_and_gradient_match_hand_computation() -> None:
    w1 = torch.tensor([[[1.0, -2.0], [0.5, 0.0]]], requires_grad=True)  # one member
    w2 = torch.tensor([[[-3.0, 4.0]]], requires_grad=True)
    for w in (w1, w2):
        w.grad = torch.zeros_like(w)
    value = add_penalty_gradient([w1, w2], torch.tensor([0.1]), torch.tensor([0.01]))
    # sum|w| = 1 + 2 + 0.5 + 0 + 3 + 4 = 10.5; sum w^2 = 1 + 4 + 0.25 + 0 + 9 + 16 = 30.25
    assert value.tolist() == pytest.approx([0.1 * 10.5 + 0.01 * 30.25])
    # d/dw = l1 * sign(w) + 2 * l2 * w (sign(0) = 0), added to the data gradient
    assert torch.allclose(w1.grad, torch.tensor([[[0.1 + 0.02, -0.1 - 0.04], [0.1 + 0.01, 0.0]]]))
    assert torch.allclose(w2.grad, torch.tensor([[[-0.1 - 0.06, 0.1 + 0.08]]]))


def test_the_penalty_gradient_equals_autograd_through_the_penalty() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5, requires_grad=True)  # three members
    l1, l2 = torch.tensor([0.0, 1e-2, 3e-2]), torch.tensor([2e-2, 0.0, 5e-3])
    (l1[:, None, None] * w.abs() + l2[:, None, None] * w.pow(2)).sum().backward()
    expected = w.grad.clone()
    w.grad = torch.zeros_like(w)
    value = add_penalty_gradient([w], l1, l2)
    assert torch.allclose(w.grad, expected, atol=1e-7)
    assert torch.allclose(value, (l1 * w.abs().flatten(1).sum(1) + l2 * w.pow(2).flatten(1).sum(1)).detach())


def test_each_member_gets_only_its_own_strengths() -> None:
    w = torch.ones(2, 2, 2, requires_grad=True)
    w.grad = torch.zeros_like(w)
    value = add_penalty_gradient([w], torch.tensor([0.0, 0.5]), None)  # member 0 unpenalized
    assert value.tolist() == [0.0, 2.0]
    assert w.grad[0].abs().sum() == 0 and torch.all(w.grad[1] == 0.5)


def test_per_sample_scaling_divides_by_n_train() -> None:
    assert regularizer(l1=0.5, l2=0.2, scale=True).applied(n_train=100) == pytest.approx((0.005, 0.002))
    assert regularizer(l1=0.5, l2=0.2).applied(n_train=100) == (0.5, 0.2)


def test_the_course_reports_conventions_apply_the_strengths_they_mean() -> None:
    """lambda/(2n) sum w^2 (l2_half with per-sample scaling) and the report's "half of each" combination."""
    assert regularizer(l2=0.2, l2_half=True, scale=True).applied(n_train=100) == pytest.approx((0.0, 0.001))
    # 1/2 (l1/n sum|w| + l2/(2n) sum w^2): each term halved once more when both are on
    assert regularizer(l1=0.5, l2=0.2, scale=True, l2_half=True, combined_scale=0.5).applied(n_train=100) == \
        pytest.approx((0.0025, 0.0005))
    assert regularizer(l1=0.5, combined_scale=0.5).applied(n_train=100) == (0.5, 0.0)  # one term: not combined
    assert regularizer(l2=0.2, combined_scale=0.5).applied(n_train=100) == (0.0, 0.2)


def test_a_halved_l2_has_the_weight_decay_gradient() -> None:
    """(l2/2) sum w^2 differentiates to l2 * w: the gradient SGD's weight_decay=l2 adds."""
    _, l2 = regularizer(l2=0.3, l2_half=True).applied(n_train=10)
    w = torch.tensor([[[1.0, -2.0]]], requires_grad=True)
    w.grad = torch.zeros_like(w)
    value = add_penalty_gradient([w], None, torch.tensor([l2]))
    assert value.tolist() == pytest.approx([0.15 * 5.0])
    assert torch.allclose(w.grad, 0.3 * w.detach())



def test_weight_statistics_per_member() -> None:
    w = [torch.tensor([[[3.0, -4.0], [0.0, 0.0005]], [[1.0, 1.0], [1.0, 1e-6]]])]
    stats = weight_statistics(w)
    assert stats["weights/l1"].tolist() == pytest.approx([7.0005, 3.000001])
    assert stats["weights/l2"][0].item() == pytest.approx((25 + 0.0005**2) ** 0.5)
    assert stats["weights/sparsity"].tolist() == pytest.approx([0.5, 0.25])  # |w| < 1e-3
    assert stats["weights/sparsity_1e-5"].tolist() == pytest.approx([0.25, 0.25])  # exact zero; 1e-6
    assert stats["weights/sparsity_rel"].tolist() == pytest.approx([0.5, 0.25])  # < 1% of the layer's RMS


def test_a_members_weight_statistics_in_a_pack_are_bit_for_bit_those_of_its_weights_alone() -> None:
    """Reduced over the pack at once, a member's sums would round by the pack's size (past torch's parallel grain a
    lone member's sum is split between threads); each member's own slices summed alone round the same anywhere."""
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(5, 256, 256, generator=generator), torch.randn(5, 256, 10, generator=generator)]
    pack = weight_statistics(weights)
    for member in range(5):
        alone = weight_statistics([w[member : member + 1].clone() for w in weights])
        for name, values in pack.items():
            assert torch.equal(values[member : member + 1], alone[name]), name


def test_gradient_noise_has_the_configured_spread_and_follows_each_members_seed() -> None:
    def noisy_grads(seeds: list[int], stds: list[float]) -> torch.Tensor:
        grad = torch.zeros(len(seeds), 20000)
        add_gradient_noise([grad], stds, [torch.Generator().manual_seed(s) for s in seeds])
        return grad

    grad = noisy_grads([1], [0.3])[0]
    assert grad.std().item() == pytest.approx(0.3, rel=0.03)
    assert abs(grad.mean().item()) < 0.01
    assert torch.equal(grad, noisy_grads([1], [0.3])[0]) and not torch.equal(grad, noisy_grads([2], [0.3])[0])
    pack = noisy_grads([5, 1], [0.0, 0.3])
    assert pack[0].abs().sum() == 0 and torch.equal(pack[1], grad)  # the same draws alone or in a pack
