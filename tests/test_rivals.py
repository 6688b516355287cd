"""Rival 1-bit activations: forward values, straight-through gradients, deploy forms."""

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn

import abrnet
from abrnet import rivals as R

finite = st.floats(-1024.0, 1024.0, allow_nan=False, allow_infinity=False, width=32)
xs = st.lists(finite, min_size=1, max_size=64)
alphas = st.floats(0.015625, 64.0, width=32)
BINARY = ("ste", "dorefa", "pact")  # already 0/1 in the training forward pass


def _pact(alpha: float = 2.0) -> R.PACT:
    return R.PACT(init_alpha=alpha)


# --- forward ----------------------------------------------------------------------


class TestForward:
    def test_ste_hand_values(self):
        x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, 0.5, 3.0])
        assert R.ste_heaviside(x).tolist() == [0, 0, 0, 1, 1, 1]

    def test_dorefa_hand_values_threshold_half(self):
        x = torch.tensor([-1.0, 0.0, 0.25, 0.5, 0.5000001, 0.75, 1.0, 5.0])
        assert R.dorefa(x).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]

    def test_pact_hand_values_threshold_half_alpha(self):
        x = torch.tensor([-1.0, 0.0, 0.9, 1.0, 1.1, 2.0, 7.0])
        assert R.pact(x, torch.tensor([2.0])).tolist() == [0, 0, 0, 0, 1, 1, 1]

    def test_sigmoid_hand_values(self):
        x = torch.tensor([-1.0, 0.0, 2.0])
        assert torch.allclose(R.sigmoid_binary(x), torch.tensor([0.26894142, 0.5, 0.88079708]))

    @pytest.mark.parametrize("method", BINARY)
    @given(x=xs)
    @settings(max_examples=30, deadline=None)
    def test_binary_outputs_are_exactly_0_or_1_in_input_dtype(self, method, x):
        act = R.make_activation(method, init_alpha=1.5) if method == "pact" else R.make_activation(method)
        for dtype in (torch.float32, torch.float64):
            y = act(torch.tensor(x, dtype=dtype))
            assert y.dtype == dtype
            assert set(y.unique().tolist()) <= {0.0, 1.0}

    @given(x=xs)
    def test_ste_is_step(self, x):
        x = torch.tensor(x + [0.0, -0.0])
        assert torch.equal(R.ste_heaviside(x), abrnet.functional.step(x))

    @given(x=xs)
    def test_dorefa_equals_round_of_clip(self, x):
        x = torch.tensor(x + [0.5, 0.0, 1.0])
        assert torch.equal(R.dorefa(x), torch.round(torch.clamp(x, 0, 1)))

    @given(x=xs, alpha=alphas)
    def test_pact_equals_threshold_at_half_alpha(self, x, alpha):
        x = torch.tensor(x + [alpha / 2, alpha])
        assert torch.equal(R.pact(x, torch.tensor([alpha])), (x > alpha / 2).float())

    @given(x=st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=32))
    def test_pact_equals_paper_quantiser_normalised(self, x):
        # alpha = 1 makes clamp(x, 0, alpha) / alpha exact, so the paper's formula applies as is
        x = torch.tensor(x)
        assert torch.equal(R.pact(x, torch.tensor([1.0])), torch.round(torch.clamp(x, 0, 1)))

    @given(x=st.lists(st.floats(-15.0, 15.0, width=32), min_size=1, max_size=64))
    def test_sigmoid_in_open_unit_interval(self, x):
        y = R.sigmoid_binary(torch.tensor(x))
        assert bool(((y > 0) & (y < 1)).all())

    def test_pact_floor_keeps_alpha_positive(self):
        act = _pact()
        with torch.no_grad():
            act.alpha.fill_(-3.0)
        assert act.effective_alpha().item() == pytest.approx(act.min_alpha)
        assert act(torch.tensor([0.0, 1e-2])).tolist() == [0, 1]  # threshold min_alpha / 2


# --- backward ---------------------------------------------------------------------


def _grad(fn, x, *params):
    x = x.clone().requires_grad_(True)
    fn(x, *params).backward(torch.arange(1.0, len(x) + 1, dtype=x.dtype))
    return x.grad


