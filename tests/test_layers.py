import pytest
import torch
from torch import nn

import abrnet
from abrnet import functional as F


def test_abr_per_channel_nchw_uses_one_slope_per_channel():
    abr = abrnet.ABR(3)
    with torch.no_grad():
        abr.slope.copy_(torch.tensor([1.0, 2.0, 4.0]))
    x = torch.full((2, 3, 4, 4), 0.2)
    y = abr(x)
    assert y[:, 0].unique().tolist() == pytest.approx([0.2])
    assert y[:, 1].unique().tolist() == pytest.approx([0.4])
    assert y[:, 2].unique().tolist() == pytest.approx([0.8])


def test_abr_channel_last():
    abr = abrnet.ABR(5, channel_dim=-1)
    with torch.no_grad():
        abr.slope.copy_(torch.arange(1.0, 6.0))
    y = abr(torch.full((2, 7, 5), 0.1))
    assert y[0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


@pytest.mark.parametrize("shape,dim", [((4, 6), 1), ((4, 6, 9), 1), ((2, 6, 3, 3), 1), ((2, 3, 3, 6), -1)])
def test_lazy_abr_takes_channels_from_first_input(shape, dim):
    abr = abrnet.ABR(channel_dim=dim)
    assert "lazy" in repr(abr)
    abr(torch.randn(shape))
    assert abr.slope.shape == (6,)
    assert isinstance(abr, abrnet.ABR)
    assert torch.equal(abr.slope.detach(), torch.ones(6))


def test_shared_abr_has_one_slope():
    abr = abrnet.ABR(shared=True, init_slope=2.0)
    y = abr(torch.full((3, 8, 2, 2), 0.25))
    assert abr.slope.shape == (1,)
    assert torch.allclose(y, torch.full_like(y, 0.5))
    assert "shared" in repr(abr)


def test_slope_floor_keeps_forward_and_growth_finite():
    model = nn.Sequential(nn.Linear(4, 4), abrnet.ABR(4, min_slope=1e-2))
    with torch.no_grad():
        model[1].slope.copy_(torch.tensor([-5.0, 0.0, 1e-9, 3.0]))
    for kind in F.GROWTH_KINDS:
        assert torch.isfinite(abrnet.growth_penalty(model, 1.0, kind))
    abrnet.clamp_slopes_(model)
    assert model[1].slope.min().item() == pytest.approx(1e-2)


def test_growth_pushes_negative_slope_back_up():
    abr = abrnet.ABR(1, min_slope=1e-2)
    with torch.no_grad():
        abr.slope.fill_(-1.0)
    opt = torch.optim.SGD(abr.parameters(), lr=1e-3)
    abrnet.growth_penalty(abr, 1.0, "log").backward()
    opt.step()
    assert abr.slope.item() > -1.0  # gradient -g/w_eff flows through the floor


@pytest.mark.parametrize("bad", [dict(min_slope=0.0), dict(init_slope=1e-5), dict(growth_mult=-1.0)])
def test_abr_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        abrnet.ABR(4, **bad)


def test_growth_penalty_sums_layers_with_multipliers():
    model = nn.Sequential(abrnet.ABR(2, init_slope=2.0), abrnet.ABR(3, init_slope=4.0, growth_mult=0.5))
    got = abrnet.growth_penalty(model, 0.1, "l1")
    want = 0.1 * (2 / 2.0) + 0.1 * 0.5 * (3 / 4.0)
    assert got.item() == pytest.approx(want)
    with pytest.raises(ValueError):
        abrnet.growth_penalty(model, -1.0)


def test_binary_loss_is_lambda_min_y_one_minus_y():
    abr = abrnet.ABR(2, binary_loss=0.5)
    model = nn.Sequential(abr, abrnet.ABR(2))  # second layer: binary loss off
    x = torch.tensor([[0.2, 0.9], [1.5, -1.0]])
    model(x)
    want = 0.5 * (0.2 + 0.1 + 0 + 0) / 2
    assert abrnet.binary_loss(model).item() == pytest.approx(want)
    assert abrnet.binary_loss(nn.Sequential(abrnet.ABR(2))).item() == 0


def test_param_groups_give_slopes_scaled_lr_and_no_decay():
    model = nn.Sequential(nn.Linear(3, 4), abrnet.ABR(4), nn.Linear(4, 2))
    groups = abrnet.param_groups(model, lr=0.01, weight_decay=5e-4, slope_lr_mult=10.0)
    weights, slopes = groups
    assert slopes["params"] == [model[1].slope]
    assert slopes["lr"] == pytest.approx(0.1) and slopes["weight_decay"] == 0
    assert weights["weight_decay"] == 5e-4 and len(weights["params"]) == 4
    torch.optim.SGD(groups, lr=0.01)


def test_param_groups_refuse_lazy_layers():
    with pytest.raises(RuntimeError, match="forward pass"):
        abrnet.param_groups(nn.Sequential(abrnet.ABR()), lr=0.1)


def test_extra_repr_is_readable():
    r = repr(abrnet.ABR(8, growth_mult=2.0, binary_loss=0.1))
    assert "8" in r and "growth_mult=2" in r and "binary_loss=0.1" in r and "slope=[1, 1, 1]" in r


def test_model_level_terms_skip_lazy_layers_not_yet_materialised():
    model = nn.Sequential(abrnet.ABR(3, init_slope=2.0), abrnet.ABR())
    torch.testing.assert_close(abrnet.growth_penalty(model, 1.0, "log"), -3 * torch.log(torch.tensor(2.0)))
    model[0].slope.grad = torch.zeros(3)
    abrnet.add_growth_grad_(model, 1.0, "log")
    torch.testing.assert_close(model[0].slope.grad, torch.full((3,), -0.5))
    with torch.no_grad():
        model[0].slope.fill_(-1.0)
    abrnet.clamp_slopes_(model)
    assert torch.equal(model[0].slope, torch.full((3,), model[0].min_slope))


def test_abr_round_trips_state_dict():
    a, b = abrnet.ABR(4), abrnet.ABR()
    with torch.no_grad():
        a.slope.mul_(3)
    b(torch.zeros(1, 4))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.slope, b.slope)


