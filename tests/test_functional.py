"""Element-wise maths: gradients against docs/method.md, and properties under hypothesis."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from abrnet import functional as F

finite = st.floats(-1024.0, 1024.0, allow_nan=False, allow_infinity=False, width=32)
slopes = st.floats(0.015625, 1024.0, allow_nan=False, width=32)


@given(x=st.lists(finite, min_size=1, max_size=64), w=slopes)
def test_abr_output_in_unit_interval(x, w):
    y = F.abr(torch.tensor(x), torch.tensor([w]))
    assert bool(((y >= 0) & (y <= 1)).all())


@given(a=finite, b=finite, w=slopes)
def test_abr_is_monotone_in_x(a, b, w):
    lo, hi = min(a, b), max(a, b)
    y = F.abr(torch.tensor([lo, hi]), torch.tensor([w]))
    assert y[0] <= y[1]


@given(x=st.lists(finite, min_size=1, max_size=64), w=slopes)
def test_abr_equals_step_outside_linear_region(x, w):
    x = torch.tensor(x, dtype=torch.float64)
    w = torch.tensor([w], dtype=torch.float64)
    y = F.abr(x, w)
    outside = x.abs() >= 1 / w
    assert torch.equal(y[outside], F.step(x)[outside])


@given(x=st.lists(finite, min_size=1, max_size=64),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]))  # fmt: skip
def test_step_is_exactly_binary_and_zero_at_zero(x, dtype):
    specials = [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45]
    x = torch.tensor(x + specials).to(dtype).requires_grad_()
    y = F.step(x)
    assert y.dtype == x.dtype and not y.requires_grad
    assert not y.signbit().any()  # +0.0 and 1.0 only: no -0.0 left for a bitwise packer
    assert torch.equal(y, (x > 0).to(dtype))  # NaN -> 0, as a comparison gives
    assert y[-6] == 0 and y[-5] == 0  # not sign(0) -> 0.5


def _table_grad(kind: str, w: np.ndarray, g: float) -> np.ndarray:
    # docs/method.md's gradient column, written independently of the implementation.
    return {"log": -g / w, "l1": -g * np.sign(w) / w**2, "l2": -g / w**3}[kind]


def _table_value(kind: str, w: np.ndarray, g: float) -> float:
    return float({"log": -g * np.log(np.abs(w)), "l1": g / np.abs(w), "l2": g / (2 * w**2)}[kind].sum())


@pytest.mark.parametrize("kind", F.GROWTH_KINDS)
@given(w=st.lists(st.floats(1e-2, 1e2), min_size=1, max_size=16), g=st.floats(0, 10))
@settings(max_examples=50)
def test_growth_value_and_gradient_match_method_table(kind, w, g):
    w_np = np.array(w)
    slope = torch.tensor(w_np, requires_grad=True)
    value = F.growth(slope, g, kind)
    value.backward()
    assert math.isclose(value.item(), _table_value(kind, w_np, g), rel_tol=1e-9, abs_tol=1e-9)
    np.testing.assert_allclose(slope.grad.numpy(), _table_grad(kind, w_np, g), rtol=1e-9, atol=1e-12)


def test_growth_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown growth kind"):
        F.growth(torch.ones(3), 1.0, "l3")


def _away_from_kinks(x, w, channel_dim):
    # gradcheck uses finite differences: keep w*x off the kinks at 0 and 1.
    wx = x * F._broadcast(w, x, channel_dim)
    bad = ((wx.abs() < 0.05) | ((wx - 1).abs() < 0.05)).to(x.dtype)
    return x + bad * 0.2


@pytest.mark.parametrize("shape,channel_dim", [((4, 5), 1), ((3, 5, 7), 1), ((2, 5, 3, 3), 1), ((2, 3, 3, 5), -1)])
@pytest.mark.parametrize("shared", [False, True])
def test_gradcheck_input_and_slopes(shape, channel_dim, shared):
    torch.manual_seed(0)
    c = 1 if shared else shape[channel_dim]
    w = (torch.rand(c, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    x = _away_from_kinks(torch.randn(shape, dtype=torch.float64), w.detach(), channel_dim).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: F.abr(x, w, channel_dim), (x, w))


def test_gradients_are_those_of_method_md():
    x = torch.tensor([-1.0, 0.25, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    F.abr(x, w).sum().backward()
    # inside 0 < w x < 1: dy/dx = w, dy/dw = x; saturated: 0
    assert x.grad.tolist() == [0.0, 1.5, 1.5, 0.0]
    assert w.grad.item() == pytest.approx(0.25 + 0.5)


def test_floor_slope_keeps_value_and_passes_gradient():
    w = torch.tensor([-1.0, 1e-6, 2.0], requires_grad=True)
    v = F.floor_slope(w, 1e-3)
    assert v.tolist() == pytest.approx([1e-3, 1e-3, 2.0])
    v.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0]


def test_binary_penalty_gradient_signs():
    y = torch.tensor([0.2, 0.8], requires_grad=True)
    F.binary_penalty(y).sum().backward()
    assert y.grad.tolist() == [1.0, -1.0]


def _plain_abr(x, w, channel_dim, min_slope):
    # The definition in plain autograd: clamp(max(w, floor) * x, 0, 1), where the floor
    # passes the gradient at and above it.
    w = torch.where(w < min_slope, torch.full_like(w, min_slope), w)
    return torch.clamp(x * F._broadcast(w, x, channel_dim), 0.0, 1.0)


@pytest.mark.parametrize(
    "shape,channel_dim", [((6, 10), 1), ((64, 1100), 1), ((8, 16, 24, 24), 1), ((8, 24, 24, 16), -1)]
)
@pytest.mark.parametrize("shared", [False, True])
def test_both_paths_match_plain_autograd(shape, channel_dim, shared):
    # Small inputs take plain ops, large ones the fused autograd Function: both give
    # the definition's values and gradients, including slopes under and at the floor.
    torch.manual_seed(0)
    c = 1 if shared else shape[channel_dim]
    w0 = torch.rand(c, dtype=torch.float64) * 2 + 0.5
    if not shared:
        w0[0], w0[1] = 1e-4, 1e-3  # under and at the floor
    x0 = _away_from_kinks(torch.randn(shape, dtype=torch.float64), w0.clamp(min=1e-3), channel_dim)
    g = torch.randn(shape, dtype=torch.float64)
    results = []
    for fn in (lambda x, w: F.abr(x, w, channel_dim, 1e-3), lambda x, w: _plain_abr(x, w, channel_dim, 1e-3)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        y = fn(x, w)
        y.backward(g)
        results.append((y.detach(), x.grad, w.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    if not shared:
        assert results[0][2][0] == 0 and results[0][2][1] != 0


def test_fused_path_saves_only_the_output():
    # Training memory per ABR equals ReLU's: one activation-sized tensor kept for backward.
    x = torch.randn(4, 32, 32, 32, requires_grad=True)
    w = torch.rand(32, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        F.abr(x, w)
    assert sum(saved) <= x.numel() + 2 * w.numel()


def test_fused_path_under_bf16_keeps_dtype_and_float32_slope_grad():
    x = torch.randn(16, 64, 16, 16, dtype=torch.bfloat16, requires_grad=True)
    w = torch.full((64,), 2.0, requires_grad=True)
    y = F.abr(x, w)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    inside = ((x.detach().float() * 2 > 0) & (x.detach().float() * 2 < 1)).float()
    expected = (x.detach().float() * inside).sum((0, 2, 3))
    torch.testing.assert_close(w.grad, expected, rtol=1e-2, atol=1e-2)


@settings(deadline=None)  # the first call is slow on a busy machine
@given(x=st.lists(finite, min_size=1, max_size=64), g=st.lists(finite, min_size=64, max_size=64), w0=slopes,
       dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16]))  # fmt: skip
def test_windowed_passes_the_step_or_a_value_and_the_centred_clamps_gradient(x, g, w0, dtype):
    # Forward exactly the step (or the value) in every dtype: value + (s - s.detach()) adds an exact 0.
    # The step of w0 x: [x > 0] except where w0 x underflows to 0 (x under ~1e-38 / w0 in float32).
    x = torch.tensor(x, dtype=dtype, requires_grad=True)
    g = torch.tensor(g[: len(x)], dtype=dtype)
    value = F.step(x.detach() * w0)
    y = F.windowed(x, w0)
    assert torch.equal(y, value)
    other = torch.rand_like(value)  # any other value: forward as given, the same backward
    assert torch.equal(F.windowed(x, w0, other), other)
    (got,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(torch.autograd.grad(F.windowed(x, w0, other), x, g)[0], got)
    # the surrogate's own gradient, off its two kinks (where clamp's side is a convention,
    # and where rounding x * w0 + 1/2 in x's dtype may move a point across)
    (want,) = torch.autograd.grad(torch.clamp(x * w0 + 0.5, 0.0, 1.0), x, g)
    off_kinks = ((x.detach().double() * w0).abs() - 0.5).abs() > 4 * torch.finfo(dtype).eps
    torch.testing.assert_close(got[off_kinks], want[off_kinks])
    # Rounded (offset 1/2): the step [w0 x > 1/2], one rounding kernel; -0 only where w0 x is -0.
    rounded, scaled = F.windowed(x, w0, offset=0.5), x.detach() * w0
    assert torch.equal(rounded, F.step(scaled - 0.5))
    assert torch.equal(rounded.signbit(), (scaled == 0) & scaled.signbit())


def test_windowed_first_called_under_inference_mode_still_trains_after():
    # w0 is cached as a tensor: one made under inference_mode could not be saved for backward.
    x = torch.randn(5)
    with torch.inference_mode():
        F.windowed(x, 1.2345)
    x.requires_grad_()
    F.windowed(x, 1.2345).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("offset", [0.0, 0.5], ids=["centred", "rounded"])
def test_windowed_lets_nan_through_so_a_nan_loss_is_still_caught(offset):
    # The step maps NaN to 0; the training form must not hide a diverged layer upstream.
    x = torch.tensor([float("nan"), -1.0, 2.0], requires_grad=True)
    y = F.windowed(x, 1.5, offset=offset)
    assert y[0].isnan() and y[1:].tolist() == [0.0, 1.0]
    assert torch.isnan(y.sum()) and y.grad_fn is not None


@pytest.mark.parametrize("offset", [0.0, 0.5], ids=["centred", "rounded"])
@pytest.mark.parametrize("fused", [False, True], ids=["autograd", "function"])
def test_windowed_width_gradients_are_the_clamps_in_x_and_in_the_width(fused, offset, monkeypatch):
    # With a learnable width the backward is clamp(x / width - offset + 1/2, 0, 1)'s in
    # both inputs: 1/width on x inside the window, and -x/width**2 on the width, summed.
    # Centred (offset 0): the window |x| < width/2 about the step [x > 0]. Rounded (1/2):
    # the window [0, width), the bounded rectifier's own, about the step [x > width/2]:
    # 1-bit PACT's forward and gradients. Large inputs take the fused Function: here every input does.
    if fused:
        monkeypatch.setattr(F, "_FUSED_MIN_NUMEL", 0)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(40, generator=g, dtype=torch.float64) - 0.5) * 3
    width = torch.tensor(1.3, dtype=torch.float64)
    x = x[((x / width - offset).abs() - 0.5).abs() > 1e-3].requires_grad_()  # off the kinks
    width.requires_grad_()

    # given the surrogate's own values as the forward, the op is hardtanh(x / width - offset): gradcheck applies
    def own(a, w):
        value = torch.nn.functional.hardtanh(a / w - offset, -0.5, 0.5).detach()
        return F.windowed(a, 0.0, value, width=w, offset=offset)

    assert torch.autograd.gradcheck(own, (x, width))
    y = F.windowed(x, 0.0, width=width, offset=offset)
    assert torch.equal(y, F.step(x.detach() - offset * width.detach()))  # the step at offset * width
    got = torch.autograd.grad(y.sum(), (x, width))
    want = torch.autograd.grad(torch.clamp(x / width - offset + 0.5, 0.0, 1.0).sum(), (x, width))
    torch.testing.assert_close(got, want)
    inside = (x.detach() / width.detach() - offset).abs() < 0.5
    assert inside.any() and not inside.all() and got[1].item() != 0.0
    if offset:  # the bounded rectifier clamp(x / width, 0, 1) itself, PACT's window
        want = torch.autograd.grad(torch.clamp(x / width, 0.0, 1.0).sum(), (x, width))
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("offset", [0.0, 0.5], ids=["centred", "rounded"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_windowed_on_large_inputs_matches_the_small_inputs_path(layout, dtype, offset):
    # Above _FUSED_MIN_NUMEL the window is one autograd Function; below, built-in ops.
    # Both give the same values and gradients, with and without a value, in every layout.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 64, 16, 16, generator=g).to(dtype)  # 65,536 elements: the Function
    assert x0.numel() >= F._FUSED_MIN_NUMEL
    if layout == "channels_last":
        x0 = x0.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x0 = x0.transpose(2, 3)
    grad = torch.randn(x0.shape, generator=g).to(dtype)
    value = F.abr(x0, torch.full((64,), 3.0)).detach()
    for v in (None, value):
        got, want = [], []
        for out, small in ((got, False), (want, True)):
            x = x0.detach().clone().requires_grad_()
            width = torch.tensor(0.9, requires_grad=True)
            if small:  # the same maths through the built-in ops, in 16 pieces under the threshold
                y = torch.cat([F.windowed(p, 0.0, None if v is None else q, width=width, offset=offset)
                               for p, q in zip(x.chunk(16), (v if v is not None else x).chunk(16))])  # fmt: skip
            else:
                y = F.windowed(x, 0.0, v, width=width, offset=offset)
                assert type(y.grad_fn).__name__ == "_WindowFunctionBackward"
            y.backward(grad)
            out += [y.detach(), x.grad, width.grad]
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        tol = 1e-5 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(got[2], want[2], rtol=tol, atol=tol)
        assert got[2].dtype == torch.float32 and got[2].item() != 0.0
    # the fixed window (no width) takes the same Function
    x = x0.detach().clone().requires_grad_()
    y = F.windowed(x, 1.5, offset=offset)
    y.backward(grad)
    ref = x0.detach().clone().requires_grad_()
    torch.cat([F.windowed(p, 1.5, offset=offset) for p in ref.chunk(16)]).backward(grad)
    assert torch.equal(y, torch.cat([F.windowed(p, 1.5, offset=offset) for p in x0.chunk(16)]))
    assert torch.equal(x.grad, ref.grad)
    if not offset:
        assert torch.equal(y, F.step(x0).to(dtype))
