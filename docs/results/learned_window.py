"""`abrnet train` with a study variant of the adaptive schedule: the surrogate window
keeps learning (the run behind docs/results.md's "learned window" row).

    OMP_NUM_THREADS=1 python docs/results/learned_window.py \
        train --recipe fashion-mnist --log-every 100000 --out runs/fm-quick-learned

Why: 1-bit PACT (abrnet.rivals.pact) is the default schedule's surrogate with a learned
width. Its forward is ``[x > alpha/2]``, its backward ``1/alpha`` on ``0 <= x < alpha``:
the gradient of ``clamp(w (x - alpha/2) + 1/2, 0, 1)`` at ``w = 1/alpha``, whose
gradient with respect to ``w`` is PACT's with respect to ``alpha`` (times
``-alpha**2``). The default schedule fixes ``w`` at the mean slope when its binarize
stage begins (about 1 on the quick net, where the slopes barely move in the learn
stage). Here, instead:

- the learn stage is as in the default (plain ABRs, slopes learning);
- from ``freeze_at`` on, every layer is frozen at once: forward the exact step, backward
  the gradient of ``clamp(w x + 1/2, 0, 1)`` with respect to ``x`` and to the ABR's own
  per-channel slope ``w``, which keeps training in the slopes' optimizer group;
- the floors do not rise (``w`` stays at or above its value when the stage began).
"""

import sys

import torch

import abrnet.train.engine as engine
from abrnet import functional as F
from abrnet.cli import main
from abrnet.layers import ABR
from abrnet.schedule import BinarizationSchedule


class LearnedWindow(BinarizationSchedule):
    def _measure_end(self) -> None:
        super()._measure_end()
        self.end = dict(self.start)  # no rise: the floors stay at the starting slopes

    def frozen_count(self, progress: float | None = None) -> int:
        p = self.progress if progress is None else progress
        return len(self.names) if p >= self.freeze_at else 0


def forward(self: ABR, x: torch.Tensor) -> torch.Tensor:
    if not self.frozen:
        return F.abr(x, self.slope, self.channel_dim, self.min_slope)
    if not torch.is_grad_enabled():
        return F.step(x)
    w = F._broadcast(F.floor_slope(self.slope, self.min_slope), x, self.channel_dim)
    s = torch.nn.functional.hardtanh(x * w, -0.5, 0.5)  # d/dx = w, d/dw = x on |w x| < 1/2
    return F.step(x) + (s - s.detach())


if __name__ == "__main__":
    engine.BinarizationSchedule = LearnedWindow
    ABR.forward = forward
    sys.exit(main(sys.argv[1:]))