def test_threshold_step_matches_batchnorm_then_step():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0, 0.0, -0.1]))
        bn.bias.copy_(torch.tensor([0.1, 0.3, -0.2, 0.5, -0.5, 0.0]))
    x = torch.randn(16, 6, 5, 5)
    want = abrnet.functional.step(bn(x))
    got = abrnet.ThresholdStep.from_batchnorm(bn)(x)
    assert torch.equal(got, want)
    # with a level, a rounded ABR's threshold: [BN(x) > 0.3], up to rounding at the threshold
    got = abrnet.ThresholdStep.from_batchnorm(bn, torch.tensor(0.3))(x)
    assert (got == abrnet.functional.step(bn(x) - 0.3)).float().mean() > 0.999


def test_a_rounded_abr_deploys_at_its_threshold_and_old_weights_at_zero():
    abr = abrnet.ABR(4)
    x = torch.linspace(-1, 1, 41).reshape(-1, 1).expand(-1, 4)
    assert type(abr.to_step()) is abrnet.Step  # the paper's [x > 0]
    with torch.no_grad():
        abr.threshold.fill_(0.25)
    step = abr.to_step()
    assert isinstance(step, abrnet.ThresholdStep) and torch.equal(step(x), (x > 0.25).float())
    deployed = abrnet.binarize(nn.Sequential(abr))
    assert torch.equal(deployed(x), (x > 0.25).float())
    abr.frozen, abr.rounded = True, True  # the frozen training form in eval computes the same step
    with torch.no_grad():
        assert torch.equal(abr(x), (x > 0.25).float())
    # the threshold is saved with the weights; weights saved before it existed load at 0
    fresh = abrnet.ABR(4)
    fresh.load_state_dict(abr.state_dict())
    assert fresh.threshold.item() == 0.25 and fresh.rounded
    # loaded, its training form is the rounded one: clamp(w (x - t) + 1/2, 0, 1), here w = 1
    torch.testing.assert_close(fresh(x), (x - 0.25 + 0.5).clamp(0, 1))
    old = {k: v for k, v in abr.state_dict().items() if k != "threshold"}
    fresh.load_state_dict(old)
    assert fresh.threshold.item() == 0.0 and type(fresh.to_step()) is abrnet.Step and not fresh.rounded
    torch.testing.assert_close(fresh(x), x.clamp(0, 1))  # the paper's ABR


