"""``export_onnx``: the caller's model is left as it came (no hooks, same training mode),
and BatchNorm nets export with every step output bit-identical to PyTorch's."""

import pytest
import torch
from torch import nn

import abrnet
from abrnet.codes.export import export_onnx

pytest.importorskip("onnxruntime")


def mlp():
    torch.manual_seed(0)
    model = abrnet.convert(nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3)))
    return abrnet.binarize(model)


def hooks_left(model):
    return {name: len(m._forward_hooks) for name, m in model.named_modules() if m._forward_hooks}


@pytest.mark.parametrize("training", [True, False])
def test_export_leaves_no_hooks_and_the_training_mode(tmp_path, training):
    model = mlp().train(training)
    result = export_onnx(model, torch.randn(5, 12), tmp_path / "m.onnx")
    assert result["ok"] and result["bits_equal"] and result["binary_outputs_checked"] == 1
    assert hooks_left(model) == {}
    assert all(m.training is training for m in model.modules())


def test_export_keeps_mixed_modes(tmp_path):
    model = mlp().train()
    model[1].eval()
    export_onnx(model, torch.randn(3, 12), tmp_path / "m.onnx")
    assert [m.training for m in model] == [True, False, True, True]
    assert model.training and hooks_left(model) == {}


@pytest.fixture(scope="module")
def resnet():
    """torchvision's resnet18 converted to ABRs, its BatchNorm running stats moved off
    their initial values by a few train-mode forwards."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = abrnet.convert(torchvision.models.resnet18(num_classes=10), example_input=torch.randn(1, 3, 32, 32))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    return model


@pytest.mark.parametrize("fold_bn", [False, True])
def test_batchnorm_net_exports_bit_identical(resnet, tmp_path, fold_bn):
    deployed = abrnet.binarize(resnet, fold_bn=fold_bn)
    n_steps = len(abrnet.binary_layers(resnet))
    assert sum(abrnet.layers.is_step(m) for m in deployed.modules()) == n_steps
    torch.manual_seed(1)
    result = export_onnx(deployed, torch.randn(4, 3, 32, 32), tmp_path / "r.onnx")
    assert result["binary_outputs_checked"] == n_steps
    assert result["bits_equal"], result
    assert result["ok"], result
    assert not deployed.training and hooks_left(deployed) == {}
