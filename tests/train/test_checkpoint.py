"""Optimizer states saved by older versions still resume."""

import torch
from torch import nn

import abrnet
from abrnet.train import checkpoint
from abrnet.windows import add_widths


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), abrnet.ABR(6), nn.Linear(6, 3), abrnet.ABR(3), nn.Linear(3, 2))


def _steps(opt, params, n=3):
    for k in range(n):
        for i, p in enumerate(params):
            p.grad = torch.full_like(p, 0.1 * (i + 1) + k)
        opt.step()


def test_a_state_with_the_old_windows_group_resumes_with_the_widths_in_the_first(tmp_path):
    # Until 2026-12-01 the widths had a last param group, "windows", of their own.
    old_net = _net()
    old = torch.optim.SGD(abrnet.param_groups(old_net, lr=0.1), momentum=0.9)
    old_widths = [torch.ones((), requires_grad=True) for _ in range(2)]
    old.add_param_group({"params": old_widths, "lr": 0.1, "lr_mult": 1.0, "weight_decay": 0.0, "name": "windows"})
    _steps(old, [p for g in old.param_groups for p in g["params"]])
    checkpoint.save_checkpoint(tmp_path / "c.safetensors", old_net, metadata={}, optimizer=old)

    net = _net()
    new = torch.optim.SGD(abrnet.param_groups(net, lr=0.1), momentum=0.9)
    abrs = dict(abrnet.abr_layers(net))
    widths = list(add_widths(new, abrs, net).values())
    tensors, meta = checkpoint.read_checkpoint(tmp_path / "c.safetensors")
    checkpoint.restore_training(new, tensors, meta)
    assert [g.get("name") for g in new.param_groups] == ["weights", "slopes"]
    before = dict(zip(old_net.parameters(), net.parameters(), strict=True)) | dict(zip(old_widths, widths))
    for p_old, p_new in before.items():  # every momentum buffer where its tensor now is
        torch.testing.assert_close(new.state[p_new]["momentum_buffer"], old.state[p_old]["momentum_buffer"])
    assert new.param_groups[0]["params"][-2:] == widths
