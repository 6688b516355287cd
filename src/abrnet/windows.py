"""The learned surrogate windows of :class:`abrnet.BinarizationSchedule`: one width per
ABR, trained by the user's optimizer like the PACT clip level it mirrors (docs/method.md).

The widths are plain tensors, not the model's parameters: the model's ``state_dict``,
its checkpoints and the deployed network stay as they are, and the schedule's own
``state_dict`` carries their values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import ABR


def add_widths(optimizer: torch.optim.Optimizer, abrs: dict[str, ABR], model: nn.Module) -> dict[str, Tensor]:
    """One learnable window width per ABR (1 until :func:`place_widths`), added to
    ``optimizer`` as the param group ``"windows"``: the base learning rate (the first
    group's ``lr`` over its ``lr_mult``), no weight decay, the optimizer's other
    defaults. Being in the optimizer, the widths follow its rule, its learning rate
    changes, a ``GradScaler``'s unscaling and its checkpoints."""
    if not abrs:
        return {}
    known = [p for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)]
    device = known[0].device if known else None
    width = {n: torch.ones((), device=device, requires_grad=True) for n in abrs}
    first = optimizer.param_groups[0]
    lr = first["lr"] / first.get("lr_mult", 1.0)
    optimizer.add_param_group({"params": list(width.values()), "lr": lr, "lr_mult": 1.0,
                               "weight_decay": 0.0, "name": "windows"})  # fmt: skip
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
