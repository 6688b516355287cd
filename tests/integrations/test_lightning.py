"""The Lightning callback, on Lightning's own Trainer on the CPU."""

import pytest
import torch
from torch import nn

import abrnet

L = pytest.importorskip("lightning", reason="lightning is a test dependency: pip install -e '.[all]'")
from abrnet.integrations.lightning import Binarization  # noqa: E402


class Digits(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
        self.net = abrnet.convert(net, example_input=torch.zeros(1, 64))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(abrnet.param_groups(self, lr=0.1), lr=0.1, momentum=0.9)


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    train, test = order[:1400], order[1400:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[train], y[train]), batch_size=50,
                                         shuffle=True, generator=g)  # fmt: skip
    return loader, x[test], y[test]


def _trainer(tmp_path, epochs, **kw):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, **kw)  # fmt: skip


def test_callback_ends_with_the_deployed_network(tmp_path):
    loader, x, y = _digits()
    module, callback = Digits(), Binarization()
    _trainer(tmp_path, 12, callbacks=[callback]).fit(module, loader)
    schedule = callback.schedule
    assert schedule.step_count == schedule.total_steps == 12 * len(loader)
    assert schedule.frozen_count() == 2 and schedule.end  # measured on the first batch
    module.eval()
    deployed = abrnet.binarize(module.net)
    with torch.no_grad():
        trained, out = module(x), deployed(x)
    torch.testing.assert_close(trained, out)  # training form = deployed form
    stats = abrnet.binarization_stats(deployed, x)
    assert abrnet.stats.non_binary_outputs(stats)["non_binary_outputs"] == 0
    assert (out.argmax(1) == y).float().mean() > 0.9
    # the optimizer has no abrnet hooks left (the callback drove the schedule itself)
    assert not callback.schedule._hooks


def test_callback_state_resumes_from_a_lightning_checkpoint(tmp_path):
    loader, _, _ = _digits()
    first = Binarization(total_steps=8 * len(loader))
    trainer = _trainer(tmp_path, 6, callbacks=[first])
    trainer.fit(Digits(), loader)  # stops at 6 of the 8 epochs the schedule spans
    ckpt = tmp_path / "six.ckpt"
    trainer.save_checkpoint(ckpt)
    assert first.schedule.step_count == 6 * len(loader) and first.schedule.end
    resumed = Binarization(total_steps=8 * len(loader))
    _trainer(tmp_path, 8, callbacks=[resumed]).fit(Digits(), loader, ckpt_path=ckpt)
    assert resumed.schedule.step_count == 8 * len(loader)
    assert resumed.schedule.start == first.schedule.start and resumed.schedule.end == first.schedule.end
    assert resumed.schedule.frozen_count() == 2


class DigitsDecayed(Digits):
    def configure_optimizers(self):  # the scheduler is built before the callback's schedule
        opt = super().configure_optimizers()
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.99**step)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def test_the_learned_windows_follow_a_scheduler_from_configure_optimizers(tmp_path):
    # LambdaLR refused to step once a group it did not see was added: the widths now sit
    # in the first group, at the rate it schedules.
    loader, _, _ = _digits()
    module, callback = DigitsDecayed(), Binarization()
    trainer = _trainer(tmp_path, 3, callbacks=[callback])
    trainer.fit(module, loader)
    opt, steps = trainer.optimizers[0], 3 * len(loader)
    assert callback.schedule.step_count == steps and len(opt.param_groups) == 2  # weights, slopes
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.99**steps)
    widths = list(callback.schedule.width.values())
    assert [id(p) for p in opt.param_groups[0]["params"][-len(widths) :]] == [id(w) for w in widths]
    assert all(w.item() != pytest.approx(1 / callback.schedule.start[n]) for n, w in callback.schedule.width.items())