def test_model_with_binary_loss_can_be_binarized_after_training():
    model = nn.Sequential(nn.Linear(3, 4), abrnet.ABR(4, binary_loss=0.1), nn.Linear(4, 2))
    (model(torch.randn(5, 3)).sum() + abrnet.binary_loss(model)).backward()
    deployed = abrnet.binarize(model)  # deepcopy must not trip over the graph-bound loss
    assert isinstance(deployed[1], abrnet.Step) and model[1].last_binary_loss is not None


@pytest.mark.parametrize("kind", F.GROWTH_KINDS)
def test_add_growth_grad_equals_the_penalty_in_the_loss(kind):
    # The engine adds the growth gradient after backward(); it must be the gradient
    # of growth_penalty, multipliers and floor included, for every slope with a .grad.
    def model():
        torch.manual_seed(0)
        m = nn.Sequential(abrnet.ABR(4, min_slope=0.1), abrnet.ABR(3, growth_mult=2.5), abrnet.ABR(2, growth_mult=0))
        with torch.no_grad():
            m[0].slope.copy_(torch.tensor([0.05, 0.1, 1.0, 7.0]))  # under, at and above the floor
            m[1].slope.copy_(torch.tensor([0.5, 2.0, 30.0]))
        return m

    a, b = model(), model()
    abrnet.growth_penalty(a, 0.3, kind).backward()
    a[0].slope.grad.add_(1.0)  # some task gradient already there
    b[0].slope.grad, b[1].slope.grad, b[2].slope.grad = torch.ones(4), torch.zeros(3), torch.zeros(2)
    abrnet.add_growth_grad_(b, 0.3, kind)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad if p.grad is not None else torch.zeros_like(q), q.grad)
    c = model()
    abrnet.add_growth_grad_(c, 0.3, kind)  # no .grad anywhere: no part in a loss, untouched
    assert all(p.grad is None for p in c.parameters())
    with pytest.raises(ValueError):
        abrnet.add_growth_grad_(b, -1.0)


@pytest.mark.parametrize("kind", F.GROWTH_KINDS)
def test_add_growth_grad_with_one_multiplier_and_clamped_slopes(kind):
    # The usual case takes shortcuts (one multiplier folded into the sum; slopes clamped
    # since their last update read as they are): the same gradient as the penalty's.
    def model():
        torch.manual_seed(0)
        m = nn.Sequential(abrnet.ABR(4, min_slope=0.2), abrnet.ABR(3, growth_mult=1.5), abrnet.ABR(2, growth_mult=1.5))
        m[0].growth_mult = 1.5
        with torch.no_grad():
            for abr in m:
                abr.slope.uniform_(0.05, 3.0)
        abrnet.clamp_slopes_(m)
        return m

    a, b = model(), model()
    assert min(abr.slope.min().item() for abr in b) >= 0.05 and b[0].floored_at is not None
    abrnet.growth_penalty(a, 0.7, kind).backward()
    for abr in b:
        abr.slope.grad = torch.zeros_like(abr.slope)
    abrnet.add_growth_grad_(b, 0.7, kind)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_forward_skips_the_floor_only_while_clamp_slopes_holds():
    torch.manual_seed(0)
    abr = abrnet.ABR(6, min_slope=0.5)
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    abr = abr.double()
    with torch.no_grad():
        abr.slope.copy_(torch.tensor([0.5, 0.7, 1.0, 2.0, 3.0, 0.6]))
    grads = {}
    for path in ("floor", "floored"):
        if path == "floored":
            abrnet.clamp_slopes_(abr)  # nothing to clamp, but now known to be floored
            assert abr.floored_at == (abr.slope._version, 0.5)
        x.grad = abr.slope.grad = None
        y = abr(x)
        y.sum().backward()
        grads[path] = (y.detach(), x.grad.clone(), abr.slope.grad.clone())
    for a, b in zip(grads["floor"], grads["floored"]):
        assert torch.equal(a, b)
    # an update after the clamp (here: a slope pushed under the floor) brings the floor back
    with torch.no_grad():
        abr.slope[0] = 0.1
    abr.slope.grad = None
    abr(x).sum().backward()
    assert abr.slope.grad[0] == 0 and abr(x)[:, 0].abs().max() <= 1
    assert torch.equal(abr(x)[:, 0], torch.clamp(0.5 * x[:, 0], 0, 1))
    abr.min_slope = 0.05  # a new floor also invalidates it
    assert abr.floored_at[1] != abr.min_slope
