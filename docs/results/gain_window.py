"""`abrnet train` with each surrogate window's gradient multiplied by ``share ** -power``,
where ``share`` is the part of the layer's held-out inputs inside its window
``|x| < 1/(2 w0)`` when the ``binarize`` stage starts: a study variant, not a library
option (docs/results.md, "Why PACT wins here").

    ABR_GAIN_POWER=0.5 OMP_NUM_THREADS=1 python docs/results/gain_window.py \
        train --recipe fashion-mnist --log-every 100000 --out runs/fm-quick-gain

Why: docs/results/unit_window.py showed that ``--shared-slope``'s gain on the quick net
comes from the window's gradient scale (its shared slopes start at 1.31-2.37, so the
first layer's gradient is scaled by about 9.8 through the four frozen layers), not from
the narrower windows. A window holding a share ``s`` of a layer's inputs passes that
share of its gradient, so stacked windows shrink the gradient upstream by the product
of their shares (0.023 for the quick net's default windows on seed 0). ``power = 0.5``
scales each by ``1/sqrt(s)``, which keeps the gradient's mean square through the layer
when the incoming gradients are independent of the window; a rule that reads the model,
not a per-model constant.
"""

import os
import sys

import torch

import abrnet.schedule as schedule
from abrnet.cli import main
from abrnet.layers import ABR
from abrnet.stats import run_hooked

POWER = float(os.environ.get("ABR_GAIN_POWER", "0.5"))
_measure_end, _forward = schedule.BinarizationSchedule._measure_end, ABR.forward


@torch.no_grad()
def measure_end(self) -> None:
    _measure_end(self)
    if self.held_out is None:
        return
    inputs = {}
    run_hooked(self.model, self.held_out,
               {m: (lambda m, i, o, n=n: inputs.__setitem__(n, i[0].detach())) for n, m in self.abrs.items()})  # fmt: skip
    for name, m in self.abrs.items():
        w0 = self.window.get(name, self.start[name])
        share = (inputs[name].abs() < 0.5 / w0).float().mean().item() if name in inputs else 1.0
        m.gain = max(share, 1e-3) ** -POWER
        print(f"gain_window: {name} w0 {w0:.3g} share {share:.3f} gain {m.gain:.3g}", file=sys.stderr)


def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = _forward(self, x)
    gain = getattr(self, "gain", 1.0)
    if gain != 1.0 and y.requires_grad and (self.frozen or self.window is not None):
        y = y + (gain - 1.0) * (y - y.detach())  # the same values, the gradient times gain
    return y


def patch() -> None:
    """Put the gain into abrnet's schedule and ABR, for this process."""
    schedule.BinarizationSchedule._measure_end = measure_end
    ABR.forward = forward


if __name__ == "__main__":
    patch()
    sys.exit(main(sys.argv[1:]))
