"""`abrnet train` with the surrogate window's width learned, one parameter per layer, the
way 1-bit PACT learns its clip level: a study variant, not a library option
(docs/results.md, "Why PACT wins here").

    OMP_NUM_THREADS=1 python docs/results/window_param.py \
        train --recipe fashion-mnist --log-every 100000 --out runs/fm-quick-wp

Why: PACT is the default schedule's surrogate with a learned width (docs/results.md), and
it leads ABR by 1.4 points on the quick net, while a window fixed at the starting slope
ties with DoReFa's fixed window. ``docs/results/learned_window.py`` learned the window
through the ABRs' own slopes, with the floors holding them at or above their start; here
the window is its own scalar per layer, ``alpha = 1/w0`` (the window's full width, as
PACT's clip level is), created when the ``binarize`` stage starts at the default's
``1/w0``, free to widen or narrow, trained with the weights' learning rate:

- backward wrt ``x``: ``1/alpha`` inside ``|x| < alpha/2``, the default's surrogate;
- backward wrt ``alpha``: ``-x/alpha**2`` inside (centred: the threshold stays at 0);
  ``ABR_WP_THRESHOLD=1`` adds PACT's threshold term ``-1/(2 alpha)`` inside, as if the
  window sat on ``[0, alpha)`` with the step at ``alpha/2``;
- ``ABR_WP_LR_MULT=k`` trains the widths at ``k`` times the weights' learning rate;
- ``ABR_WP_SHIFT=1`` is 1-bit PACT itself from the ``binarize`` stage on: the forward is
  the step at ``alpha/2`` (in training and in evaluation), the window ``[0, alpha)``,
  the gradient wrt ``alpha`` that of ``clamp(x/alpha, 0, 1)``. The library deploys the
  step at 0, so only the run's *training form* accuracy is this network's (folding
  ``alpha/2`` into the bias before each layer would deploy it exactly).
"""

import os
import sys

import torch

import abrnet.train.engine as engine
from abrnet import functional as F
from abrnet.cli import main
from abrnet.layers import ABR
from abrnet.schedule import BinarizationSchedule

THRESHOLD = os.environ.get("ABR_WP_THRESHOLD", "0") == "1"
LR_MULT = float(os.environ.get("ABR_WP_LR_MULT", "1"))
SHIFT = os.environ.get("ABR_WP_SHIFT", "0") == "1"
MIN_ALPHA = 1e-3


class WindowParam(BinarizationSchedule):
    def _measure_end(self) -> None:
        super()._measure_end()
        params = []
        for name, m in self.abrs.items():
            w0 = self.window.get(name, self.start[name])
            alpha = torch.nn.Parameter(torch.tensor(1.0 / w0, device=m.slope.device))
            object.__setattr__(m, "wp_alpha", alpha)  # not registered: checkpoints stay the library's
            params.append(alpha)
        lr = LR_MULT * self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0].get("lr_mult", 1.0)
        self.optimizer.add_param_group({"params": params, "lr": lr, "lr_mult": LR_MULT, "weight_decay": 0.0})
        print("window_param: start " + ", ".join(f"{1 / p.item():.3g}" for p in params), file=sys.stderr)

    def after_step(self) -> None:
        super().after_step()
        if self.step_count % 600 == 0 and self.end:
            alphas = [getattr(m, "wp_alpha", None) for m in self.abrs.values()]
            print(f"window_param: step {self.step_count} alpha "
                  + ", ".join(f"{a.item():.3g}" for a in alphas if a is not None), file=sys.stderr)  # fmt: skip


_forward = ABR.forward


def forward(self: ABR, x: torch.Tensor) -> torch.Tensor:
    alpha = getattr(self, "wp_alpha", None)
    if SHIFT and alpha is not None and self.window is not None:
        a = alpha.clamp(min=MIN_ALPHA)
        value = (x > a.detach() / 2).to(x.dtype)
        if not torch.is_grad_enabled():
            return value
        s = torch.nn.functional.hardtanh(x / a - 0.5, -0.5, 0.5)
        return value + (s - s.detach())
    if alpha is None or self.window is None or not torch.is_grad_enabled():
        return _forward(self, x)
    with torch.no_grad():
        value = F.step(x) if self.frozen else F.abr(x, self.slope, self.channel_dim, self.min_slope)
    a = alpha.clamp(min=MIN_ALPHA)
    s = torch.nn.functional.hardtanh(x / a, -0.5, 0.5)
    if THRESHOLD:  # d/dalpha gains -1/(2 alpha) inside the window, the value unchanged
        inside = (s.detach().abs() < 0.5).to(x.dtype)
        c = -0.5 * torch.log(a) * inside
        s = s + (c - c.detach())
    return value + (s - s.detach())


if __name__ == "__main__":
    engine.BinarizationSchedule = WindowParam
    ABR.forward = forward
    sys.exit(main(sys.argv[1:]))
