"""convert on models nobody here wrote: torchvision's and timm's, as users bring them.

For each: one ABR per activation call site (counted independently, by watching the
activation functions run), forward and backward, ``binarize`` with every step output
exactly 0/1, and ``torch.compile`` of the converted model.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import abrnet

timm = pytest.importorskip("timm", reason="timm is a test dependency: pip install -e '.[all]'")
torchvision = pytest.importorskip("torchvision")

_RELU = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6}


class _CountRectifiers(TorchFunctionMode):
    """Counts ReLU and ReLU6 evaluations, whether a module or a functional call made them
    (nn.ReLU6 runs F.hardtanh(x, 0, 6)); inner calls of a counted one are not seen."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        bounds = (kwargs.get("min_val", args[1] if len(args) > 1 else -1.0),
                  kwargs.get("max_val", args[2] if len(args) > 2 else 1.0))  # fmt: skip
        if func in _RELU or (func in (F.hardtanh, F.hardtanh_) and bounds == (0.0, 6.0)):
            self.calls += 1
        return func(*args, **kwargs)


def _call_sites(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), _CountRectifiers() as count:
        model.eval()(x)
    return count.calls


def _build(source: str, name: str) -> nn.Module:
    torch.manual_seed(0)
    if source == "timm":
        return timm.create_model(name, num_classes=10)
    return getattr(torchvision.models, name)(num_classes=10)


# (source, name, call sites at 64x64): what each model exercises is in the comment.
ZOO = [
    ("torchvision", "resnet18", 17),  # one nn.ReLU called twice per block
    ("torchvision", "densenet121", 121),  # functional F.relu in forward
    ("torchvision", "mobilenet_v2", 35),  # ReLU6
    ("torchvision", "shufflenet_v2_x0_5", 37),
    ("torchvision", "squeezenet1_0", 26),
    ("torchvision", "mnasnet0_5", 35),
    ("timm", "resnet50", 49),
    ("timm", "regnetx_002", 40),
    ("timm", "mobilenetv2_100", 35),  # ReLU6
    ("timm", "vgg11", 10),  # not traceable as a whole: converted part by part
]


@pytest.mark.parametrize("source,name,sites", ZOO, ids=[f"{s}-{n}" for s, n, _ in ZOO])
def test_convert_any_model(source, name, sites):
    model = _build(source, name)
    x = torch.randn(2, 3, 64, 64)
    assert _call_sites(model, x) == sites
    converted = abrnet.convert(model, example_input=x)
    abrs = [m for _, m in abrnet.abr_layers(converted)]
    assert len(abrs) == sites and _call_sites(converted, x) == 0
    # every ABR is called exactly once per forward pass: one call site, one set of slopes
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append(id(m))) for m in abrs]
    converted.train()(x).sum().backward()
    for h in hooks:
        h.remove()
    assert sorted(calls) == sorted(id(m) for m in abrs)
    assert all(m.slope.grad is not None for m in abrs)
    # deployed: every step output exactly 0/1
    deployed = abrnet.binarize(converted)
    outs = []
    for m in deployed.modules():
        if abrnet.layers.is_step(m):
            m.register_forward_hook(lambda m, i, o: outs.append(o))
    with torch.no_grad():
        deployed(x)
    assert len(outs) == sites
    assert all(((o == 0) | (o == 1)).all() for o in outs)
    # torch.compile captures it whole, forward and backward. aot_eager: dynamo's graph
    # capture and AOT autograd, which is what conversion could break; inductor's code
    # generation takes minutes a model on a CPU (one small model runs it below).
    compiled = torch.compile(converted, backend="aot_eager")
    out = compiled.train()(x)
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_nothing_to_convert_names_what_the_model_uses():
    model = _build("timm", "efficientnet_b0")
    with pytest.raises(abrnet.ConversionError, match=r"no ReLU, ReLU6 found; it uses SiLU \(49\), Sigmoid \(16\)"):
        abrnet.convert(model)
    # the message's way out works: SiLU chosen explicitly, Sigmoid (the SE gates) left alone
    converted = abrnet.convert(model, activations=(nn.SiLU,), example_input=torch.randn(2, 3, 64, 64))
    assert len(list(abrnet.abr_layers(converted))) == 49
    assert sum(isinstance(m, nn.Sigmoid) for m in converted.modules()) == 16


def test_inductor_compiles_a_converted_model():
    model = abrnet.convert(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)),
        example_input=torch.randn(2, 3, 8, 8),
    )
    x = torch.randn(4, 3, 8, 8)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()
    assert model[1].slope.grad is not None
