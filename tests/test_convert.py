import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import fx, nn

import abrnet


def _relu_call_sites(model: nn.Module, x: torch.Tensor) -> int:
    # Count calls independently of convert(): forward hooks on every ReLU module.
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return len(calls)


def _abr_calls(model, x):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(id(m))) for _, m in abrnet.abr_layers(model)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("alexnet", 224), ("vgg11", 32)])
def test_convert_torchvision_models(name, size):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    if name == "vgg11":
        model.avgpool = nn.AdaptiveAvgPool2d(7)
    x = torch.randn(2, 3, size, size)
    sites = _relu_call_sites(model, x)
    converted = abrnet.convert(model, example_input=x)
    abrs = list(abrnet.abr_layers(converted))
    assert len(abrs) == sites
    assert not any(isinstance(m, nn.ReLU) for m in converted.modules())
    # every ABR is called exactly once: one call site, one set of slopes
    calls = _abr_calls(converted.train(), x)
    assert sorted(calls) == sorted(id(m) for _, m in abrs)
    out = converted(x)
    out.sum().backward()
    assert all(m.slope.grad is not None for _, m in abrs)
    # the original is untouched (inplace=False)
    assert _relu_call_sites(model, x) == sites


def test_resnet_blocks_keep_their_class_path_and_weights():
    model = torchvision.models.resnet18(num_classes=10)
    converted = abrnet.convert(model)
    assert type(converted).__name__ == "ResNet"
    assert set(model.state_dict()) <= set(converted.state_dict())
    block = converted.layer1[0]
    assert isinstance(block.relu, abrnet.ABR) and isinstance(block.relu_1, abrnet.ABR)
    assert block.relu is not block.relu_1
    x = torch.randn(2, 3, 32, 32)
    model.eval(), converted.eval()
    # with slope 1 and outputs kept under 1 the two nets differ only where relu > 1
    assert converted(x).shape == model(x).shape


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)).relu())


def test_functional_relu_calls_become_abrs():
    model = _Functional()
    converted = abrnet.convert(model, example_input=torch.randn(2, 4))
    assert len(list(abrnet.abr_layers(converted))) == 2
    converted(torch.randn(3, 4)).sum().backward()


def test_skip_leaves_named_relus():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    converted = abrnet.convert(model, skip=["1"])
    assert isinstance(converted[1], nn.ReLU) and isinstance(converted[3], abrnet.ABR)


def test_inplace_modifies_the_model():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    assert abrnet.convert(model, inplace=True) is model
    assert isinstance(model[1], abrnet.ABR)


def test_abr_kwargs_are_passed_through():
    model = abrnet.convert(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), init_slope=3.0, growth_mult=2.0)
    assert model[1].init_slope == 3.0 and model[1].growth_mult == 2.0


class _Untraceable(nn.Module):
    """Data-dependent control flow (fx cannot trace it) around traceable parts."""

    def __init__(self, shared: bool = False):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
        self.fc, self.relu = nn.Linear(4, 4), nn.ReLU()
        self.shared = shared

    def forward(self, x):
        x = self.block(x)
        if x.sum() > -1e9:  # always taken, but fx cannot know
            x = self.relu(self.fc(x))
        return self.relu(x) if self.shared else x


def test_untraceable_model_is_converted_part_by_part():
    x = torch.randn(3, 4)
    converted = abrnet.convert(_Untraceable(), example_input=x)
    assert isinstance(converted.block[1], abrnet.ABR) and isinstance(converted.relu, abrnet.ABR)
    assert type(converted) is _Untraceable  # the untraceable owner keeps its class
    converted(x).sum().backward()
    assert converted.relu.slope.grad is not None


@pytest.mark.parametrize("example", [True, False])
def test_activation_called_twice_in_untraceable_code_is_an_error_naming_it(example):
    x = torch.randn(3, 4)
    msg = r"activation 'relu' of _Untraceable is called 2 times in one forward pass"
    if example:  # found while converting
        with pytest.raises(abrnet.ConversionError, match=msg):
            abrnet.convert(_Untraceable(shared=True), example_input=x)
    else:  # found on the first forward pass
        converted = abrnet.convert(_Untraceable(shared=True))
        with pytest.raises(abrnet.ConversionError, match=msg):
            converted(x)


