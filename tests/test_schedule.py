"""BinarizationSchedule: floors that rise to the measured end, gradients compensated
upstream, layers frozen first to last, an end state that is exactly binary and equal to
the deployed network, and the same end whatever the number of steps."""

import math

import pytest
import torch
from torch import nn

import abrnet
from abrnet.rivals import make_activation
from abrnet.schedule import BinarizationSchedule


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), abrnet.ABR(16), nn.Linear(16, 8), abrnet.ABR(8), nn.Linear(8, 3))


def _data(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _train(model, total, batch=16, **kw):
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = BinarizationSchedule(model, opt, total, held_out=x, **kw)
    step = 0
    while step < total:
        for i in range(0, len(x), batch):
            if step == total:
                break
            loss = nn.functional.cross_entropy(model(x[i : i + batch]), y[i : i + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return sched, opt, x


def _abr_inputs(model, sched, x):
    """Each ABR's input on ``x``, the model in eval mode (as the schedule measures it)."""
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, i[0])) for n, m in sched.abrs.items()]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return inputs


def test_end_state_is_exactly_the_deployed_network():
    model = _mlp()
    sched, _, x = _train(model, 60)
    assert sched.stage == "freeze" and sched.frozen_count() == 2
    deployed = abrnet.binarize(model)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), deployed(x))
    stats = abrnet.binarization_stats(model, x)
    assert all(s.between == 0 for s in stats.values())  # the training form itself is 0/1


def test_floors_rise_geometrically_to_the_measured_saturating_slope():
    model = _mlp()
    x, _ = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = BinarizationSchedule(model, opt, 40, binarize_at=0.25, freeze_at=1.0, saturate=0.9, held_out=x)
    inputs = _abr_inputs(model, sched, x)
    sched.step_count = 9
    opt.step()  # step 10 of 40: the binarize stage starts and measures its end
    for name, m in sched.abrs.items():
        # 90% of the held-out inputs satisfy |w x| >= 1 at the end slope: w = 1 / q_0.1(|x|)
        want = 1 / torch.quantile(inputs[name].abs().flatten(), 0.1).item()
        assert sched.end[name] == pytest.approx(want, rel=1e-5)
        assert sched.start[name] == pytest.approx(m.effective_slope().mean().item())
        w0, w1 = sched.start[name], sched.end[name]
        assert sched.floor(name, 0.25 + 0.75 / 2) == pytest.approx(math.sqrt(w0 * w1))  # geometric
        floors = [sched.floor(name, p / 20) for p in range(21)]
        assert floors == sorted(floors) and floors[-1] == pytest.approx(w1)


@pytest.mark.parametrize("learn_window", [True, False], ids=["learned", "fixed"])
def test_window_share_of_a_rounded_window_counts_the_inputs_that_can_enter_it(learn_window):
    # Rounded steps' window is [0, width): the share is of the held-out inputs x >= 0, and
    # the step sits at the middle of that window.
    model = _mlp()
    x, _ = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = BinarizationSchedule(model, opt, 40, window_share=0.3, held_out=x, learn_window=learn_window)
    inputs = _abr_inputs(model, sched, x)
    opt.step()  # the first step measures
    for name, m in sched.abrs.items():
        width = sched.width[name].item() if learn_window else 1 / sched.window[name]
        v = inputs[name][inputs[name] >= 0]
        assert ((v < width).float().mean().item()) == pytest.approx(0.3, abs=1.5 / v.numel())
        assert m.threshold.item() == pytest.approx(width / 2)


def test_window_share_sets_each_window_from_the_held_out_inputs():
    # Each layer's window |x| < 1/(2 w0) holds the asked share of its held-out inputs
    # when the binarize stage starts, whatever its slopes; the state carries it.
    model = _mlp()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = BinarizationSchedule(
        model, opt, 40, binarize_at=0.25, freeze_at=0.5, window_share=0.3, held_out=x, rounded=False
    )
    inputs = _abr_inputs(model, sched, x)
    sched.step_count = 9
    opt.step()  # step 10 of 40: measured
    for name, m in sched.abrs.items():
        w0 = sched.window[name]
        assert m.window == w0 != pytest.approx(sched.start[name])
        inside = (inputs[name].abs() < 0.5 / w0).float().mean().item()
        assert inside == pytest.approx(0.3, abs=1.5 / inputs[name].numel())
    h = model[0](x).detach().requires_grad_()
    model[1](h).sum().backward()
    w0 = sched.window["1"]
    torch.testing.assert_close(h.grad, ((h.detach() * w0).abs() < 0.5).float() * w0)  # the window's gradient
    twin = _mlp()
    again = BinarizationSchedule(twin, torch.optim.SGD(twin.parameters(), lr=0.05), 40)
    again.load_state_dict(sched.state_dict())
    assert [m.window for m in twin.modules() if isinstance(m, abrnet.ABR)] == list(sched.window.values())


