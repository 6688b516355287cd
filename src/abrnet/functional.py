"""Element-wise maths of the method (docs/method.md), as plain functions of tensors.

``abr`` has a hand-written backward (:class:`_ABRFunction`); everything else is plain
autograd.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# The growth kinds, defined here once: dR/dw = -g * w**-GROWTH_POWER[kind] for w > 0
# (the table in ``growth``). Config choices, the CLI and the tests read this.
GROWTH_POWER = {"log": 1.0, "l1": 2.0, "l2": 3.0}
GROWTH_KINDS = tuple(GROWTH_POWER)


def check_growth_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`GROWTH_KINDS`, else ValueError."""
    if kind not in GROWTH_POWER:
        raise ValueError(f"unknown growth kind {kind!r}: expected one of {', '.join(GROWTH_KINDS)}")
    return kind


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


# Below this many elements the Python cost of a custom autograd Function outweighs
# the memory traffic it saves (crossover measured at 64k on a 2-core CPU).
_FUSED_MIN_NUMEL = 1 << 16


class _ABRFunction(torch.autograd.Function):
    """``clamp(clamp(w, min=floor) * x, 0, 1)`` with the gradients of docs/method.md, fused.

    Plain autograd keeps both ``x`` and ``x * w`` alive for the backward pass and
    runs five full-size kernels there; this saves only the output ``y`` (as ReLU
    does) and runs three. Inside the linear region ``0 < y < 1``, ``dy/dx = w`` and
    ``dy/dw = x = y / w``; outside, both are 0.
    """

    @staticmethod
    def forward(ctx, x: Tensor, slope: Tensor, min_slope: float, channel_dim: int) -> Tensor:
        w = _broadcast(slope.detach().clamp(min=min_slope).to(x.dtype), x, channel_dim)
        y = torch.mul(x, w).clamp_(0.0, 1.0)
        ctx.save_for_backward(y, w, ~(slope.detach() < min_slope))
        ctx.slope_dtype = slope.dtype
        ctx.sum_dims = [d for d in range(x.dim()) if slope.numel() == 1 or d != channel_dim % x.dim()]
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        y, w, above_floor = ctx.saved_tensors
        # hardtanh_backward is one kernel for "grad where 0 < y < 1, else 0".
        g = torch.ops.aten.hardtanh_backward(grad, y, 0.0, 1.0)
        grad_x = g * w if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            # Summed in at least float32 even under bf16 autocast: a slope sees every element.
            acc = torch.promote_types(y.dtype, torch.float32)
            dot = g.mul_(y).sum(ctx.sum_dims, dtype=acc) / w.reshape(-1).to(acc)
            # The floor's gradient: zero under it, passed at and above it (as in abr).
            grad_w = (dot.reshape(above_floor.shape) * above_floor).to(ctx.slope_dtype)
        return grad_x, grad_w, None, None


def abr(x: Tensor, slope: Tensor, channel_dim: int = 1, min_slope: float = 1e-3, floored: bool = False) -> Tensor:
    """Adjustable bounded rectifier ``y = min(1, max(0, w_c * x))``.

    ``slope`` has one element (shared) or one per channel of ``x`` along
    ``channel_dim``; it is used as ``max(slope, min_slope)`` (``min_slope`` > 0). A
    slope under the floor gets no gradient from this term until ``clamp_slopes_``
    lifts it back to the floor (the growth term still pushes it up); at the floor and
    above, it gets the full gradient. The output has ``x``'s dtype (bf16 under
    autocast). ``floored=True`` promises that no slope is under the floor (the ABR
    module knows when ``clamp_slopes_`` has run since the last update), which spares
    small inputs the floor's own kernels: the same values and gradients.
    """
    if not min_slope > 0:
        raise ValueError(f"min_slope must be > 0, got {min_slope}")
    if x.numel() >= _FUSED_MIN_NUMEL and torch.is_grad_enabled() and (x.requires_grad or slope.requires_grad):
        return _ABRFunction.apply(x, slope, float(min_slope), channel_dim)
    # Not clamp(min=): its gradient is 0 at the floor itself, where clamp_slopes_ leaves slopes.
    w = slope if floored else torch.where(slope < min_slope, min_slope, slope)
    if w.dtype != x.dtype:
        w = w.to(x.dtype)
    if not (x.dim() == 2 and channel_dim in (1, -1)) or w.numel() == 1:  # (N, C) broadcasts as it is
        w = _broadcast(w, x, channel_dim)
    return torch.nn.functional.hardtanh(x * w, 0.0, 1.0)


