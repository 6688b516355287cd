"""Training callbacks, minGPT-style: the trainer calls ``on_step_end`` and
``on_epoch_end``; callbacks read what they need from it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..layers import ABR
from ..stats import BinaryCounter
from ..steps import binary_layers, deploy_form, freeze

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


class Callback:
    def on_resume(self, trainer) -> None:
        pass

    def on_step_end(self, trainer) -> None:
        pass

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        pass


def _slope_values(m: nn.Module) -> torch.Tensor | None:
    if isinstance(m, ABR):
        return m.effective_slope().detach().float().cpu()
    alpha = getattr(m, "alpha", None)  # PACT's clip level plays the slope's part
    return None if alpha is None else alpha.detach().float().reshape(-1).cpu()


class DynamicsRecorder(Callback):
    """Appends the state of binarization to ``dynamics.jsonl`` every ``every`` steps
    and at each epoch end: per layer, slope quantiles, shares of outputs exactly 0,
    exactly 1 and in between, the share of units whose bit flipped since the previous
    record, and the accuracy of the training form and of the stepped network, all on
    one fixed held-out batch."""

    def __init__(self, path: Path, batch: tuple[torch.Tensor, torch.Tensor], every: int) -> None:
        self.path = Path(path)
        self.x, self.y = batch
        self.every = max(1, every)
        self.previous: dict[str, torch.Tensor] = {}

    def on_step_end(self, trainer) -> None:
        # An epoch's last step is recorded by on_epoch_end: a second row at the same step
        # would show a flip share of 0 at every epoch end.
        if trainer.step % self.every == 0 and trainer.step % trainer.steps_per_epoch != 0:
            self.record(trainer, "step")

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.record(trainer, "epoch")

    def on_resume(self, trainer) -> None:
        # The checkpoint holds the model of the last epoch-end record: measure it again,
        # without writing, so the next record's flip shares compare against it.
        self.record(trainer, "epoch", write=False)

    @torch.no_grad()
    def record(self, trainer, kind: str, write: bool = True) -> None:
        model = trainer.model
        names = binary_layers(model)
        x, y = self.x.to(trainer.device), self.y.to(trainer.device)
        counters = {n: BinaryCounter() for n in names}
        steps = {n: deploy_form(model.get_submodule(n)).to(trainer.device) for n in names}
        bits: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def fn(m, inputs, out) -> None:
                counters[name](m, inputs, out)
                bits[name] = (steps[name](inputs[0]) > 0).flatten(1).cpu()

            return fn

        handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
        was_training = model.training
        model.eval()
        try:
            acc = (model(x).argmax(1) == y).float().mean().item()
            for h in handles:
                h.remove()
            # The stepped network without a deep copy.
            handles = freeze(model, names)
            stepped = (model(x).argmax(1) == y).float().mean().item() if names else None
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        layers = {}
        for n in names:
            c, s = counters[n], _slope_values(model.get_submodule(n))
            total = max(c.n, 1)
            flip = None
            if n in self.previous and self.previous[n].shape == bits[n].shape:
                flip = (self.previous[n] != bits[n]).float().mean().item()
            self.previous[n] = bits[n]
            layers[n] = {
                "slope_quantiles": None if s is None else torch.quantile(s, torch.tensor(QUANTILES)).tolist(),
                "zero": c.zero / total,
                "one": c.one / total,
                "between": (c.n - c.zero - c.one) / total,
                "flip": flip,
            }
            width = getattr(model.get_submodule(n), "window_width", None)
            if width is not None:  # the learned surrogate window's width 1/w0 (BinarizationSchedule)
                layers[n]["window_width"] = width.item()
        row = {
            "kind": kind,
            "step": trainer.step,
            "epoch": trainer.epoch_float(),
            "phase": trainer.phase,
            "lr": trainer.current_lr,
            "growth": trainer.current_growth,
            "loss": trainer.last_loss,
            "acc": acc,
            "acc_binary": stepped,
            "layers": layers,
        }
        if write:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