class TestBackward:
    def test_ste_window_default_clip_is_inclusive(self):
        x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
        assert _grad(R.ste_heaviside, x).tolist() == [0, 2, 3, 4, 5, 6, 0]

    def test_ste_window_follows_clip_value(self):
        x = torch.tensor([-0.6, -0.5, 0.25, 0.5, 0.6])
        assert _grad(R.ste_heaviside, x, 0.5).tolist() == [0, 2, 3, 4, 0]
        act = R.SteHeaviside(clip_value=3.0)
        assert _grad(lambda t: act(t), torch.tensor([-3.0, 2.9, 3.1])).tolist() == [1, 2, 0]

    def test_dorefa_window_is_closed_unit_interval(self):
        x = torch.tensor([-0.1, 0.0, 0.3, 0.5, 0.7, 1.0, 1.1])
        assert _grad(R.dorefa, x).tolist() == [0, 2, 3, 4, 5, 6, 0]

    def test_pact_hand_gradients(self):
        # alpha = 2: d/dx = 1/2 on [0, 2); d/dalpha = -sum g x / 4 over [0, 2)
        x = torch.tensor([-1.0, 0.0, 1.0, 1.5, 2.0, 3.0], requires_grad=True)
        alpha = torch.tensor([2.0], requires_grad=True)
        g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        R.pact(x, alpha).backward(g)
        assert x.grad.tolist() == [0, 1.0, 1.5, 2.0, 0, 0]
        assert alpha.grad.tolist() == [-(3 * 1.0 + 4 * 1.5) / 4]

    @given(x=st.lists(st.floats(-8.0, 8.0), min_size=1, max_size=32), alpha=st.floats(0.25, 4.0))
    @settings(max_examples=50, deadline=None)
    def test_pact_gradient_equals_autograd_of_ste_expansion(self, x, alpha):
        # PACT's STE, y_q ~ y = clamp(x, 0, alpha), so y_q / alpha ~ clamp(x, 0, alpha) / alpha
        x = torch.tensor(x, dtype=torch.float64)
        x = x[(x != 0) & (x != alpha)]  # autograd splits ties at the kinks; the windows are documented
        g = torch.linspace(-1.0, 2.0, len(x), dtype=torch.float64)
        grads = []
        for fn in (R.pact, lambda t, a: torch.clamp(t, torch.zeros_like(a), a) / a):
            xi = x.clone().requires_grad_(True)
            a = torch.tensor([alpha], dtype=torch.float64, requires_grad=True)
            fn(xi, a).backward(g)
            grads.append((xi.grad, a.grad))
        assert torch.allclose(grads[0][0], grads[1][0])
        assert torch.allclose(grads[0][1], grads[1][1])

    def test_pact_module_alpha_gets_gradient_through_floor(self):
        act = _pact(2.0)
        act(torch.tensor([1.0, 3.0])).sum().backward()
        assert act.alpha.grad.tolist() == [-0.25]
        act.zero_grad()
        with torch.no_grad():
            act.alpha.fill_(-1.0)  # under the floor: value min_alpha, gradient still reaches alpha
        act(torch.tensor([5e-4])).sum().backward()
        assert act.alpha.grad.item() == pytest.approx(-5e-4 / act.min_alpha**2)

    def test_pact_float32_alpha_float64_input(self):
        act = _pact(2.0)
        x = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
        y = act(x)
        y.sum().backward()
        assert y.dtype == torch.float64 and act.alpha.grad.dtype == torch.float32

    def test_sigmoid_gradcheck(self):
        x = torch.randn(16, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
        assert torch.autograd.gradcheck(R.sigmoid_binary, (x,))


# --- deploy -----------------------------------------------------------------------


def _mlp(method: str) -> nn.Sequential:
    kw = {"init_alpha": 1.0} if method == "pact" else {}
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16), R.make_activation(method, 16, **kw),
        nn.Linear(16, 16), R.make_activation(method, 16, **kw),
        nn.Linear(16, 3),
    )  # fmt: skip


def _record(model: nn.Module, names: list[str], x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, (i[0], o))) for n in names
    ]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, seen


DEPLOYABLE = tuple(m for m in R.METHODS if m != "relu")


