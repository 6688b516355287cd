"""abrnet: deep networks with exactly binary (0/1) hidden representations.

Adjustable Bounded Rectifiers (Wu, Lin & Tang, arXiv:1511.06201): ``clamp(w_c * x, 0,
1)`` with a learnable slope per channel, pushed towards a step by a growth penalty,
then replaced by ``[x > 0]`` at deploy time. The core needs only torch and numpy.

``abrnet.load_run(RUN_DIR)`` opens a run written by ``abrnet train``; it lives in
:mod:`abrnet.train.run` and is imported on first use, so ``import abrnet`` stays light.
"""

from . import functional
from .convert import RECTIFIERS, ConversionError, convert
from .layers import ABR, Step, ThresholdStep
from .penalty import (
    abr_layers,
    add_growth_grad_,
    binary_loss,
    clamp_slopes_,
    growth_penalty,
    param_groups,
    set_lr_,
)
from .schedule import BinarizationSchedule
from .stats import LayerStats, Summary, binarization_stats, summary
from .steps import binarize, binary_layers, freeze

__version__ = "0.1.0"

_LAZY = {"load_run": "abrnet.train.run", "Run": "abrnet.train.run"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'abrnet' has no attribute {name!r}")


__all__ = [
    "ABR",
    "BinarizationSchedule",
    "ConversionError",
    "LayerStats",
    "RECTIFIERS",
    "Run",
    "Step",
    "Summary",
    "ThresholdStep",
    "abr_layers",
    "binarization_stats",
    "binarize",
    "binary_layers",
    "binary_loss",
    "add_growth_grad_",
    "clamp_slopes_",
    "convert",
    "freeze",
    "functional",
    "growth_penalty",
    "load_run",
    "param_groups",
    "set_lr_",
    "summary",
]
