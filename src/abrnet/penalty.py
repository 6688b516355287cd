"""Model-level terms: the slope-growth penalty, the binary loss, optimizer groups."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter

from . import functional as F
from .layers import ABR


def abr_layers(model: nn.Module) -> Iterator[tuple[str, ABR]]:
    """``(name, module)`` for every ABR in ``model``, in registration order."""
    for name, m in model.named_modules():
        if isinstance(m, ABR):
            yield name, m


def growth_penalty(model: nn.Module, strength: float, kind: str = "log") -> Tensor:
    """``sum_layers growth_mult * sum_c R(w_c)`` over all ABR slopes (docs/method.md).

    Adding it to the loss pushes every slope up, opposite to weight decay. Lazy
    layers that have not seen an input yet are skipped. Training loops that only
    need its gradient can call :func:`add_growth_grad_` after ``backward()`` instead
    (cheaper; the engine does).
    """
    _check_growth(strength, kind)
    total = None
    for m in _materialised(model):
        if m.growth_mult == 0:
            continue
        term = F.growth(m.effective_slope(), strength * m.growth_mult, kind)
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def binary_loss(model: nn.Module) -> Tensor:
    """Sum of the optional ``lambda * min(y, 1 - y)`` terms from the last forward pass.

    Only layers built with ``binary_loss > 0`` contribute; each layer's term is
    summed over units and averaged over the batch. Zero when none is enabled.
    """
    terms = [m.last_binary_loss for _, m in abr_layers(model) if m.binary_loss > 0 and m.last_binary_loss is not None]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def _check_growth(strength: float, kind: str) -> None:
    if strength < 0:
        raise ValueError(f"growth strength must be >= 0, got {strength}")
    F.check_growth_kind(kind)


@torch.no_grad()
def add_growth_grad_(model: nn.Module, strength: float, kind: str = "log") -> None:
    """Add the gradient of :func:`growth_penalty` to every slope's ``.grad``.

    The same update as adding the penalty to the loss before ``backward()``, but
    with a few ``_foreach`` kernels for all layers instead of an autograd graph per
    layer, which cost up to a third of a small net's step. Call it after
    ``backward()`` and before ``optimizer.step()``; under DDP every rank adds the same
    term to its already averaged gradient. Slopes without a ``.grad`` took no part in
    the loss (a layer frozen into its step, an unused branch) and are left alone.
    """
    _check_growth(strength, kind)
    if strength == 0:
        return
    layers = [m for m in _materialised(model) if m.growth_mult > 0 and m.slope.grad is not None]
    if not layers:
        return
    # dR/dw at the floored slope, passed straight through the floor (floor_slope). A
    # slope clamped since its last update is its own floored value (ABR.floored_at).
    w = [m.slope if m.floored_at == (m.slope._version, m.min_slope) else m.slope.clamp_min(m.min_slope) for m in layers]
    power = F.GROWTH_POWER[kind]
    dw = torch._foreach_reciprocal(w) if power == 1 else torch._foreach_pow(w, -power)  # (reciprocal: 2x faster)
    mults = {m.growth_mult for m in layers}
    if len(mults) == 1:  # (the usual case: the product folds into the addition)
        torch._foreach_add_([m.slope.grad for m in layers], dw, alpha=-strength * mults.pop())
    else:
        torch._foreach_mul_(dw, [-strength * m.growth_mult for m in layers])
        torch._foreach_add_([m.slope.grad for m in layers], dw)


@torch.no_grad()
def clamp_slopes_(model: nn.Module) -> None:
    """Keep every stored slope at or above its layer's floor (after ``optimizer.step``)."""
    clamp_layers_(_materialised(model))


def _materialised(model: nn.Module) -> list[ABR]:
    # (A type test, not has_uninitialized_params(): that walks every parameter and buffer.)
    return [m for m in model.modules() if isinstance(m, ABR) and not isinstance(m.slope, UninitializedParameter)]


@torch.no_grad()
def clamp_layers_(layers: Sequence[ABR], moved_only: bool = False) -> None:
    """:func:`clamp_slopes_` on given (materialised) ABRs, in one kernel launch.
    ``moved_only`` skips the layers whose slope and floor are those of their last clamp
    (in-place updates bump a tensor's version; writes through ``.data`` do not): a
    schedule's frozen slopes, which take no gradient, then cost nothing per step."""
    if moved_only:
        layers = [m for m in layers if m.floored_at != (m.slope._version, m.min_slope)]
    if layers:
        torch._foreach_clamp_min_([m.slope for m in layers], [m.min_slope for m in layers])
        for m in layers:  # (into __dict__: nn.Module's __setattr__ costs more than the clamp)
            m.__dict__["floored_at"] = (m.slope._version, m.min_slope)


# The reference recipes used a 10x slope learning rate on small nets and 1x on AlexNet.
SLOPE_LR_MULT = 10.0


def param_groups(
    model: nn.Module, lr: float, weight_decay: float = 0.0, slope_lr_mult: float = SLOPE_LR_MULT
) -> list[dict]:
    """Optimizer parameter groups: slopes get ``lr * slope_lr_mult`` and no weight decay.

    Each group keeps its multiplier as ``"lr_mult"``, so :func:`set_lr_` can move the
    base rate of every group at once. Decaying a slope would fight the growth term.
    Call after lazy layers have seen an input.
    """
    slopes = [m.slope for _, m in abr_layers(model)]
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in slopes):
        raise RuntimeError("model has lazy ABR layers: run one forward pass before building the optimizer")
    ids = {id(p) for p in slopes}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": rest, "lr": lr, "lr_mult": 1.0, "weight_decay": weight_decay, "name": "weights"}]
    if slopes:
        groups.append(
            {
                "params": slopes,
                "lr": lr * slope_lr_mult,
                "lr_mult": slope_lr_mult,
                "weight_decay": 0.0,
                "name": "slopes",
            }
        )
    return groups


def set_lr_(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the base learning rate: each group gets ``lr`` times its ``"lr_mult"``
    (1 for groups that :func:`param_groups` did not make)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