def test_end_does_not_depend_on_the_number_of_steps():
    # A run with twice the steps (half the batch, or half the processes) reaches the
    # same stage, floors and frozen layers at the same share of its steps.
    a = BinarizationSchedule(_mlp(), torch.optim.SGD(_mlp().parameters(), lr=0.1), 100)
    b = BinarizationSchedule(_mlp(), torch.optim.SGD(_mlp().parameters(), lr=0.1), 200)
    for p in (0.0, 0.3, 0.6, 0.7, 0.85, 0.9, 0.95, 1.0):
        assert a.frozen_count(p) == b.frozen_count(p)
    a.start = b.start = {n: 1.0 for n in a.abrs}
    a.end = b.end = {n: 50.0 for n in a.abrs}
    for p in (0.6, 0.7, 0.85, 1.0):
        assert [a.floor(n, p) for n in a.abrs] == [b.floor(n, p) for n in b.abrs]


@pytest.mark.parametrize("rounded, want", [(False, [0, 1, 1, 2, 2, 2]), (True, [0, 2, 2, 2, 2, 2])],
                         ids=["centred-first-to-last", "rounded-all-at-once"])  # fmt: skip
def test_layers_freeze_in_the_last_stage(rounded, want):
    s = BinarizationSchedule(_mlp(), torch.optim.SGD(_mlp().parameters(), lr=0.1), 100, freeze_at=0.8,
                             rounded=rounded)  # fmt: skip
    assert [s.frozen_count(p) for p in (0.79, 0.8, 0.89, 0.9, 0.99, 1.0)] == want


def test_without_surrogate_upstream_gradients_are_divided_by_the_rise():
    model = _mlp()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: look at the gradients only
    sched = BinarizationSchedule(
        model, opt, 10, growth=0.5, binarize_at=0.5, freeze_at=1.0, held_out=x, surrogate=False
    )

    def grads():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        plain = {k: p.grad.clone() for k, p in model.named_parameters()}
        opt.step()  # the hooks change .grad in place
        return plain, {k: p.grad.clone() for k, p in model.named_parameters()}

    plain, seen = grads()  # learn stage: growth on the slopes, nothing else changed
    slope = model[1].slope
    assert torch.allclose(seen["1.slope"], plain["1.slope"] - 0.5 / slope.detach())
    assert torch.equal(seen["0.weight"], plain["0.weight"])
    sched.step_count = 7  # well inside the binarize stage (the end slopes are measured once)
    sched._measure_end()
    r = sched.rise()
    assert r > 1
    plain, seen = grads()
    assert torch.allclose(seen["0.weight"], plain["0.weight"] / r)  # crosses the ABRs
    assert torch.allclose(seen["2.weight"], plain["2.weight"] / r)
    assert torch.equal(seen["4.weight"], plain["4.weight"])  # the classifier after the last ABR
    assert torch.equal(seen["1.slope"], plain["1.slope"])  # no growth after the learn stage


def test_state_dict_rebuilds_floors_and_frozen_layers():
    model = _mlp()
    sched, opt, x = _train(model, 30)
    state = sched.state_dict()
    twin = _mlp()
    twin.load_state_dict(model.state_dict())
    again = BinarizationSchedule(twin, torch.optim.SGD(twin.parameters(), lr=0.05), 30)
    again.load_state_dict(state)
    assert again.frozen_count() == sched.frozen_count()
    assert {n: w.item() for n, w in again.width.items()} == state["width"] != {"1": 1.0, "3": 1.0}
    assert [m.min_slope for m in again.abrs.values()] == [m.min_slope for m in sched.abrs.values()]
    with torch.no_grad():
        assert torch.equal(twin.eval()(x), model.eval()(x))


def test_only_abrs_are_driven_and_frozen():
    model = nn.Sequential(nn.Linear(6, 8), abrnet.ABR(8), nn.Linear(8, 8), make_activation("ste"), nn.Linear(8, 3))
    sched = BinarizationSchedule(model, torch.optim.SGD(model.parameters(), lr=0.1), 10)
    assert sched.names == ["1"] and sched.frozen_count(1.0) == 1