def windowed(
    x: Tensor, w0: float, value: Tensor | None = None, *, width: Tensor | None = None, offset: float = 0.0
) -> Tensor:
    """The surrogate gradient of the binarization schedule: forward, ``value`` (computed
    from ``x`` without a graph, such as an ABR's output) or by default the exact step
    ``[x > 0]``; backward, the gradient of ``clamp(w0 x + 1/2, 0, 1)`` with respect to
    ``x``: ``w0`` inside ``|x| < 1/(2 w0)``, a window centred on the step's threshold, 0
    outside.

    ``width``, a positive 0-dim tensor, replaces ``w0`` by ``1/width``, the window's full
    width, and takes the gradient of ``clamp(x/width + 1/2, 0, 1)`` with respect to it:
    ``-x/width**2`` inside the window (1-bit PACT's gradient on its clip level, centred),
    so the width can be learned.

    ``offset = 1/2`` moves the threshold to the window's middle, ``[x > 1/(2 w0)]``
    (``[x > width/2]``), and the window to ``[0, 1/w0)``: the backward is then that of
    ``clamp(w0 x, 0, 1)``, the bounded rectifier itself, and the step rounds it (the
    schedule's ``rounded`` form; with ``width``, 1-bit PACT's forward and gradients).
    In general the forward is ``[w0 x > offset]``, the backward that of
    ``clamp(w0 x - offset + 1/2, 0, 1)``.

    Built as ``s = hardtanh(w0 x, offset - 1/2, offset + 1/2)``, whose values are then
    overwritten in place through ``s.detach()``: with the step, ``ceil(s - offset)`` (1
    above the threshold, 0 at and below it, written -0), at offset 1/2 ``round(s)`` in one
    kernel (+0); NaN stays NaN, so a NaN loss is still caught; a subnormal ``x`` whose
    ``w0 x`` underflows to 0 gives 0: this is the training forward, and the deployed step
    and the frozen layer in eval compare ``x`` itself. Or with ``value``. Autograd allows
    it because hardtanh's backward reads its input, never its output. Two or three
    built-in kernels forward and two backward, no Python autograd
    Function: on small nets, where a step is bound by per-op dispatch, the fastest of
    the forms measured (docs/benchmarks.md).
    """
    if width is None and not w0 > 0:
        raise ValueError(f"w0 must be > 0, got {w0}")
    if x.numel() >= _FUSED_MIN_NUMEL and (x.requires_grad or (width is not None and width.requires_grad)):
        return _WindowFunction.apply(x, width, float(w0), value, float(offset))
    if width is not None:
        # x * (1/width), not x / width: the same gradients, and its backward makes two
        # passes over x's size where the division's makes four (1.5x faster measured on a
        # conv layer's output here)
        scaled = x * width.reciprocal()
    else:
        # w0 as a cached 0-dim tensor of x's dtype: a Python scalar is wrapped into a new
        # tensor on every call, and one of another dtype is cast in the backward.
        scaled = x * _scalar(float(w0), x.dtype)
    # the window is offset - 1/2 <= w0 x <= offset + 1/2, its step [w0 x > offset]
    s = torch.nn.functional.hardtanh(scaled, offset - 0.5, offset + 0.5)
    out = s.detach()
    if value is not None:
        out.copy_(value)
    else:  # (in place, outside autograd: no node for the step)
        _step_(out, offset)
    return s


def _step_(s: Tensor, offset: float) -> Tensor:
    # [s > offset] in place for s = hardtanh(., offset - 1/2, offset + 1/2), NaN kept. At
    # 1/2 one kernel: in [0, 1] rounding half to even is exactly [s > 1/2] (1/2 -> 0).
    if offset == 0.5:
        return s.round_()
    return (s.sub_(offset) if offset else s).ceil_()


