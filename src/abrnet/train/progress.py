"""The progress bar: loss, accuracy, the mean slope of the ABRs not yet frozen, and the
binary share, on the main rank."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from ..stats import mean_slope
from ..steps import binary_layers


class Bar:
    refresh_every = 10  # steps between recomputing the binary share

    def __init__(self, trainer, desc: str) -> None:
        self.trainer = trainer
        self.outputs: dict[str, torch.Tensor] = {}
        model = trainer.model
        self.handles = [model.get_submodule(n).register_forward_hook(self._keep(n)) for n in binary_layers(model)]
        total = trainer.steps_per_epoch
        self.bar = tqdm(total=total, desc=desc, leave=True, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        self.n = 0

    def _keep(self, name: str):
        def hook(m, inputs, out) -> None:
            self.outputs[name] = out  # a reference only: shares are computed at refresh

        return hook

    def update(self, trainer, loss: float, acc: float) -> None:
        self.n += 1
        self.bar.update(1)
        if self.n % self.refresh_every and self.n != trainer.steps_per_epoch:
            return
        post = {"loss": f"{loss:.4f}", "acc": f"{acc:.4f}"}
        slope = mean_slope(trainer.model, frozen=False)  # a frozen layer's slope takes no part
        if slope is not None:
            post["slope"] = f"{slope:.3g}"
        if self.outputs:
            with torch.no_grad():
                outs = [o.detach() for o in self.outputs.values()]
                binary = sum(((o == 0) | (o == 1)).sum().item() for o in outs) / sum(o.numel() for o in outs)
            post["binary"] = f"{binary:.4f}"
        self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.outputs.clear()
        self.bar.close()


def progress_factory(enabled: bool):
    """``factory(label)(trainer) -> Bar``, or None when bars are off."""
    if not enabled:
        return None

    def for_label(label: str):
        def make(trainer) -> Bar:
            # The adaptive schedule's stage (learn, binarize, freeze); the paper's phase otherwise.
            sched = trainer.binarization
            phase = sched.stage if sched is not None else {1: "train", 2: "fine-tune", 3: "frozen"}[trainer.phase]
            return Bar(trainer, f"{label} {phase} {trainer.epoch + 1}/{trainer.cfg.total_epochs}")

        return make

    return for_label