def test_stage_defaults_follow_the_rounding_and_the_number_of_binary_layers():
    single = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), abrnet.ABR(8), nn.Linear(8, 3))
    cases = ((single, {}, (0.0, 0.0)), (_mlp(), {}, (0.0, 0.0)),  # rounded: binary from the first step
             (single, {"rounded": False}, (0.01, 0.02)), (_mlp(), {"rounded": False}, (0.1, 0.2)),
             (_mlp(), {"surrogate": False}, (0.1, 0.2)))  # fmt: skip
    for model, kw, want in cases:
        sched = BinarizationSchedule(model, torch.optim.SGD(model.parameters(), lr=0.1), 100, **kw)
        assert (sched.binarize_at, sched.freeze_at) == want
        assert sched.rounded is kw.get("rounded", kw.get("surrogate", True))
        assert want[1] == 0 or sched.frozen_count(want[1] - 1e-9) == 0
        assert sched.frozen_count(want[1]) == (len(sched.names) if sched.rounded else 1)
    # given values win; an unset freeze_at never comes before a given binarize_at
    sched = BinarizationSchedule(single, torch.optim.SGD(single.parameters(), lr=0.1), 100, binarize_at=0.3)
    assert (sched.binarize_at, sched.freeze_at) == (0.3, 0.3)
    sched = BinarizationSchedule(_mlp(), torch.optim.SGD(single.parameters(), lr=0.1), 100, freeze_at=0.5)
    assert (sched.binarize_at, sched.freeze_at) == (0.0, 0.5)
    sched = BinarizationSchedule(single, torch.optim.SGD(single.parameters(), lr=0.1), 100, freeze_at=0.005,
                                 rounded=False)  # fmt: skip
    assert (sched.binarize_at, sched.freeze_at) == (0.005, 0.005)


def test_remove_takes_the_hooks_off():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = BinarizationSchedule(model, opt, 10)
    sched.remove()
    opt.step()
    assert sched.step_count == 0


@pytest.mark.parametrize(
    "kw",
    [
        {"total_steps": 0},
        {"binarize_at": 0.9, "freeze_at": 0.5},
        {"saturate": 1.0},
        {"window_share": 0.0},
        {"rounded": True, "surrogate": False},
    ],  # fmt: skip
)
def test_bad_arguments(kw):
    model = _mlp()
    args = {"total_steps": 10, **kw}
    with pytest.raises(ValueError):
        BinarizationSchedule(model, torch.optim.SGD(model.parameters(), lr=0.1), **args)


