"""Every random stream of a job, derived from its seed in one place.

A job (a member of a pack) owns one :class:`SeedStreams`. Each stream (initialization, batch
order, dropout masks, augmentation draws, gradient noise) gets its own generator, seeded from
``(seed, stream)`` through numpy's SeedSequence, so the streams are independent of each other and
of which other jobs share the process: a job trained alone and the same job trained inside a pack
draw the same numbers. Nothing of the harness uses torch's global generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STREAMS = ("init", "order", "dropout", "augment", "grad_noise")
# Drawn on the CPU whatever the training device (once per job, once per epoch: cheap), so a seed
# starts from the same weights and walks the data in the same order on a CPU and on a GPU; the
# others are drawn where they are used, per minibatch.
HOST_STREAMS = ("init", "order")


@dataclass(frozen=True)
class SeedStreams:
    seed: int

    def seed_of(self, stream: str) -> int:
        """A 63-bit seed for ``stream``, a pure function of (seed, stream)."""
        if stream not in STREAMS:
            raise ValueError(f"unknown random stream {stream!r}; streams are {', '.join(STREAMS)}")
        words = np.random.SeedSequence([self.seed, STREAMS.index(stream)]).generate_state(2, dtype=np.uint32)
        return int(words[0]) << 31 ^ int(words[1])

    def generator(self, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
        """``stream``'s generator on the training ``device``, or on the CPU for HOST_STREAMS."""
        return torch.Generator(device="cpu" if stream in HOST_STREAMS else device).manual_seed(self.seed_of(stream))
