"""The penalty and its gradient against a hand computation; what is and is not penalized."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regsweep.config import MLPConfig, RegularizerConfig
from regsweep.models import build_model
from regsweep.penalty import add_gradient_noise, named_weights, penalty, strengths, weight_statistics


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    cfg = MLPConfig(name="mlp", hidden_sizes=[3], activation="relu", dropout=0.0, norm="batch")
    return build_model(cfg, (2,), 2)


def regularizer(l1: float = 0.0, l2: float = 0.0, scale: bool = False) -> RegularizerConfig:
    return RegularizerConfig(name="l1l2", l1=l1, l2=l2, scale_by_n_train=scale, grad_noise_std=0.0)


def test_only_weight_matrices_are_penalized() -> None:
    net = small_net()
    assert sorted(named_weights(net)) == ["1.weight", "4.weight"]  # Linear(2,3) and Linear(3,2)
    names = {id(p): n for n, p in net.named_parameters()}
    penalized = {names[id(w)] for w in named_weights(net).values()}
    assert not any("bias" in n for n in penalized)
    assert "2.weight" not in penalized  # the BatchNorm scale


def test_penalty_value_and_gradient_match_hand_computation() -> None:
    w1 = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    w2 = torch.tensor([[-3.0, 4.0]], requires_grad=True)
    l1, l2 = 0.1, 0.01
    value = penalty([w1, w2], l1, l2)
    # sum|w| = 1 + 2 + 0.5 + 0 + 3 + 4 = 10.5; sum w^2 = 1 + 4 + 0.25 + 0 + 9 + 16 = 30.25
    assert value.item() == pytest.approx(0.1 * 10.5 + 0.01 * 30.25)
    value.backward()
    # d/dw = l1 * sign(w) + 2 * l2 * w (sign(0) = 0)
    assert torch.allclose(w1.grad, torch.tensor([[0.1 + 0.02, -0.1 - 0.04], [0.1 + 0.01, 0.0]]))
    assert torch.allclose(w2.grad, torch.tensor([[-0.1 - 0.06, 0.1 + 0.08]]))


def test_penalty_gradient_leaves_biases_untouched() -> None:
    net = small_net()
    penalty(list(named_weights(net).values()), 0.1, 0.1).backward()
    for name, p in net.named_parameters():
        if name in named_weights(net):
            assert p.grad is not None and p.grad.abs().sum() > 0
        else:
            assert p.grad is None, name


def test_zero_strengths_give_an_exact_zero() -> None:
    assert penalty(list(named_weights(small_net()).values()), 0.0, 0.0).item() == 0.0


def test_per_sample_scaling_divides_by_n_train() -> None:
    assert strengths(regularizer(l1=0.5, l2=0.2, scale=True), n_train=100) == pytest.approx((0.005, 0.002))
    assert strengths(regularizer(l1=0.5, l2=0.2), n_train=100) == (0.5, 0.2)


def test_weight_statistics() -> None:
    w = [torch.tensor([[3.0, -4.0], [0.0, 0.0005]])]
    stats = weight_statistics(w)
    assert stats["weights/l1"].item() == pytest.approx(7.0005)
    assert stats["weights/l2"].item() == pytest.approx((25 + 0.0005**2) ** 0.5)
    assert stats["weights/sparsity"].item() == pytest.approx(0.5)


def test_gradient_noise_has_the_configured_spread_and_follows_the_seed() -> None:
    def noisy_grad(seed: int) -> torch.Tensor:
        p = nn.Parameter(torch.zeros(20000))
        p.grad = torch.zeros_like(p)
        add_gradient_noise([p], std=0.3, generator=torch.Generator().manual_seed(seed))
        return p.grad

    grad = noisy_grad(1)
    assert grad.std().item() == pytest.approx(0.3, rel=0.03)
    assert abs(grad.mean().item()) < 0.01
    assert torch.equal(grad, noisy_grad(1)) and not torch.equal(grad, noisy_grad(2))
