"""Run configuration: one dataclass, filled from a recipe file, then from flags.

Recipes ship in ``abrnet/train/recipes/*.toml``; each is a log of a reference setup. The
resolved config is saved in the run directory and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import UserError
from ..functional import GROWTH_KINDS
from ..penalty import SLOPE_LR_MULT
from ..rivals import METHODS
from ..schedule import BINARIZE_AT, FREEZE_AT, SATURATE
from .datasets import DATASETS
from .models import MODELS

SCOPES = ("all", "last")
# adaptive: abrnet.BinarizationSchedule drives the ABRs over the whole budget (default);
# paper: the reference's two phases (train, then fine-tune), plus the optional phase 3.
SCHEDULES = ("adaptive", "paper")
# Each field with a closed set of values reads it from the registry that defines it.
CHOICES = {
    "binarize": SCOPES,
    "growth_kind": GROWTH_KINDS,
    "method": METHODS,
    "dataset": tuple(DATASETS),
    "model": tuple(MODELS),
    "schedule": SCHEDULES,
}


@dataclass
class TrainConfig:
    recipe: str = "digits"
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    limit: int | None = None  # items per split, for quick runs and tests
    model: str = "mlp"
    method: str = "abr"  # the activation: abr, or a rival for comparisons
    binarize: str = "all"  # all hidden representations, or only the last one
    batchnorm: bool = False  # BatchNorm before each activation (abrnet's models only)
    # phase 1: learn with a small growth
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=list)  # epochs at which lr *= lr_gamma
    lr_gamma: float = 0.1
    growth: float | None = None  # None: the schedule's own (paper 0.001, adaptive 0)
    growth_kind: str = "log"
    slope_lr_mult: float = SLOPE_LR_MULT
    init_slope: float = 1.0
    min_slope: float = 1e-3
    shared_slope: bool = False
    binary_loss: float = 0.0
    # how the ABRs become steps over the budget (epochs + finetune_epochs + frozen_epochs)
    schedule: str = "adaptive"
    # adaptive: where the floors start to rise and where the freezing starts, as shares
    # of all steps, and the share of held-out inputs each layer saturates at the end
    binarize_at: float = BINARIZE_AT
    freeze_at: float = FREEZE_AT
    saturate: float = SATURATE
    # paper phase 2: fine-tune towards binary with a large growth and a small fixed lr;
    # None: the values that conserve the reference's fine-tune integrals (docs/method.md)
    finetune_epochs: int = 10
    finetune_lr: float | None = None
    finetune_growth: float | None = None
    # phase 3 (beyond the paper; 0 = off): freeze the activations into their steps one
    # after another, first to last, and train what lies after each frozen step
    frozen_epochs: int = 0
    frozen_lr: float = 0.001
    frozen_growth: float = 1.0  # on the activations not frozen yet
    # comparison and runtime
    baseline: bool = False  # also train the same net with ReLU on the same budget
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    workers: int = -1  # -1: 0 for in-memory data on CPU, else up to 8
    amp: bool = True  # bf16 autocast on cuda
    channels_last: bool = True  # NHWC layout for conv nets: 1.3-1.7x faster steps on CPU (max pool, conv)
    log_every: int = 0  # steps between dynamics records; 0: about 30 per epoch

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.finetune_epochs + self.frozen_epochs

    def validate(self) -> TrainConfig:
        for name, options in CHOICES.items():
            value = getattr(self, name)
            if value not in options:
                raise UserError(f"unknown {name.replace('_', '-')} {value!r}: choose from {', '.join(options)}")
        for name in ("growth", "finetune_growth", "frozen_growth", "lr", "finetune_lr", "frozen_lr", "weight_decay", "binary_loss"):
            if (getattr(self, name) or 0) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "slope_lr_mult", "init_slope", "min_slope"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("lr", "finetune_lr", "frozen_lr"):  # the optimizer steps in float32
            if not (getattr(self, name) or 0) * self.slope_lr_mult < 3.4e38:
                raise UserError(f"--{name.replace('_', '-')} x --slope-lr-mult must be finite in float32")
        if min(self.epochs, self.finetune_epochs, self.frozen_epochs) < 0 or self.total_epochs == 0:
            raise UserError("--epochs, --finetune-epochs and --frozen-epochs must be >= 0, and not all 0")
        if not 0 <= self.binarize_at <= self.freeze_at <= 1:
            raise UserError(f"need 0 <= --binarize-at ({self.binarize_at}) <= --freeze-at ({self.freeze_at}) <= 1")
        if not 0 < self.saturate < 1:
            raise UserError(f"--saturate must lie in (0, 1), got {self.saturate}")
        if self.init_slope < self.min_slope:
            raise UserError(f"--init-slope ({self.init_slope}) must be >= --min-slope ({self.min_slope})")
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"--limit must be > 0, got {self.limit}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as err:
            raise UserError(f"{source}: {err}") from None


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("abrnet.train.recipes").iterdir() if p.name.endswith(".toml"))


def load_recipe(name: str) -> dict:
    """The fields a recipe sets (a dict), by name."""
    if name not in recipe_names():
        raise UserError(f"unknown recipe {name!r}: choose from {', '.join(recipe_names())}")
    text = resources.files("abrnet.train.recipes").joinpath(f"{name}.toml").read_text()
    data = tomllib.loads(text)
    data["recipe"] = name
    return data


def resolve(recipe: str, overrides: dict) -> TrainConfig:
    """Recipe fields, then flags: the config a run uses."""
    data = load_recipe(recipe)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data, f"recipe {recipe}").validate()