@pytest.mark.parametrize("rounded", [False, True], ids=["centred", "rounded"])
def test_surrogate_keeps_the_starting_window_backward_while_the_forward_hardens(rounded):
    # centred: the window |w0 x| < 1/2 about the step [x > 0]; rounded: the linear region
    # 0 < w0 x < 1 itself, about the step [x > 1/(2 w0)]
    model = _mlp()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = BinarizationSchedule(
        model, opt, 100, binarize_at=0.6, freeze_at=0.85, held_out=x, learn_window=False, rounded=rounded
    )
    sched.step_count = 70  # inside the binarize stage
    sched.after_step()
    assert sched.stage == "binarize" and all(m.window == sched.start[n] for n, m in sched.abrs.items())
    abr, w0 = model[1], sched.start["1"]
    assert abr.effective_slope().min().item() > w0  # the floor has risen past the start
    h = model[0](x).detach().requires_grad_()
    out = abr(h)
    torch.testing.assert_close(out, abr.__class__.forward(abr, h))  # forward: the ABR as it is now
    out.sum().backward()
    inside = (h.detach() * w0 - (0.5 if rounded else 0.0)).abs() < 0.5
    assert inside.any() and not inside.all()
    torch.testing.assert_close(h.grad, inside.float() * w0)  # backward: the window's, of slope w0
    # no compensation: upstream gradients keep their size
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    before = model[0].weight.grad.clone()
    sched.before_step()
    torch.testing.assert_close(model[0].weight.grad, before)
    # frozen layers pass the surrogate too, and the end is the deployed network
    sched.step_count = 99
    sched.after_step()
    assert sched.frozen_count() == 2
    out = abr(h)
    assert torch.equal(out, (h * w0 > (0.5 if rounded else 0.0)).float())  # forward: the exact step
    h.grad = None
    out.sum().backward()
    torch.testing.assert_close(h.grad, inside.float() * w0)  # backward: the same window
    assert abr.slope.grad is None  # the slope no longer takes part
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    assert model[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(model.eval()(x), abrnet.binarize(model)(x))
    sched.remove()
    assert abr.window is None and abr.frozen  # the window goes, the step stays
    with torch.no_grad():
        assert torch.equal(model(x), abrnet.binarize(model)(x))


def test_compiled_model_trains_as_eager_without_a_recompile_per_step():
    # The floors change at every step of the binarize stage, and freezing adds hooks:
    # a compiled forward must follow both (same training as eager) without compiling
    # a new graph at each step (at most one recompile when the floor starts moving,
    # one per frozen layer, and one when the surrogate hooks arrive).
    x, y = _data()
    trained = []
    for compiled in (False, True):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        sched = BinarizationSchedule(model, opt, 40, held_out=x, surrogate=True)
        graphs = []

        def count(gm, example_inputs, graphs=graphs):
            graphs.append(gm)
            return gm.forward

        forward = torch.compile(model, backend=count) if compiled else model
        for i in range(40):
            b = slice(16 * (i % 4), 16 * (i % 4 + 1))
            loss = nn.functional.cross_entropy(forward(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert sched.frozen_count() == 2
        trained.append(model)
        if compiled:
            assert 1 <= len(graphs) <= 5, f"{len(graphs)} graphs compiled in 40 steps"
    torch._dynamo.reset()
    for a, b in zip(trained[0].parameters(), trained[1].parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        assert torch.equal(trained[1].eval()(x), abrnet.binarize(trained[1])(x))


def test_binary_loss_stops_when_the_surrogate_takes_over():
    # The optional per-output penalty needs the ABR's own gradient; once the window or
    # the step takes over it drops out, and no term from an earlier step lingers.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), abrnet.ABR(16, binary_loss=0.1), nn.Linear(16, 3))
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = BinarizationSchedule(model, opt, 20, held_out=x)
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y) + abrnet.binary_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched.stage == "learn":
            assert abrnet.binary_loss(model).item() > 0
    assert sched.frozen_count() == 1 and model[1].last_binary_loss is None


@pytest.mark.parametrize("rounded", [False, True], ids=["centred", "rounded"])
def test_learned_window_starts_at_w0_and_is_trained_by_the_optimizer(rounded):
    model = _mlp()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = BinarizationSchedule(model, opt, 100, held_out=x, rounded=rounded, binarize_at=0.1, freeze_at=0.2)
    assert len(opt.param_groups) == 1  # the widths close the first group: its rate, its schedule
    assert opt.param_groups[0]["params"][-2:] == list(sched.width.values())
    sched.step_count = 9
    sched.after_step()  # the binarize stage begins: each width is placed at 1/w0
    abr, width = model[1], sched.width["1"]
    assert abr.window_width is width and width.item() == pytest.approx(1 / sched.start["1"])
    h = model[0](x).detach().requires_grad_()
    abr(h).sum().backward()
    a = width.detach()
    inside = (h.detach() - (a / 2 if rounded else 0.0)).abs() < a / 2  # about the step: [x > a/2] or [x > 0]
    assert inside.any() and not inside.all()
    torch.testing.assert_close(h.grad, inside.float() / a)  # the window's gradient
    assert width.grad is not None and width.grad.item() != 0.0
    before = {n: w.item() for n, w in sched.width.items()}
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(w.item() != before[n] for n, w in sched.width.items())
    # not the model's: its state_dict, and so its checkpoints and the deployed net, are as before
    assert set(model.state_dict()) == set(_mlp().state_dict())
    sched.remove()
    assert abr.window is None and abr.window_width is None


def test_learned_windows_follow_an_lr_scheduler_built_before_them():
    # A scheduler built first (as Lightning's configure_optimizers builds it) knows only
    # the groups it saw: LambdaLR refused to step with a group added after it. The widths
    # sit in the first group, so they step at the rate it schedules.
    model = _mlp()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.9**epoch)
    sched = BinarizationSchedule(model, opt, 40, held_out=x, binarize_at=0.1, freeze_at=0.2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        decay.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.9**30)
    assert [id(p) for p in opt.param_groups[0]["params"][-2:]] == [id(w) for w in sched.width.values()]
    assert all(opt.state[w]["momentum_buffer"] is not None for w in sched.width.values())


def test_fixed_window_adds_nothing_to_the_optimizer():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = BinarizationSchedule(model, opt, 100, learn_window=False)
    assert len(opt.param_groups) == 1 and sched.width == {}
    sched.step_count = 50
    sched.after_step()
    assert model[1].window == sched.start["1"] and model[1].window_width is None


def _average_in_process(rank: int, port: int, out) -> None:
    from abrnet.windows import average_grads

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    a, b = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    a.grad = torch.tensor(float(rank + 1))  # b has no gradient on either process
    average_grads([a, b])
    out.put((rank, a.grad.item(), b.grad.item()))
    torch.distributed.destroy_process_group()


def test_window_gradients_are_averaged_over_processes():
    # The widths are not in DistributedDataParallel's buckets: the schedule averages them.
    ctx = torch.multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_average_in_process, args=(r, 29543, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == [(0, 1.5, 0.0), (1, 1.5, 0.0)]


@pytest.mark.parametrize("learn_window", [True, False], ids=["learned", "fixed"])
def test_rounded_steps_sit_at_the_middles_of_the_windows_and_deploy_there(learn_window):
    model = _mlp()
    sched, _, x = _train(model, 60, rounded=True, learn_window=learn_window)
    assert sched.frozen_count() == 2
    for name, m in sched.abrs.items():
        width = sched.width[name].item() if learn_window else 1 / sched.window.get(name, sched.start[name])
        assert m.rounded and m.threshold.item() == pytest.approx(width / 2) and width > 0
    deployed = abrnet.binarize(model)
    assert all(isinstance(deployed[i], abrnet.ThresholdStep) for i in (1, 3))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), deployed(x))
    stats = abrnet.binarization_stats(model, x)  # 0/1, and each its own step's output
    assert all(s.between == 0 and s.changed == 0 for s in stats.values())
    # the saved weights carry the thresholds: a fresh model deploys to the same network
    twin = _mlp(seed=5)
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(abrnet.binarize(twin)(x), deployed(x))
    # the frozen training form's gradient is clamp(x / width, 0, 1)'s: PACT's window [0, width)
    model.train()
    abr = model[1]
    h = model[0](x).detach().requires_grad_()
    abr(h).sum().backward()
    a = abr.threshold.item() * 2
    inside = (h.detach() >= 0) & (h.detach() < a)
    assert inside.any() and not inside.all()
    torch.testing.assert_close(h.grad, inside.float() / a)


def test_thresholds_follow_the_learned_widths_after_the_model_is_moved():
    # Moving a model replaces its buffers: the thresholds the schedule places after each
    # step are the ABRs' own, not ones it kept from before, and the widths keep learning.
    model, (x, y) = _mlp(), _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = BinarizationSchedule(model, opt, 100, held_out=x)
    for i in range(6):
        if i == 3:
            model.to(torch.float64)
            x = x.double()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    widths = {n: w.item() for n, w in sched.width.items()}
    for name, m in sched.abrs.items():
        assert m.threshold.dtype == torch.float64 and m.threshold.item() == pytest.approx(widths[name] / 2)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert all(w.item() != widths[n] for n, w in sched.width.items())  # still learned


def test_by_default_the_first_step_measures_and_the_second_trains_the_binary_network():
    # Rounded steps' stages both start at 0: the first step trains the bounded rectifiers
    # (nothing is frozen before the slopes are measured), after it the first layer is its
    # step at the middle of its placed window, with the window's gradient.
    model, (x, y) = _mlp(), _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = BinarizationSchedule(model, opt, 100, held_out=x)
    assert (sched.binarize_at, sched.freeze_at) == (0.0, 0.0) and sched.stage == "freeze"
    for expect_frozen in (False, True):
        h = model[0](x).detach().requires_grad_()
        out = model[1](h)
        assert model[1].frozen is expect_frozen
        binary = bool(((out == 0) | (out == 1)).all())
        assert binary is expect_frozen  # the bounded rectifier, then its exact step
        out.sum().backward()
        assert h.grad.abs().sum() > 0  # a gradient either way: the slope's, then the window's
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    abr, width = model[1], sched.width["1"].item()
    assert abr.rounded and abr.threshold.item() == pytest.approx(width / 2)


def test_rounded_linear_regions_contract_about_their_middles():
    # In the binarize stage the forward is clamp(w (x - t) + 1/2, 0, 1): at its start the
    # bounded rectifier clamp(w0 x, 0, 1) itself (t = 1/(2 w0)), then ever steeper about t.
    model = nn.Sequential(nn.Linear(6, 16), abrnet.ABR(16, shared=True), nn.Linear(16, 3))
    x, _ = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = BinarizationSchedule(model, opt, 100, held_out=x, rounded=True, binarize_at=0.1, freeze_at=0.5)
    h = model[0](x).detach()
    with torch.no_grad():
        before = model[1](h)
    sched.step_count = 9
    sched.after_step()  # the binarize stage begins
    abr = model[1]
    assert abr.threshold.item() == pytest.approx(0.5 / sched.start["1"])
    with torch.no_grad():
        torch.testing.assert_close(abr(h), before)
        for _ in range(20):
            sched.after_step()
        steeper = abr(h)
    t = abr.threshold.item()
    assert steeper[h > t].mean() > before[h > t].mean() and steeper[h < t].mean() < before[h < t].mean()
