"""Any ``torch.nn.Module`` packed without rewriting it: the members' parameters and buffers stacked, one vmapped call.

``torch.func.stack_module_state`` stacks n members' ordinary modules (each built and initialized on its
own, from its own stream), ``functional_call`` runs a copy of the module on the meta device (its
structure only) with a member's tensors, and ``vmap`` runs it for every member at once. Random ops
in the module (dropout) draw per member (``randomness="different"``) from torch's global generator,
which the job seeds: without them a member trains as it does alone, to float rounding.

A pack of one is not vmapped: the module runs directly on the member's tensors, so a network vmap
cannot batch (in-place updates of an input-shaped buffer, control flow on tensor values) trains alone.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from regsweep.networks.interface import MemberModel, ModelFamily, PackedNetwork, StateCutter, penalizable


def _key(name: str) -> str:
    """A member-module tensor's name as this module's attribute (which cannot hold dots)."""
    return name.replace(".", "__")


class VmapNet(PackedNetwork):
    """n copies of one module class, their tensors stacked: [members, B, ...] in, [members, B, outputs] out."""

    def __init__(self, modules: list[nn.Module], input_dims: int, patterns: list[str], fast_layout: bool = True) -> None:
        super().__init__()
        self.members, self.input_dims, self.patterns = len(modules), input_dims, list(patterns)
        params, buffers = stack_module_state(modules)
        saved = set(modules[0].state_dict())  # a non-persistent buffer is stacked too, but is no member's state
        self.param_names, self.buffer_names = list(params), [name for name in buffers if name in saved]
        # In a pack, a matrix is stored [members, in, out] and handed to the module as its transpose, the [out, in] it
        # made: vmapped products with it contiguous on its inner dimension run up to 1.6x faster, chiefly backward
        # (make bench-vmap). A module that needs its matrices contiguous (weight.view(...)) gets them as made.
        fast = fast_layout and self.members > 1  # alone, torch's own layout is the fast one (no vmap)
        self.transposed = {name for name, value in params.items() if value.dim() == 3} if fast else set()
        for name, value in params.items():
            stored = value.detach().transpose(1, 2).contiguous() if name in self.transposed else value.detach()
            self.register_parameter(_key(name), nn.Parameter(stored))
        for name, value in buffers.items():
            self.register_buffer(_key(name), value, persistent=name in saved)
        self.all_buffers = list(buffers)
        self._skeleton = (copy.deepcopy(modules[0]).to("meta"),)  # a tuple: not a submodule, no tensors of its own

    @property
    def skeleton(self) -> nn.Module:
        return self._skeleton[0]

    def tensors(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The stacked parameters and buffers, by their names in a member's module."""
        return ({name: self._as_made(name, getattr(self, _key(name))) for name in self.param_names},
                {name: getattr(self, _key(name)) for name in self.all_buffers})

    def _as_made(self, name: str, stored: Tensor) -> Tensor:
        """A stacked parameter in the layout of the module that made it (a view of the stored one)."""
        return stored.transpose(1, 2) if name in self.transposed else stored

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.skeleton, (params, buffers), (x,))

    def forward(self, x: Tensor) -> Tensor:
        if self.skeleton.training != self.training:  # dropout and batch norm read the skeleton's flags; Lightning sets
            self.skeleton.train(self.training)  # the flags of the modules it sees (not the skeleton) without .train()
        params, buffers = self.tensors()
        shared = x.dim() == self.input_dims + 1  # one evaluation batch for every member
        if self.members == 1:
            one = {k: v.squeeze(0) for k, v in params.items()}, {k: v.squeeze(0) for k, v in buffers.items()}
            return self._call(*one, x if shared else x[0]).unsqueeze(0)
        batched = vmap(self._call, in_dims=(0, 0, None if shared else 0), randomness="different")
        return batched(params, buffers, x)

    def penalized(self) -> dict[str, Tensor]:
        """The stored parameters (whose gradients the penalty adds to), in whatever layout they are stored."""
        return {name: getattr(self, _key(name)) for name in self.param_names
                if penalizable(name, getattr(self, _key(name))[0], self.patterns)}

    def cutter(self) -> StateCutter:
        names = {_key(name): name for name in [*self.param_names, *self.buffer_names]}
        transposed = set(self.transposed)

        def cut(stacked: dict[str, Tensor], member: int) -> dict[str, Tensor]:
            return {names[key]: (value[member].T if names[key] in transposed else value[member]).detach().contiguous()
                    .clone() for key, value in stacked.items()}

        return cut

    def load_members(self, states: list[dict[str, Tensor]]) -> None:
        stacked = {name: torch.stack([state[name] for state in states])
                   for name in [*self.param_names, *self.buffer_names]}
        self.load_state_dict({_key(name): value.transpose(1, 2) if name in self.transposed else value
                              for name, value in stacked.items()})

    def member_weights(self, member: int) -> dict[str, Tensor]:
        return {name: self._as_made(name, value)[member].detach() for name, value in self.penalized().items()}


def vmap_refusal(family: ModelFamily) -> str | None:
    """Why vmap cannot run a pack of ``family``'s network (its error's first line), or None: a pack of two trains one
    step on two samples, as packs do, and must not raise (an in-place update of a batched value, control flow on a
    tensor's value, an op vmap has no rule for)."""
    generator = torch.Generator()
    for family.fast_layout in (True, False):  # the fast layout, else the matrices as the module made them
        try:
            net = family.pack([MemberModel(0.0, generator, generator)] * 2).train()
            net(torch.zeros(2, 2, *family.input_shape)).sum().backward()
            return None
        except Exception as error:  # whatever vmap refuses, it is said, not guessed at
            refusal = error
    message = str(refusal).strip().splitlines()[0] if str(refusal).strip() else "no message"
    return f"torch.func.vmap cannot batch {family.description} ({type(refusal).__name__}: {message})"
