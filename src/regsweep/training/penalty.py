"""The regularizer group in code: L1/L2 weight penalties, gradient noise and weight statistics.

The penalty is ``l1 * sum|w| + l2 * sum w^2`` over weight matrices and conv kernels only:
biases and normalization parameters are not penalized (shrinking them does not reduce capacity).
Every function works on a pack: tensors carry a leading member axis and strengths are one per member.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from regsweep import metrics
from regsweep.schema import Checked, above, at_least, one_of, require, ruled

PENALTY_TERMS: dict[str, tuple[str, ...]] = {"none": (), "l1": ("l1",), "l2": ("l2",), "l1l2": ("l1", "l2")}


@dataclass
class Strengths(Checked):
    """The lambda each option uses for a term it switches on (``regularizer.strength.l1`` / ``.l2``)."""

    GROUP = "regularizer.strength"
    l1: float = ruled(MISSING, at_least(0))
    l2: float = ruled(MISSING, at_least(0))


@dataclass
class RegularizerConfig(Checked):
    """``regularizer=<name>``: which penalty terms are on and how strong; see conf/regularizer/*.yaml."""

    GROUP = "regularizer"
    name: str = ruled(MISSING, one_of(PENALTY_TERMS))
    strength: Strengths = field(default_factory=Strengths)
    l1: float = ruled(MISSING, at_least(0))
    l2: float = ruled(MISSING, at_least(0))
    scale_by_n_train: bool = MISSING  # divide l1 and l2 by the number of training samples
    l2_half: bool = MISSING  # (l2 / 2) * sum w^2: the gradient is l2 * w (the weight-decay form of some course notes)
    combined_scale: float = ruled(MISSING, above(0))  # with both terms on, each applied times this (0.5: "half of each")
    grad_noise_std: float = ruled(MISSING, at_least(0))  # std of N(0, sigma^2) added to every gradient each step

    def __post_init__(self) -> None:
        super().__post_init__()
        for term in ("l1", "l2"):  # e.g. regularizer=l2 regularizer.l1=1e-4: a mistake for l1l2
            if term not in PENALTY_TERMS[self.name]:
                with_term = " or ".join(f"regularizer={name}" for name, terms in PENALTY_TERMS.items() if term in terms)
                hint = ("use regularizer=l1l2 to combine L1 and L2" if PENALTY_TERMS[self.name]
                        else f"choose {with_term}")
                require(f"regularizer.{term}", getattr(self, term), getattr(self, term) == 0,
                        f"must be 0 with regularizer={self.name}, which has no {term} term; {hint}")

    def applied(self, n_train: int) -> tuple[float, float]:
        """(l1, l2) as the penalty ``l1 * sum|w| + l2 * sum w^2`` applies them, whatever the convention they were
        given in: divided by n_train (per-sample scaling), l2 halved (``l2/2 * sum w^2``), both terms scaled
        when combined ("half of each")."""
        scale = 1.0 / n_train if self.scale_by_n_train else 1.0
        if self.l1 and self.l2:
            scale *= self.combined_scale
        return self.l1 * scale, self.l2 * scale * (0.5 if self.l2_half else 1.0)

    @property
    def convention(self) -> dict[str, bool | float]:
        """The settings that make the applied strengths differ from the nominal ones, as records keep them."""
        return {"scale_by_n_train": self.scale_by_n_train, "l2_half": self.l2_half,
                "combined_scale": self.combined_scale}


class PenaltyStrengths(nn.Module):
    """A net's l1 and l2 per member, [members] each, or None for a term none of them uses (then not computed).

    Buffers, so they go wherever the module goes (Lightning moves it to the training device before
    fit); not persistent: they come from the members' configs, never from a checkpoint.
    """

    def __init__(self, l1: list[float], l2: list[float]) -> None:
        super().__init__()
        self.register_buffer("l1", torch.tensor(l1) if any(l1) else None, persistent=False)
        self.register_buffer("l2", torch.tensor(l2) if any(l2) else None, persistent=False)


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def add_penalty_gradient(weights: list[Tensor], l1: Tensor | None, l2: Tensor | None) -> Tensor:
    """Add the penalty's gradient to each weight's ``.grad`` and return the penalty, per member.

    Per member ``l1 * sum|w| + l2 * sum w^2``: weights are [members, ...], strengths [members]
    (a term no member of the pack uses is None and costs nothing). The gradient
    ``l1 * sign(w) + 2 * l2 * w`` (sign(0) = 0, as autograd's) is added in place: a few passes
    over the weights instead of the many autograd makes through the penalty's graph.
    """
    for w in weights:
        if l1 is not None:
            w.grad.addcmul_(torch.sign(w), _per_member(l1, w))
        if l2 is not None:
            w.grad.addcmul_(w, _per_member(2 * l2, w))
    return penalty_value(weights, l1, l2)


@torch.no_grad()
def penalty_value(weights: list[Tensor], l1: Tensor | None, l2: Tensor | None) -> Tensor:
    """Per member ``l1 * sum|w| + l2 * sum w^2`` over ``weights`` ([members, ...] each); zeros when no term is on."""
    total = weights[0].new_zeros(weights[0].shape[0]).detach()
    for w in weights:
        flat = w.flatten(1)
        if l1 is not None:
            total += l1 * torch.linalg.vector_norm(flat, 1, dim=1)
        if l2 is not None:
            total += l2 * torch.linalg.vector_norm(flat, 2, dim=1).square()
    return total


def add_gradient_noise(gradients: list[Tensor], stds: list[float], generators: list[torch.Generator]) -> None:
    """Add N(0, std_m^2) to member m's slice of every gradient, in place, from member m's own generator."""
    for member, (std, generator) in enumerate(zip(stds, generators)):
        if not std:
            continue
        for grad in gradients:
            noise = torch.randn(grad.shape[1:], generator=generator, device=grad.device, dtype=grad.dtype)
            grad[member].add_(noise, alpha=std)


def _member_sums(tensors: list[Tensor]) -> Tensor:
    """Per member, the sum of its own slices of ``tensors`` ([members, ...] each), one member at a time.

    A slice summed alone rounds the same in any pack; one reduction over the pack's member axis
    rounds by the pack's size, so a member's statistics would differ in the last digits from its job's alone.
    """
    return torch.stack([sum(t[m].sum() for t in tensors) for m in range(tensors[0].shape[0])])


@torch.no_grad()
def weight_statistics(weights: list[Tensor]) -> dict[str, Tensor]:
    """Per member: L1 norm, L2 norm and sparsity at an absolute and a layer-relative threshold, on device."""
    flat = [w.detach().flatten(1) for w in weights]
    squares = [_member_sums([w.pow(2)]) for w in flat]  # per layer and member
    rms = [(sq / w.shape[1]).sqrt().unsqueeze(1) for sq, w in zip(squares, flat)]
    count = sum(w.shape[1] for w in flat)

    def fraction(small: list[Tensor]) -> Tensor:
        return sum(s.sum(1) for s in small).float() / count

    return {
        "weights/l1": _member_sums([w.abs() for w in flat]),
        "weights/l2": sum(squares).sqrt(),
        "weights/sparsity": fraction([w.abs() < metrics.SPARSITY_THRESHOLD for w in flat]),
        "weights/sparsity_1e-5": fraction([w.abs() < metrics.SPARSITY_TINY for w in flat]),
        "weights/sparsity_rel": fraction([w.abs() < metrics.SPARSITY_RELATIVE * r for w, r in zip(flat, rms)]),
    }
