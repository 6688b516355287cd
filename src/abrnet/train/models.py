"""Model registry: every network a recipe, the CLI or a test can build, by name.

Builders take ``act(channels, last)``, which returns the activation module for a
hidden representation (``last`` marks the one that feeds the classifier), so one
definition serves ABR, ReLU and the rival methods, and "last layer binary" is a
choice of ``act``, not another model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Act = Callable[[int, bool], nn.Module]
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(fn):
        MODELS[name] = fn
        return fn

    return wrap


def create_model(name: str, *, act: Act, num_classes: int, input_shape: tuple[int, int, int], batchnorm: bool = False):
    if name not in MODELS:
        from ..errors import UserError

        raise UserError(f"unknown model {name!r}: choose from {', '.join(sorted(MODELS))}")
    return MODELS[name](act=act, num_classes=num_classes, input_shape=input_shape, batchnorm=batchnorm)


def _flat_size(features: nn.Module, input_shape) -> int:
    with torch.no_grad():
        return features.eval()(torch.zeros(1, *input_shape)).numel()


def _norm(batchnorm: bool, c: int, dims: int) -> list[nn.Module]:
    if not batchnorm:
        return []
    return [nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm1d(c)]


@register("mlp")
def mlp(act: Act, num_classes: int, input_shape, batchnorm=False, hidden=(256, 128)) -> nn.Module:
    """Flatten - [fc - act] x len(hidden) - fc. The digits recipe's net."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(input_shape).prod())
    for i, h in enumerate(hidden):
        layers += [nn.Linear(width, h), *_norm(batchnorm, h, 1), act(h, i == len(hidden) - 1)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register("lenet")
def lenet(act: Act, num_classes: int, input_shape, batchnorm=False) -> nn.Module:
    """Caffe's LeNet: conv5x5(20) - pool - conv5x5(50) - pool - fc500 - fc, act after
    each pool and after fc500. An act after the max pool is the same function as one
    before it (monotone activations commute with max), at a quarter of the cost."""
    c = input_shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 20, 5), nn.MaxPool2d(2), *_norm(batchnorm, 20, 2), act(20, False),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), *_norm(batchnorm, 50, 2), act(50, False),
        nn.Flatten(),
    )  # fmt: skip
    n = _flat_size(features, input_shape)
    return nn.Sequential(
        features, nn.Linear(n, 500), *_norm(batchnorm, 500, 1), act(500, True), nn.Linear(500, num_classes)
    )


@register("quick")
def quick(act: Act, num_classes: int, input_shape, batchnorm=False, hidden=64) -> nn.Module:
    """The CIFAR-10 "quick" net of the reference (Caffe pools round up: ceil_mode).

    As in Caffe's cifar10_quick, the first activation comes after the max pool: a
    monotone activation commutes with max pooling, so without BatchNorm this is the
    same function as conv-act-pool, at a quarter of the activation's cost.
    """
    c = input_shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True),
        *_norm(batchnorm, 32, 2), act(32, False),
        nn.Conv2d(32, 32, 5, padding=2), *_norm(batchnorm, 32, 2), act(32, False),
        nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), *_norm(batchnorm, 64, 2), act(64, False),
        nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
    )  # fmt: skip
    n = _flat_size(features, input_shape)
    return nn.Sequential(
        features, nn.Linear(n, hidden), *_norm(batchnorm, hidden, 1), act(hidden, True), nn.Linear(hidden, num_classes)
    )


@register("caffenet")
def caffenet(act: Act, num_classes: int, input_shape, batchnorm=False) -> nn.Module:
    """CaffeNet (AlexNet as in Caffe: LRN, grouped convs), act after conv1..5, fc6, fc7,
    dropout removed as in the paper's ImageNet experiment."""
    c = input_shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 96, 11, stride=4), *_norm(batchnorm, 96, 2), act(96, False),
        nn.MaxPool2d(3, 2), nn.LocalResponseNorm(5, 1e-4, 0.75),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), *_norm(batchnorm, 256, 2), act(256, False),
        nn.MaxPool2d(3, 2), nn.LocalResponseNorm(5, 1e-4, 0.75),
        nn.Conv2d(256, 384, 3, padding=1), *_norm(batchnorm, 384, 2), act(384, False),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), *_norm(batchnorm, 384, 2), act(384, False),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), *_norm(batchnorm, 256, 2), act(256, False),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
    )  # fmt: skip
    n = _flat_size(features, input_shape)
    return nn.Sequential(
        features,
        nn.Linear(n, 4096), *_norm(batchnorm, 4096, 1), act(4096, False),
        nn.Linear(4096, 4096), *_norm(batchnorm, 4096, 1), act(4096, True),
        nn.Linear(4096, num_classes),
    )  # fmt: skip


@register("resnet18")
def resnet18(act: Act, num_classes: int, input_shape, batchnorm=False) -> nn.Module:
    """torchvision's resnet18, each ReLU call site converted by :func:`abrnet.convert`."""
    import torchvision

    from ..convert import convert

    model = torchvision.models.resnet18(num_classes=num_classes)
    if input_shape[0] != 3:
        model.conv1 = nn.Conv2d(input_shape[0], 64, 7, 2, 3, bias=False)
    sites: list[nn.Module] = []

    def factory() -> nn.Module:
        sites.append(nn.Identity())  # placeholder; replaced below once the last is known
        return sites[-1]

    model = convert(model, inplace=True, factory=factory)
    # Call sites are created in forward order; the last one feeds the classifier.
    names = [n for n, m in model.named_modules() if any(m is s for s in sites)]
    widths = _site_widths(model, names, input_shape)
    for i, name in enumerate(names):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, act(widths[name], i == len(names) - 1))
    return model


def _site_widths(model: nn.Module, names: list[str], input_shape) -> dict[str, int]:
    widths: dict[str, int] = {}

    def record(name: str):
        def hook(m, inputs, out) -> None:
            widths[name] = out.shape[1]

        return hook

    hooks = [model.get_submodule(n).register_forward_hook(record(n)) for n in names]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return widths
