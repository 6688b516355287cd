"""`abrnet train` with the surrogate window's gradient scale set to 1: the window keeps
its width (``|x| < 1/(2 w0)``) but passes the gradient unscaled, where the library passes
``w0`` times it: a study variant, not a library option (docs/results.md, "Why PACT wins
here").

    OMP_NUM_THREADS=1 python docs/results/unit_window.py \
        train --recipe fashion-mnist --shared-slope --log-every 100000 --out runs/fm-quick-unit

Why: with ``--shared-slope`` the quick net's windows start at slopes 1.31-2.37 (seed 0),
so the gradient reaching its first layer through the four frozen layers is scaled by
their product, about 9.8, where per-channel slopes (about 1.04 each) give 1.2; the
MLP's two shared slopes (1.18, 2.41) give 2.8. Either the narrower windows or this
larger effective learning rate upstream is what moves the quick net up and the MLP
down; this variant keeps the first and removes the second.
"""

import sys

import torch

import abrnet.functional as F
from abrnet.cli import main


def windowed(x: torch.Tensor, w0: float, value: torch.Tensor | None = None) -> torch.Tensor:
    h = 0.5 / w0
    s = torch.nn.functional.hardtanh(x, -h, h)  # gradient 1 inside the window
    out = s.detach()
    out.ceil_() if value is None else out.copy_(value)  # (h < 1 needed for ceil: checked below)
    return s


if __name__ == "__main__":
    _library = F.windowed

    def checked(x, w0, value=None):
        return windowed(x, w0, value) if w0 > 0.5 else _library(x, w0, value)

    F.windowed = checked
    sys.exit(main(sys.argv[1:]))
