"""The two-phase schedule of docs/method.md, plus the optional frozen phase 3, as
functions of the epoch alone: a resumed run rebuilds its place from the epoch count."""

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


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """The base learning rate of epoch ``epoch`` (0-based): step decay in phase 1, fixed after."""
    phase = phase_of(cfg, epoch)
    if phase == 3:
        return cfg.frozen_lr
    if phase == 2:
        return cfg.finetune_lr
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= s for s in cfg.lr_steps)


def growth_at(cfg: TrainConfig, epoch: int) -> float:
    """The growth strength of epoch ``epoch`` (0-based), by phase."""
    return (cfg.growth, cfg.finetune_growth, cfg.frozen_growth)[phase_of(cfg, epoch) - 1]
