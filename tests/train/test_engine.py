"""Checkpoints and the trainer, in process: atomic writes, exact round trips, a full disk."""

import dataclasses
import errno
import json

import pytest
import torch
from torch import nn

import abrnet
from abrnet.errors import UserError
from abrnet.rivals import make_activation
from abrnet.train import checkpoint, phases
from abrnet.train.config import TrainConfig
from abrnet.train.datasets import DatasetInfo
from abrnet.train.distributed import DistInfo
from abrnet.train.engine import Trainer

INFO = DatasetInfo("toy", 3, (1, 2, 4), ("a", "b", "c"))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), abrnet.ABR(16), nn.Linear(16, 3))


def _data(n=40):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 1, 2, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.TensorDataset(x, y)


def _trainer(tmp_path, **kw):
    cfg = TrainConfig(epochs=2, finetune_epochs=1, batch_size=8, lr=0.05, **kw)
    return Trainer(cfg, _model(), _data(), _data(16), tmp_path, torch.device("cpu"), DistInfo(), INFO)


def test_checkpoint_round_trips_model_optimizer_and_rng(tmp_path):
    t = _trainer(tmp_path)
    t.train_epoch()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    momentum = [t.opt.state[p]["momentum_buffer"].clone() for p in t.model.parameters()]
    t2 = _trainer(tmp_path)
    assert t2.resume() and t2.epoch == 1 and t2.step == t.step
    for k, v in t2.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, m in zip(t2.model.parameters(), momentum, strict=True):
        assert torch.equal(t2.opt.state[p]["momentum_buffer"], m)
    assert [g["lr"] for g in t2.opt.param_groups] == [g["lr"] for g in t.opt.param_groups]
    # both continue identically
    a, b = t.train_epoch(), t2.train_epoch()
    assert {k: v for k, v in a.items() if k != "epoch_time"} == {k: v for k, v in b.items() if k != "epoch_time"}
    # the time spent before the resume carries on into the checkpoint (and the report's wall time)
    _, meta = checkpoint.read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert t2.earlier_s > 0 and meta["elapsed_s"] >= t2.earlier_s + b["epoch_time"]


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    t = _trainer(tmp_path)
    t.train_epoch()
    good = (tmp_path / "checkpoint.safetensors").read_bytes()

    def full(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(UserError, match="No space left on device.*previous checkpoint is intact"):
        t.train_epoch()
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_paper_schedule_two_phases(tmp_path):
    t = _trainer(tmp_path, schedule="paper", lr_steps=[1], finetune_lr=1e-4, growth=0.01, finetune_growth=2.0)
    rows = [t.train_epoch() for _ in range(3)]
    assert [r["phase"] for r in rows] == [1, 1, 2]
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.005, 1e-4])
    assert [r["growth"] for r in rows] == [0.01, 0.01, 2.0]
    slopes = t.opt.param_groups[1]
    assert slopes["name"] == "slopes" and slopes["lr"] == pytest.approx(1e-4 * 10)


def test_unset_stages_are_the_schedules_defaults_for_the_binary_layers(tmp_path):
    t = _trainer(tmp_path, schedule="adaptive")  # rounded steps: binary from the first step
    assert (t.cfg.binarize_at, t.cfg.freeze_at) == (None, None)
    assert (t.binarization.binarize_at, t.binarization.freeze_at) == (0.0, 0.0)
    t = _trainer(tmp_path, schedule="adaptive", rounded=False)  # one centred binary layer: the early stages
    assert (t.binarization.binarize_at, t.binarization.freeze_at) == (0.01, 0.02)
    assert _trainer(tmp_path, schedule="adaptive", freeze_at=0.5).binarization.freeze_at == 0.5
    TrainConfig(binarize_at=0.3).validate()
    for bad in ({"binarize_at": 0.5, "freeze_at": 0.2}, {"binarize_at": 1.5}, {"freeze_at": -0.1}):
        with pytest.raises(UserError, match="need 0 <= --binarize-at"):
            TrainConfig(**bad).validate()