class _WindowFunction(torch.autograd.Function):
    """:func:`windowed` on large inputs: the same values and gradients, with the width's
    gradient as one dot product over the saved ``x / width`` (``-dot(g, x/width) / width``
    inside the window) and only that tensor saved. Plain autograd also keeps ``x`` and
    makes two more passes (the product ``g x`` and its sum); given ``value``, the
    forward is ``value`` itself. Measured on the training step's window at (16, 64, 56,
    56), channels-last: 10.8 ms against 16.1 (ReLU 3.7; docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, x: Tensor, width: Tensor | None, w0: float, value: Tensor | None, offset: float) -> Tensor:
        r = width.detach().reciprocal() if width is not None else _scalar(w0, x.dtype)
        scaled = x * r
        ctx.bounds = (offset - 0.5, offset + 0.5)
        ctx.save_for_backward(scaled, r)
        if value is None:  # the step, as in windowed (NaN kept)
            step = torch.nn.functional.hardtanh(scaled, *ctx.bounds)
            return _step_(step, offset)
        return value if value.dtype == x.dtype else value.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        scaled, r = ctx.saved_tensors
        g = torch.ops.aten.hardtanh_backward(grad, scaled, *ctx.bounds)
        grad_width = None
        if ctx.needs_input_grad[1]:  # d/dwidth of clamp(x r - offset + 1/2) is -x r^2 = -(x r) r inside
            grad_width = (-r * _dot(g, scaled)).to(r.dtype)
        return (g.mul_(r) if ctx.needs_input_grad[0] else None), grad_width, None, None, None


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``sum(a * b)`` in at least float32: one pass and no temporary where both share a
    dense layout (contiguous or channels-last) in float32/64, else the product summed."""
    if a.dtype in (torch.float32, torch.float64) and a.stride() == b.stride():
        if a.is_contiguous():
            return torch.dot(a.view(-1), b.view(-1))
        if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last):
            return torch.dot(a.permute(0, 2, 3, 1).reshape(-1), b.permute(0, 2, 3, 1).reshape(-1))
    return (a * b).sum(dtype=torch.promote_types(a.dtype, torch.float32))


@functools.lru_cache(maxsize=256)
def _scalar(v: float, dtype: torch.dtype) -> Tensor:
    # 0-dim on the CPU: a product takes it as a scalar on any device. Low-precision
    # inputs get float32, as their kernels compute in it (bf16 would round w0).
    # (Made outside inference mode even when first asked for there: a cached inference
    # tensor could not be saved for a later backward.)
    with torch.inference_mode(False):
        return torch.tensor(v, dtype=dtype if dtype in (torch.float32, torch.float64) else torch.float32)


def step(x: Tensor) -> Tensor:
    """Heaviside step ``H(x) = [x > 0]`` in ``x``'s dtype: exactly 0 or 1, 0 at 0.

    Not ``(sign(x) + 1) / 2``, which gives 0.5 at zero (a ternary code). Computed as
    ``sign(relu(x))``, not ``(x > 0).to(x.dtype)``: the same values (0 for NaN too, on
    CPU), but the latter's bool-to-float copy made it 3.5-8.6x slower on CPU at 8k-600k
    elements (measured: docs/benchmarks.md). Detached: a step has no gradient, and
    needs no graph.
    """
    return torch.relu(x.detach()).sign_()


def growth(slope: Tensor, strength: float, kind: str = "log") -> Tensor:
    """The slope-growth penalty R(w) of docs/method.md, summed over ``slope``.

    | kind | R(w)            | dR/dw            |
    | log  | -g * log|w|     | -g / w           |
    | l1   | g / |w|         | -g sign(w) / w^2 |
    | l2   | g / (2 w^2)     | -g / w^3         |
    """
    check_growth_kind(kind)
    w = slope.abs()
    if kind == "log":
        return -strength * torch.log(w).sum()
    if kind == "l1":
        return strength * w.reciprocal().sum()
    return strength * (0.5 * w.pow(-2)).sum()


def binary_penalty(y: Tensor) -> Tensor:
    """``min(y, 1 - y)`` per element: distance of an output to the nearer of 0 and 1."""
    return torch.minimum(y, 1.0 - y)
