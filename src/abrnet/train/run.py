"""A run directory: build a run's model from its config, and load a finished run.

Layout of ``RUN_DIR``::

    config.json               the resolved config
    checkpoint.safetensors    latest training state (model, optimizer, RNG), per epoch
    metrics.jsonl             one line per epoch
    dynamics.jsonl            binarization dynamics, every few steps
    tb/                       TensorBoard events
    model.safetensors         final training-form (ABR) weights
    deployed.safetensors      the deployed network, every chosen ABR replaced by a step
    baseline/                 the ReLU baseline, when --baseline (same layout)
    report.json               final accuracies and per-layer statistics (docs/run-directory.md)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..rivals import make_activation
from ..steps import binarize, binary_layers, freeze
from .checkpoint import load_model_state, read_checkpoint
from .config import SAVED_BEFORE, TrainConfig
from .datasets import DATASETS, make_loader
from .models import create_model
from .phases import frozen_count


def activation_factory(cfg: TrainConfig):
    """``act(channels, last)`` for the model builders: the method's activation where the
    config asks for a binary representation, ReLU elsewhere."""

    def act(channels: int, last: bool) -> nn.Module:
        if cfg.binarize == "last" and not last:
            return make_activation("relu")
        if cfg.method == "abr":
            return make_activation(
                "abr", None if cfg.shared_slope else channels, shared=cfg.shared_slope, init_slope=cfg.init_slope,
                min_slope=cfg.min_slope, binary_loss=cfg.binary_loss,
            )  # fmt: skip
        return make_activation(cfg.method, channels)

    return act


def build_model(cfg: TrainConfig, num_classes: int, input_shape) -> nn.Module:
    torch.manual_seed(cfg.seed)
    model = create_model(
        cfg.model, act=activation_factory(cfg), num_classes=num_classes, input_shape=tuple(input_shape),
        batchnorm=cfg.batchnorm,
    )  # fmt: skip
    with torch.no_grad():  # materialise any lazy parameter before an optimizer sees it
        model.eval()(torch.zeros(1, *input_shape))
    return model.train()


def read_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise UserError(f"no run directory at {run_dir}")
    if not path.is_file():
        raise UserError(f"{run_dir} is not an abrnet run directory (no config.json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is corrupt ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not an abrnet config")
    return TrainConfig.from_dict({**SAVED_BEFORE, **data}, str(path)).validate()


@dataclass
class Run:
    """A finished run, loaded: ``model`` (training form), ``deployed``, ``baseline``."""

    dir: Path
    config: TrainConfig
    info: object  # abrnet.train.data.DatasetInfo
    model: nn.Module
    deployed: nn.Module
    baseline: nn.Module | None

    def datasets(self, limit: int | None = None):
        from .data import load_dataset

        train, test, _ = load_dataset(self.config.dataset, self.config.data_dir, limit=limit or self.config.limit)
        return train, test

    def loader(self, ds, device, batch_size: int | None = None):
        """A loader over ``ds`` (one of :meth:`datasets`) with the run's batch size."""
        return make_loader(ds, self.info, batch_size or self.config.batch_size, device)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names


def load_weights(path: Path, cfg: TrainConfig, num_classes: int, input_shape) -> tuple[nn.Module, dict]:
    """The model of ``cfg`` with the weights in ``path`` (eval mode), and the file's metadata."""
    model = build_model(cfg, num_classes, input_shape)
    tensors, meta = read_checkpoint(path)
    load_model_state(model, tensors, path)
    return model.eval(), meta


def load_run(run_dir: str | Path, binarize_layers: str | None = None) -> Run:
    """Load a finished run. ``binarize_layers`` overrides which layers ``deployed`` steps
    (default: all binary layers of the trained net)."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    ds_meta = _run_meta(run_dir)
    info = DATASETS[cfg.dataset]
    shape = tuple(ds_meta.get("input_shape", info.input_shape))
    if "class_names" in ds_meta:
        info = info.with_classes(tuple(ds_meta["class_names"]))
    info = replace(info, num_classes=ds_meta.get("num_classes", info.num_classes), input_shape=shape)
    num_classes = info.num_classes
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        weights = run_dir / "checkpoint.safetensors"
    if not weights.exists():
        raise UserError(f"{run_dir} has no weights yet (no model.safetensors or checkpoint.safetensors)")
    model, weights_meta = load_weights(weights, cfg, num_classes, shape)
    names = binary_layers(model)
    # The layers the weights were trained behind frozen steps (the adaptive schedule's last
    # stage, the paper schedule's phase 3): the weights file says how many.
    if "frozen" in weights_meta:
        freeze(model, names[: int(weights_meta["frozen"])])
    elif cfg.frozen_epochs:  # written before the count was saved
        epoch = cfg.total_epochs if weights.name == "model.safetensors" else weights_meta["epoch"]
        freeze(model, names[: frozen_count(cfg, int(epoch), len(names))])
    deployed = binarize(model, binarize_layers or "all") if names else model
    baseline = None
    base = run_dir / "baseline" / "model.safetensors"
    if base.exists():
        baseline = load_weights(base, replace(cfg, method="relu"), num_classes, shape)[0]
    return Run(run_dir, cfg, info, model, deployed, baseline)


def _run_meta(run_dir: Path) -> dict:
    path = run_dir / "dataset.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is corrupt ({err})") from None