def test_trace_false_swaps_modules_one_for_one():
    converted = abrnet.convert(_Untraceable(), trace=False)
    assert isinstance(converted.relu, abrnet.ABR) and isinstance(converted.block[1], abrnet.ABR)


def test_first_forward_check_removes_its_hooks():
    converted = abrnet.convert(_Untraceable(), example_input=torch.randn(3, 4))
    assert not converted._forward_hooks and not converted.relu._forward_hooks


class _Rectifiers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 8), nn.ReLU6(), nn.Linear(8, 8)
        self.leaky, self.fc3 = nn.LeakyReLU(0.1), nn.Linear(8, 3)

    def forward(self, x):
        x = self.leaky(self.fc2(self.act(self.fc1(x))))
        return self.fc3(F.leaky_relu(x, 0.2))


def test_relu6_converts_by_default_and_others_on_request():
    x = torch.randn(2, 4)
    default = abrnet.convert(_Rectifiers(), example_input=x)
    assert isinstance(default.act, abrnet.ABR) and isinstance(default.leaky, nn.LeakyReLU)
    leaky = abrnet.convert(_Rectifiers(), activations=(nn.LeakyReLU,), example_input=x)
    assert isinstance(leaky.act, nn.ReLU6) and len(list(abrnet.abr_layers(leaky))) == 2  # module + F call
    both = abrnet.convert(_Rectifiers(), activations=abrnet.RECTIFIERS + (nn.LeakyReLU,), example_input=x)
    assert len(list(abrnet.abr_layers(both))) == 3
    both(x).sum().backward()


def test_nothing_converted_is_an_error_naming_the_activations_found():
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4), nn.Tanh(), nn.Tanh())
    with pytest.raises(abrnet.ConversionError, match=r"no ReLU, ReLU6 found; it uses Tanh \(2\), GELU \(1\)"):
        abrnet.convert(model)
    with pytest.raises(abrnet.ConversionError, match="already converted"):
        abrnet.convert(abrnet.convert(nn.Sequential(nn.Linear(2, 2), nn.ReLU())))
    with pytest.raises(abrnet.ConversionError, match="pass its activation classes"):
        abrnet.convert(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="nn.Module classes"):
        abrnet.convert(model, activations=("gelu",))


def test_frozen_step_forward_with_straight_through_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), abrnet.ABR(8, init_slope=2.0), nn.Linear(8, 2))
    x = torch.randn(64, 4)
    for through in (False, True):
        handles = abrnet.freeze(model, ["1"], straight_through=through)
        model.zero_grad()
        hidden = model[1](model[0](x))
        assert set(hidden.unique().tolist()) == {0.0, 1.0}
        model(x).sum().backward()
        # no gradient crosses a plain frozen step; the ABR's own crosses a straight-through one
        assert (model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0) == through
        for h in handles:
            h.remove()


def test_binarize_all_gives_exact_binary_at_every_step():
    torch.manual_seed(0)
    model = abrnet.convert(torchvision.models.resnet18(num_classes=10), example_input=torch.randn(2, 3, 32, 32))
    deployed = abrnet.binarize(model, "all")
    seen = []
    steps = [m for m in deployed.modules() if isinstance(m, abrnet.Step)]
    assert len(steps) == 17 and not list(abrnet.abr_layers(deployed))
    for m in steps:
        m.register_forward_hook(lambda m, i, o: seen.append(o.unique()))
    deployed(torch.randn(4, 3, 32, 32))
    assert len(seen) == 17
    assert all(set(u.tolist()) <= {0.0, 1.0} for u in seen)
    assert any(len(u) == 2 for u in seen)
    assert not deployed.training
    assert len(list(abrnet.abr_layers(model))) == 17  # original untouched


