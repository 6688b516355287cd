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
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import UserError
from ..functional import GROWTH_KINDS
from ..penalty import SLOPE_LR_MULT
from ..rivals import METHODS
from ..schedule import (
    BINARIZE_AT,
    CENTRED_BINARIZE_AT,
    CENTRED_FREEZE_AT,
    CENTRED_SEVERAL_BINARIZE_AT,
    CENTRED_SEVERAL_FREEZE_AT,
    FREEZE_AT,
    ROUNDED,
    SATURATE,
)
from .datasets import DATASETS
from .models import MODELS

SCOPES = ("all", "last")
# Fields added with a default that changed the maths, and the value a run saved before
# them trained with: its config.json lacks them, and a resume must go on the same way.
SAVED_BEFORE = {"learn_window": False, "rounded": False}
# adaptive (the default): abrnet.BinarizationSchedule drives the ABRs over the whole
# budget; with its centred surrogate and early stages it is measured above the paper
# schedule on the digits and on both Fashion-MNIST nets (docs/results.md). paper: the
# reference's two phases (train, then fine-tune), plus the optional phase 3.
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


def _f(default, help: str, **kw):
    """A config field with its one-line help, which the command line shows as is."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class TrainConfig:
    recipe: str = _f("digits", "the recipe the other fields came from")
    dataset: str = _f("digits", "the data")
    data_dir: str | None = _f(None, "where the dataset lies (default: Debian's folder, else ~/.cache/abrnet/data)")
    download: bool = _f(False, "download the dataset with torchvision where it offers that (MNIST, CIFAR-10)")
    limit: int | None = _f(None, "keep the first N items of each split, for quick runs")
    model: str = _f("mlp", "the network")
    method: str = _f("abr", "the binary activation: abr, or a rival for comparisons")
    binarize: str = _f("all", "binary hidden representations: every one, or only the last (ReLU elsewhere)")
    batchnorm: bool = _f(False, "BatchNorm before each activation (abrnet's models)")
    # the budget and the learning rate, the same for every method
    epochs: int = _f(20, "epochs of training (phase 1 of the paper schedule)")
    batch_size: int = _f(64, "items per step")
    lr: float = _f(0.01, "SGD learning rate of the weights")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(0.0, "weight decay (never on slopes)")
    lr_steps: list[int] = _f([], "epochs (comma-separated) at which the lr is multiplied by --lr-gamma")
    lr_gamma: float = _f(0.1, "lr factor at each of --lr-steps")
    growth: float | None = _f(
        None, "growth strength on the slopes; unset: the schedule's own (paper 0.001, adaptive 0)"
    )
    growth_kind: str = _f("log", "growth penalty on the slopes")
    slope_lr_mult: float = _f(SLOPE_LR_MULT, "slope learning rate, as a multiple of the weights'")
    init_slope: float = _f(1.0, "initial ABR slope")
    min_slope: float = _f(1e-3, "floor of every slope")
    shared_slope: bool = _f(False, "one slope per layer instead of one per channel")
    binary_loss: float = _f(0.0, "strength of the per-output penalty min(y, 1 - y)")
    # how the ABRs become steps over the budget (epochs + finetune_epochs + frozen_epochs)
    schedule: str = _f(
        "adaptive", "adaptive: abrnet.BinarizationSchedule over the budget; paper: the reference's two phases"
    )
    binarize_at: float | None = _f(
        None,
        "adaptive: share of the steps after which the slope floors rise; "
        f"unset: {BINARIZE_AT} (rounded); not rounded, {CENTRED_BINARIZE_AT}, or {CENTRED_SEVERAL_BINARIZE_AT} "
        "for several binary layers",
    )
    freeze_at: float | None = _f(
        None,
        f"adaptive: share of the steps after which layers freeze, first to last; unset: {FREEZE_AT} (rounded); "
        f"not rounded, {CENTRED_FREEZE_AT}, or {CENTRED_SEVERAL_FREEZE_AT} for several",
    )
    saturate: float = _f(SATURATE, "adaptive: share of each layer's held-out inputs saturated at the end")
    surrogate: bool = _f(True, "adaptive: once the floors rise, ABR gradients are a fixed window around the threshold")
    window_share: float | None = _f(
        None,
        "adaptive: share of each layer's held-out inputs inside its window (rounded: of those >= 0); "
        "unset: the slope's",
    )
    learn_window: bool = _f(True, "adaptive: each layer's window width is learned, as PACT learns its clip level")
    rounded: bool = _f(ROUNDED, "adaptive: each step rounds its bounded rectifier, [x > width/2], not [x > 0]")
    finetune_epochs: int = _f(10, "epochs of the paper's fine-tune (phase 2); more training epochs when adaptive")
    finetune_lr: float | None = _f(None, "paper phase 2 lr; unset: conserve the reference's lr x steps (0.4)")
    finetune_growth: float | None = _f(None, "paper phase 2 growth; unset: conserve the reference's slope push (4)")
    frozen_epochs: int = _f(0, "paper phase 3 (0 = off): epochs freezing the activations, first to last")
    frozen_lr: float = _f(0.001, "paper phase 3 lr")
    frozen_growth: float = _f(1.0, "paper phase 3 growth on the activations not frozen yet")
    # comparison and runtime
    baseline: bool = _f(False, "also train the same net with ReLU on the same budget")
    seed: int = _f(0, "seed of the weights and of the batch order")
    device: str = _f("auto", "auto (cuda when available, else cpu), cpu, cuda or cuda:N")
    workers: int = _f(-1, "data loader processes; -1: none for in-memory data on a CPU, else up to 8")
    amp: bool = _f(True, "bf16 autocast on cuda; no effect on a CPU, which trains in float32")
    channels_last: bool = _f(True, "NHWC layout for conv nets: 1.2-1.6x faster CPU steps here")
    log_every: int = _f(0, "steps between dynamics.jsonl records; 0: about 30 per epoch")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.finetune_epochs + self.frozen_epochs

    def validate(self) -> TrainConfig:
        for name, options in CHOICES.items():
            value = getattr(self, name)
            if value not in options:
                raise UserError(f"unknown {name.replace('_', '-')} {value!r}: choose from {', '.join(options)}")
        for name in (
            "growth",
            "finetune_growth",
            "frozen_growth",
            "lr",
            "finetune_lr",
            "frozen_lr",
            "weight_decay",
            "binary_loss",
        ):
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
        stages = [v for v in (self.binarize_at, self.freeze_at) if v is not None]  # unset: the schedule's defaults
        if not (all(0 <= v <= 1 for v in stages) and stages == sorted(stages)):
            raise UserError(f"need 0 <= --binarize-at ({self.binarize_at}) <= --freeze-at ({self.freeze_at}) <= 1")
        if not 0 < self.saturate < 1:
            raise UserError(f"--saturate must lie in (0, 1), got {self.saturate}")
        if self.window_share is not None and not 0 < self.window_share < 1:
            raise UserError(f"--window-share must lie in (0, 1), got {self.window_share}")
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


def recipe_text(name: str) -> str:
    """The TOML of a shipped recipe, by name, or of a user's recipe file, by path."""
    if name in recipe_names():
        return resources.files("abrnet.train.recipes").joinpath(f"{name}.toml").read_text()
    path = Path(name).expanduser()
    if name.endswith(".toml") or path.is_file():
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read recipe file {name} ({getattr(err, 'strerror', None) or err})") from None
    raise UserError(f"unknown recipe {name!r}: choose from {', '.join(recipe_names())}, or give a .toml file")


def load_recipe(name: str) -> dict:
    """The fields a recipe sets (a dict): a shipped recipe by name, or a TOML file by path."""
    try:
        data = tomllib.loads(recipe_text(name))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"recipe {name} is not valid TOML ({err})") from None
    data["recipe"] = name
    return data


def resolve(recipe: str, overrides: dict) -> TrainConfig:
    """Recipe fields, then flags: the config a run uses."""
    data = load_recipe(recipe)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data, f"recipe {recipe}").validate()