def test_adaptive_schedule_ends_as_the_deployed_network(tmp_path):
    t = _trainer(tmp_path, lr_steps=[2], schedule="adaptive", binarize_at=0.5, freeze_at=0.8)
    assert t.binarization is not None
    rows = t.fit()
    assert [r["stage"] for r in rows] == ["learn", "binarize", "freeze"]  # at each epoch's end
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.05, 0.005])  # one decay over the budget
    assert rows[-1]["frozen"] == 1 and rows[-1]["test_acc"] == rows[-1]["test_acc_binary"]
    x = _data(16).tensors[0]
    t.model.eval()
    assert torch.equal(t.model(x), abrnet.binarize(t.model)(x))
    _, meta = checkpoint.read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["frozen"] == 1 and meta["binarization"]["step"] == t.step == t.total_steps
    # the learned window: in the optimizer, on the same lr decay; trained; in the checkpoint
    widths = list(t.binarization.width.values())
    assert t.opt.param_groups[0]["params"][-len(widths) :] == widths
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.005)
    width, start = meta["binarization"]["width"]["2"], meta["binarization"]["start"]["2"]
    assert width == t.binarization.width["2"].item() and width != pytest.approx(1 / start)


def test_the_adaptive_schedule_leaves_rival_activations_alone(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), make_activation("ste"), nn.Linear(16, 3))
    cfg = TrainConfig(schedule="adaptive", epochs=2, finetune_epochs=1, batch_size=8, lr=0.05)
    t = Trainer(cfg, model, _data(), _data(16), tmp_path, torch.device("cpu"), DistInfo(), INFO)
    assert t.binarization is None
    t.fit()
    before = model[1].weight.detach().clone()
    t.cfg = dataclasses.replace(cfg, epochs=3)
    t.train_epoch()  # nothing frozen: the layer before the STE still learns at the end
    assert t.frozen == 0 and not torch.equal(before, model[1].weight)


def test_frozen_count_freezes_first_to_last():
    cfg = TrainConfig(epochs=2, finetune_epochs=1, frozen_epochs=2)
    assert [phases.frozen_count(cfg, e, 3) for e in range(6)] == [0, 0, 0, 2, 3, 3]
    cfg = TrainConfig(epochs=1, finetune_epochs=0, frozen_epochs=5)
    assert [phases.frozen_count(cfg, e, 2) for e in range(7)] == [0, 1, 1, 2, 2, 2, 2]
    assert phases.frozen_count(TrainConfig(frozen_epochs=0), 99, 2) == 0


def test_frozen_phase_trains_only_what_follows_the_frozen_steps(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(8, 16), abrnet.ABR(16), nn.Linear(16, 6), abrnet.ABR(6), nn.Linear(6, 3)
    )
    cfg = TrainConfig(schedule="paper", epochs=1, finetune_epochs=0, frozen_epochs=2, batch_size=8, lr=0.05,
                      frozen_lr=0.05)  # fmt: skip
    t = Trainer(cfg, model, _data(), _data(16), tmp_path, torch.device("cpu"), DistInfo(), INFO)
    t.train_epoch()
    before = [p.detach().clone() for p in model.parameters()]
    row = t.train_epoch()  # phase 3, first epoch: the first ABR is a step
    assert row["phase"] == 3 and row["lr"] == 0.05
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    # Linear(8, 16) and the first slope get no gradient through the step; the rest trains
    assert changed == [False, False, False, True, True, True, True, True]
    t.train_epoch()
    t.fit()
    # everything frozen: the training form is the deployed network
    x = _data(16).tensors[0]
    model.eval()
    assert torch.equal(model(x), abrnet.binarize(model)(x))


def test_checkpoint_metadata_carries_the_config(tmp_path):
    t = _trainer(tmp_path)
    t.train_epoch()
    _, meta = checkpoint.read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["config"] == json.loads(t.cfg.to_json()) and meta["epoch"] == 1


def test_loading_never_unpickles(tmp_path):
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" * 3)
    with pytest.raises(UserError, match="corrupt or truncated"):
        checkpoint.read_checkpoint(evil)