def test_binarize_last_and_named():
    model = nn.Sequential(nn.Linear(4, 8), abrnet.ABR(8), nn.Linear(8, 8), abrnet.ABR(8), nn.Linear(8, 2))
    last = abrnet.binarize(model, "last")
    assert isinstance(last[1], abrnet.ABR) and isinstance(last[3], abrnet.Step)
    named = abrnet.binarize(model, ["1"])
    assert isinstance(named[1], abrnet.Step) and isinstance(named[3], abrnet.ABR)
    with pytest.raises(ValueError, match="not ABR layers"):
        abrnet.binarize(model, ["0"])
    with pytest.raises(ValueError):
        abrnet.binarize(model, "first")
    with pytest.raises(ValueError, match="no ABR"):
        abrnet.binarize(nn.Sequential(nn.Linear(2, 2)))


def test_binarize_matches_abr_when_slopes_are_huge():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), abrnet.ABR(16, init_slope=1e6), nn.Linear(16, 3)).eval()
    x = torch.randn(32, 6)
    assert torch.allclose(model(x), abrnet.binarize(model)(x), atol=1e-4)


def test_fold_bn_gives_the_same_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), abrnet.ABR(8), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(8, 3, 6, 6)
    model(x)
    for _ in range(3):  # give BatchNorm non-trivial running stats
        model.train()(torch.randn(8, 3, 6, 6) * 2 + 1)
    plain = abrnet.binarize(model)
    folded = abrnet.binarize(model, fold_bn=True)
    assert isinstance(folded[2], abrnet.ThresholdStep) and isinstance(folded[1], nn.Identity)
    assert torch.equal(plain(x), folded(x))
    at_zero = plain[:3](x)
    with torch.no_grad():  # a rounded ABR's step at its threshold folds too
        model[2].threshold.fill_(0.4)
    plain, folded = abrnet.binarize(model), abrnet.binarize(model, fold_bn=True)
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[2], abrnet.ThresholdStep)
    codes = plain[:3](x)
    assert not torch.equal(codes, at_zero)  # the threshold moved the bits
    assert (folded[:3](x) == codes).float().mean() > 0.999  # up to rounding right at a threshold


def test_converted_graph_module_is_still_fx():
    model = abrnet.convert(torchvision.models.resnet18(num_classes=10))
    assert isinstance(model.layer1[0], fx.GraphModule)


@pytest.mark.parametrize("threshold", [0.0, 0.3], ids=["paper", "rounded"])
def test_fold_bn_inside_converted_resnet_blocks(threshold):
    torch.manual_seed(0)
    model = abrnet.convert(torchvision.models.resnet18(num_classes=10), example_input=torch.randn(2, 3, 32, 32))
    for _ in range(2):  # non-trivial running statistics
        model.train()(torch.randn(8, 3, 32, 32))
    with torch.no_grad():  # rounded ABRs deploy as [x > t], and fold so
        for m in model.modules():
            if isinstance(m, abrnet.ABR):
                m.threshold.fill_(threshold)
    x = torch.randn(8, 3, 32, 32)
    plain, folded = abrnet.binarize(model), abrnet.binarize(model, fold_bn=True)
    # folded: one threshold per channel (a rounded ABR alone deploys with one per layer)
    thresholds = [m for m in folded.modules() if isinstance(m, abrnet.ThresholdStep) and m.threshold.numel() > 1]
    # each block's bn1 -> relu folds; bn2 + add -> relu_1 cannot, nor the stem (ResNet itself is not fx)
    assert len(thresholds) == 8
    assert not hasattr(folded.layer1[0], "bn1")
    bits = {}
    for name, net in (("plain", plain), ("folded", folded)):
        seen = []
        for m in net.modules():
            if isinstance(m, (abrnet.Step, abrnet.ThresholdStep)):
                m.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.flatten()))
        net(x)
        bits[name] = torch.cat(seen)
    # the same bits up to float rounding right at a threshold
    assert (bits["plain"] == bits["folded"]).float().mean() > 0.9999
