"""Weight penalties, gradient noise and weight statistics: the regularizer group in code.

The penalty is ``l1 * sum|w| + l2 * sum w^2`` over weight matrices and conv kernels only:
biases and normalization parameters are not penalized (shrinking them does not reduce capacity).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regsweep.config import RegularizerConfig

PENALIZED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SPARSITY_THRESHOLD = 1e-3  # |w| below this counts as zero in the sparsity statistic


def named_weights(model: nn.Module) -> dict[str, Tensor]:
    """The penalized tensors: ``weight`` of every linear and conv layer, keyed by parameter name."""
    return {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, PENALIZED_LAYERS)
    }


def strengths(cfg: RegularizerConfig, n_train: int) -> tuple[float, float]:
    """(l1, l2) as applied: divided by n_train when the per-sample scaling of some course notes is on."""
    scale = 1.0 / n_train if cfg.scale_by_n_train else 1.0
    return cfg.l1 * scale, cfg.l2 * scale


def penalty(weights: list[Tensor], l1: float, l2: float) -> Tensor:
    """l1 * sum|w| + l2 * sum w^2, differentiable; an exact zero tensor when both are off."""
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + l2 * w.pow(2).sum()
    return total


def add_gradient_noise(parameters: list[Tensor], std: float, generator: torch.Generator) -> None:
    """Add N(0, std^2) to every gradient in place (gradient-noise regularization)."""
    for p in parameters:
        if p.grad is not None:
            noise = torch.randn(p.grad.shape, generator=generator, device=p.grad.device, dtype=p.grad.dtype)
            p.grad.add_(noise, alpha=std)


@torch.no_grad()
def weight_statistics(weights: list[Tensor]) -> dict[str, Tensor]:
    """L1 norm, L2 norm and sparsity (fraction of |w| < 1e-3) over all penalized weights, on device."""
    flat = torch.cat([w.detach().reshape(-1) for w in weights])
    return {
        "weights/l1": flat.abs().sum(),
        "weights/l2": flat.pow(2).sum().sqrt(),
        "weights/sparsity": (flat.abs() < SPARSITY_THRESHOLD).float().mean(),
    }
