"""HashNet's binarization by continuation (Cao, Long, Wang & Yu, "HashNet: Deep Learning
to Hash by Continuation", ICCV 2017, arXiv:1702.00758; thuml/HashNet), the closest rival
to a scheduled binarization, in its 0/1 form for head-to-head comparisons."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import Step

# HashNet's release raises beta every 200 of its 10,000 iterations (its network.py and
# train.py): beta = (1 + 0.005 * iteration) ** 0.5, from 1 to about 7.1.
HASHNET_STEPS, HASHNET_EVERY, HASHNET_GAMMA = 10_000, 200, 0.005


def hashnet_beta(progress: float) -> float:
    """HashNet's ``beta`` at ``progress`` (0..1) of a run's steps: its schedule over its
    own 10,000 iterations, mapped onto the run's budget, raised in steps of 200."""
    it = min(max(progress, 0.0), 1.0) * HASHNET_STEPS
    it = (it // HASHNET_EVERY) * HASHNET_EVERY
    return (1.0 + HASHNET_GAMMA * it) ** 0.5


class HashNetSigmoid(nn.Module):
    """HashNet's continuation in its 0/1 form: ``sigmoid(2 * beta * x)``, which equals
    ``(tanh(beta * x) + 1) / 2``; plain autograd. ``beta`` follows :func:`hashnet_beta`
    of the training forward passes counted so far (``step``, a buffer, so a resumed run
    continues) over ``total_steps``, which a trainer sets to its budget. Deploys as
    :class:`abrnet.Step` (``[x > 0]``, the sign of HashNet's codes)."""

    def __init__(self, total_steps: int = HASHNET_STEPS) -> None:
        super().__init__()
        self.total_steps = int(total_steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def beta(self) -> float:
        return hashnet_beta(int(self.step) / max(self.total_steps, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.step += 1
        return torch.sigmoid(2.0 * self.beta * x)

    def to_step(self) -> nn.Module:
        return Step()

    def extra_repr(self) -> str:
        return f"beta={self.beta:.3g}, step={int(self.step)}/{self.total_steps}"