class TestDeploy:
    @pytest.mark.parametrize("method", DEPLOYABLE)
    def test_binary_layers_lists_each_activation(self, method):
        assert abrnet.binary_layers(_mlp(method)) == ["1", "3"]

    @pytest.mark.parametrize("method", DEPLOYABLE)
    def test_binarize_gives_exact_bits_at_every_replaced_layer(self, method):
        model = _mlp(method)
        x = torch.randn(64, 6, generator=torch.Generator().manual_seed(1)) * 3
        model.eval()(x)  # materialise the lazy ABR
        deployed = abrnet.binarize(model, "all")
        assert not any(isinstance(m, (R.SteHeaviside, R.DoReFa, R.PACT, R.SigmoidBinary)) for m in deployed.modules())
        _, seen = _record(deployed, ["1", "3"], x)
        for _, y in seen.values():
            assert y.dtype == x.dtype
            assert set(y.unique().tolist()) <= {0.0, 1.0}
            assert 0 < y.mean() < 1  # a non-trivial code at this scale

    @pytest.mark.parametrize("method", BINARY)
    def test_deployed_equals_trained_eval_output(self, method):
        model = _mlp(method)
        x = torch.randn(64, 6, generator=torch.Generator().manual_seed(2)) * 3
        deployed = abrnet.binarize(model, "all")
        out_train, seen_train = _record(model.eval(), ["1", "3"], x)
        out_dep, seen_dep = _record(deployed, ["1", "3"], x)
        assert torch.equal(out_train, out_dep)
        for n in seen_train:
            assert torch.equal(seen_train[n][1], seen_dep[n][1])

    def test_sigmoid_deploy_bits_are_sigmoid_thresholded_at_half(self):
        model = _mlp("sigmoid")
        x = torch.randn(64, 6, generator=torch.Generator().manual_seed(3)) * 3
        deployed = abrnet.binarize(model, "all")
        # the bits feeding layer 3 depend on layer 1's bits, so compare on the deployed inputs
        _, seen = _record(deployed, ["1", "3"], x)
        for pre, bits in seen.values():
            s = torch.sigmoid(pre)
            clear = s != 0.5  # float rounding can give exactly 0.5 for a tiny pre > 0
            assert torch.equal(bits[clear], (s > 0.5).float()[clear])
            assert torch.equal(bits, (pre > 0).float())

    @pytest.mark.parametrize("method", ["dorefa", "pact"])
    @given(x=xs, alpha=alphas)
    @settings(max_examples=30, deadline=None)
    def test_to_step_matches_training_forward_bit_for_bit(self, method, x, alpha):
        act = R.PACT(init_alpha=alpha) if method == "pact" else R.DoReFa()
        t = act.effective_alpha().item() / 2 if method == "pact" else 0.5
        x = torch.tensor(x + [t, -t, 0.0])
        deploy = act.to_step()
        assert isinstance(deploy, abrnet.ThresholdStep)
        for dtype in (torch.float32, torch.float64):
            xd = x.to(dtype)
            with torch.no_grad():
                assert torch.equal(act(xd), deploy(xd))
            assert deploy(xd).dtype == dtype

    def test_relu_has_nothing_to_binarize(self):
        with pytest.raises(ValueError):
            abrnet.binarize(_mlp("relu"))


# --- registry ---------------------------------------------------------------------


class TestRegistry:
    def test_make_activation_types(self):
        kinds = {m: type(R.make_activation(m, 8)) for m in R.METHODS}
        assert kinds == {
            "relu": nn.ReLU,
            "ste": R.SteHeaviside,
            "dorefa": R.DoReFa,
            "pact": R.PACT,
            "sigmoid": R.SigmoidBinary,
            "hashnet": R.HashNetSigmoid,
            "abr": abrnet.ABR,
        }

    def test_make_activation_passes_kwargs(self):
        assert R.make_activation("abr", 8, init_slope=2.0).slope.tolist() == [2.0] * 8
        assert R.make_activation("abr").has_uninitialized_params()
        assert R.make_activation("ste", clip_value=0.5).clip_value == 0.5
        pact = R.make_activation("pact", 8, init_alpha=3.0, min_alpha=0.5)
        assert pact.alpha.tolist() == [3.0] and pact.min_alpha == 0.5

    def test_unknown_method_lists_valid_ones(self):
        with pytest.raises(ValueError, match="relu, ste, dorefa, pact, sigmoid, hashnet, abr"):
            R.make_activation("sign")

    @pytest.mark.parametrize("kwargs", [{"min_alpha": 0.0}, {"init_alpha": 1e-4}])
    def test_pact_rejects_bad_arguments(self, kwargs):
        with pytest.raises(ValueError):
            R.PACT(**kwargs)
