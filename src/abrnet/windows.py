"""The learned surrogate windows of :class:`abrnet.BinarizationSchedule`: one width per
ABR, trained by the user's optimizer like the PACT clip level it mirrors, and the rounded
steps' thresholds at their middles (docs/method.md).

The widths are plain tensors, not the model's parameters: the model's ``state_dict``,
its checkpoints and the deployed network stay as they are, and the schedule's own
``state_dict`` carries their values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import ABR


def add_widths(optimizer: torch.optim.Optimizer, abrs: dict[str, ABR], model: nn.Module) -> dict[str, Tensor]:
    """One learnable window width per ABR (1 until :func:`place_widths`), appended to
    ``optimizer``'s first param group. The widths learn by its rule, at its learning rate
    (moved by whatever schedules it) and under its weight decay, as PACT's clip level
    does; a ``GradScaler`` unscales them and the optimizer's checkpoints hold them. Not a
    group of their own: an ``lr_scheduler`` built before it (as Lightning's
    ``configure_optimizers`` builds one) would not schedule it, and ``LambdaLR`` or
    ``OneCycleLR`` would refuse to step; and every group costs a small net's step its own
    pass of the optimizer (docs/benchmarks.md)."""
    if not abrs:
        return {}
    known = [p for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)]
    device = known[0].device if known else None
    width = {n: torch.ones((), device=device, requires_grad=True) for n in abrs}
    optimizer.param_groups[0]["params"].extend(width.values())
    return width


@torch.no_grad()
def place_widths(width: dict[str, Tensor], abrs: dict[str, ABR], values: dict[str, float]) -> None:
    """Set each width to its value, on its ABR's device (a model moved after the
    schedule was built). Before the optimizer has stepped them, so no state is lost."""
    for name, value in values.items():
        slope = abrs[name].slope
        if not isinstance(slope, nn.parameter.UninitializedParameter) and width[name].device != slope.device:
            width[name].data = width[name].data.to(slope.device)
        width[name].fill_(value)


@torch.no_grad()
def place_thresholds(abrs: dict[str, ABR], fixed: dict[str, float]) -> None:
    """Each rounded ABR whose window is ``fixed`` (not learned): its step at the window's
    middle, half the width. (The learned ones move every step: :class:`AfterStep`.)"""
    for name, width in fixed.items():
        abrs[name].threshold.fill_(0.5 * width)


class AfterStep:
    """The learned widths' work after each optimizer step: each clamped to ``min_width``
    (a narrower window would be a slope above the cap) and, for rounded steps, each ABR's
    threshold put back at its width's middle. Three foreach kernels on detached aliases of
    the widths, which need no ``no_grad`` block: on a small net, where a whole step is a
    few hundred µs, the same work under ``no_grad`` with a scalar multiply cost 20-30 µs
    of it (docs/benchmarks.md). Build it again after :func:`place_widths`, which may move
    a width to new storage."""

    def __init__(self, width: dict[str, Tensor], abrs: dict[str, ABR], min_width: float, rounded: bool) -> None:
        self.data = [w.detach() for w in width.values()]  # the same storage as the widths
        self.abrs = [abrs[n] for n in width] if rounded else []
        self.min_width = min_width
        self.halves: list[Tensor] = []

    def __call__(self) -> None:
        torch._foreach_clamp_min_(self.data, self.min_width)
        if self.abrs:
            # looked up each time: moving the model replaces its buffers
            ths = [m._buffers["threshold"] for m in self.abrs]
            if not self.halves or self.halves[0].device != ths[0].device:
                # 0-dim tensors, not the scalar 0.5: that form of the kernel is 3-5x slower here
                self.halves = [torch.full_like(t, 0.5) for t in ths]
            torch._foreach_copy_(ths, self.data)
            torch._foreach_mul_(ths, self.halves)


def average_grads(tensors: list[Tensor]) -> None:
    """Average the gradients of ``tensors`` over the processes of a distributed run, as
    ``DistributedDataParallel`` does for the model's (single process: left as they are).
    Every process runs every ABR, so a missing gradient is a zero one."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    grads = torch.stack([t.grad if t.grad is not None else torch.zeros_like(t) for t in tensors])
    dist.all_reduce(grads)
    grads /= dist.get_world_size()
    for t, g in zip(tensors, grads.unbind()):
        t.grad = g.clone()
