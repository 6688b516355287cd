"""Element-wise maths of the method (METHOD.md), as plain functions of tensors.

Plain autograd is used throughout: ``torch.clamp`` already gives the gradients the
paper states (``dy/dx = w`` and ``dy/dw = x`` inside the linear region, zero where the
output saturates at 0 or 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

GROWTH_KINDS = ("log", "l1", "l2")


def _broadcast(slope: Tensor, x: Tensor, channel_dim: int) -> Tensor:
    # One slope per channel: reshape (C,) so it lines up with x's channel dimension.
    if slope.numel() == 1:
        return slope.reshape(())
    shape = [1] * x.dim()
    shape[channel_dim] = slope.numel()
    return slope.reshape(shape)


def floor_slope(slope: Tensor, min_slope: float) -> Tensor:
    """``max(slope, min_slope)`` in value, identity in gradient.

    The floor keeps ``1/w`` and ``log w`` finite. Passing the gradient straight
    through means a slope that was pushed under the floor still feels the growth
    term and climbs back, instead of being stuck with a zero gradient (the failure of
    PACT's unbounded clip level, which could go negative).
    """
    # slope - slope.detach() is exactly 0 in value and 1 in gradient.
    return slope.detach().clamp(min=min_slope) + (slope - slope.detach())


def abr(x: Tensor, slope: Tensor, channel_dim: int = 1) -> Tensor:
    """Adjustable bounded rectifier ``y = min(1, max(0, w_c * x))``.

    ``slope`` has one element (shared) or one per channel of ``x`` along
    ``channel_dim``.
    """
    return torch.clamp(x * _broadcast(slope, x, channel_dim), 0.0, 1.0)


def step(x: Tensor) -> Tensor:
    """Heaviside step ``H(x) = [x > 0]`` in ``x``'s dtype: exactly 0 or 1, 0 at 0.

    Not ``(sign(x) + 1) / 2``, which gives 0.5 at zero (a ternary code).
    """
    return (x > 0).to(x.dtype)


def growth(slope: Tensor, strength: float, kind: str = "log") -> Tensor:
    """The slope-growth penalty R(w) of METHOD.md, summed over ``slope``.

    | kind | R(w)            | dR/dw            |
    | log  | -g * log|w|     | -g / w           |
    | l1   | g / |w|         | -g sign(w) / w^2 |
    | l2   | g / (2 w^2)     | -g / w^3         |
    """
    w = slope.abs()
    if kind == "log":
        return -strength * torch.log(w).sum()
    if kind == "l1":
        return strength * w.reciprocal().sum()
    if kind == "l2":
        return strength * (0.5 * w.pow(-2)).sum()
    raise ValueError(f"unknown growth kind {kind!r}: expected one of {', '.join(GROWTH_KINDS)}")


def binary_penalty(y: Tensor) -> Tensor:
    """``min(y, 1 - y)`` per element: distance of an output to the nearer of 0 and 1."""
    return torch.minimum(y, 1.0 - y)
