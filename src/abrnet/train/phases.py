"""The epoch-level schedule: the learning rate of every run, and the paper's two phases
(plus the optional frozen phase 3) as functions of the epoch alone, so a resumed run
rebuilds its place from the epoch count. The adaptive schedule's per-step work lives in
:class:`abrnet.BinarizationSchedule`."""

from __future__ import annotations

import math

from .config import TrainConfig


def phase_of(cfg: TrainConfig, epoch: int) -> int:
    """The phase that epoch ``epoch`` (0-based) belongs to: 1 train, 2 fine-tune, 3 frozen."""
    if epoch < cfg.epochs:
        return 1
    return 2 if epoch < cfg.epochs + cfg.finetune_epochs else 3


def frozen_count(cfg: TrainConfig, epoch: int, layers: int) -> int:
    """How many of ``layers`` binary layers are frozen while epoch ``epoch`` trains (and
    after training, when ``epoch`` is the total)."""
    j = epoch - cfg.epochs - cfg.finetune_epochs
    if cfg.frozen_epochs == 0 or j < 0:
        return 0
    return min(layers, math.ceil((min(j, cfg.frozen_epochs - 1) + 1) * layers / cfg.frozen_epochs))


# The reference CIFAR-10 fine-tune (40k iterations at lr 1e-5, slopes at 10x, g = 1):
# the weights move by lr x steps = 0.4, the slopes are pushed by slope lr x g x steps = 4.
REFERENCE_FINETUNE = {"lr_steps": 0.4, "slope_push": 4.0}
# The reference's phase-1 growth (CIFAR-10 quick net), the paper schedule's default.
PAPER_GROWTH = 1e-3


def finetune_values(cfg: TrainConfig, steps_per_epoch: int) -> tuple[float, float]:
    """Phase 2's ``(lr, growth)``: the config's where it sets them, else the values that
    give :data:`REFERENCE_FINETUNE`'s integrals over ``finetune_epochs`` epochs of
    ``steps_per_epoch`` steps, so a compressed fine-tune moves the weights and pushes
    the slopes as far as the reference's did."""
    steps = max(cfg.finetune_epochs * steps_per_epoch, 1)
    lr = cfg.finetune_lr if cfg.finetune_lr is not None else REFERENCE_FINETUNE["lr_steps"] / steps
    growth = cfg.finetune_growth
    if growth is None:
        growth = REFERENCE_FINETUNE["slope_push"] / (cfg.slope_lr_mult * lr * steps)
    return lr, growth


def lr_at(cfg: TrainConfig, epoch: int, steps_per_epoch: int = 1) -> float:
    """The base learning rate of epoch ``epoch`` (0-based), the same for every method:
    under the adaptive schedule the step decay runs over the whole budget; under the
    paper schedule phases 2 and 3 have their own fixed rates."""
    phase = phase_of(cfg, epoch)
    if cfg.schedule == "paper" and phase == 3:
        return cfg.frozen_lr
    if cfg.schedule == "paper" and phase == 2:
        return finetune_values(cfg, steps_per_epoch)[0]
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= s for s in cfg.lr_steps)


def growth_at(cfg: TrainConfig, epoch: int, steps_per_epoch: int = 1) -> float:
    """The paper schedule's growth strength of epoch ``epoch`` (0-based), by phase."""
    phase = phase_of(cfg, epoch)
    if phase == 2:
        return finetune_values(cfg, steps_per_epoch)[1]
    if phase == 3:
        return cfg.frozen_growth
    return cfg.growth if cfg.growth is not None else PAPER_GROWTH
