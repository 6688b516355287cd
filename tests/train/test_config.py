"""Registries and defaults: each concept is defined once, the config and the command
line read it, recipes state only what differs from the defaults, and every registered
model trains with every registered method."""

import dataclasses
import json
import sys

import pytest
import torch

from abrnet import functional as F
from abrnet.errors import UserError
from abrnet.penalty import SLOPE_LR_MULT, param_groups
from abrnet.rivals import METHODS
from abrnet.train.config import CHOICES, TrainConfig, load_recipe, recipe_names, resolve
from abrnet.train.datasets import DATASETS
from abrnet.train.models import MODELS
from abrnet.train.phases import REFERENCE_FINETUNE, finetune_values, growth_at, lr_at, phase_of
from abrnet.train.run import build_model, read_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_choices_come_from_the_registries():
    assert CHOICES["method"] == METHODS
    assert CHOICES["growth_kind"] == F.GROWTH_KINDS == tuple(F.GROWTH_POWER)
    assert CHOICES["dataset"] == tuple(DATASETS)
    assert CHOICES["model"] == tuple(MODELS)


@pytest.mark.parametrize("field", sorted(CHOICES))
def test_an_unknown_choice_is_a_one_line_error_listing_the_registry(field):
    with pytest.raises(UserError, match=", ".join(CHOICES[field])):
        dataclasses.replace(TrainConfig(), **{field: "nope"}).validate()


@pytest.mark.parametrize("recipe", recipe_names())
def test_a_recipe_states_only_what_differs_from_the_defaults(recipe):
    from importlib import resources

    text = resources.files("abrnet.train.recipes").joinpath(f"{recipe}.toml").read_text()
    defaults = TrainConfig()
    same = [k for k, v in tomllib.loads(text).items() if getattr(defaults, k) == v]
    assert same == [], f"{recipe}.toml repeats the defaults of {same}"
    resolve(recipe, {})  # and it resolves to a valid config


def test_the_default_recipe_is_the_default_config():
    assert TrainConfig().recipe == "digits" and resolve("digits", {}).dataset == TrainConfig().dataset
    assert load_recipe("digits")["recipe"] == "digits"


def test_the_slope_lr_multiplier_has_one_default():
    assert TrainConfig().slope_lr_mult == SLOPE_LR_MULT
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), __import__("abrnet").ABR(3))
    groups = {g["name"]: g for g in param_groups(model, lr=0.1)}
    assert groups["slopes"]["lr"] == pytest.approx(0.1 * SLOPE_LR_MULT) and groups["slopes"]["lr_mult"] == SLOPE_LR_MULT


def test_each_phase_has_its_own_growth():
    cfg = TrainConfig(schedule="paper", epochs=2, finetune_epochs=1, frozen_epochs=1, growth=0.1, finetune_lr=1e-4,
                      finetune_growth=2.0, frozen_growth=3.0)  # fmt: skip
    assert [phase_of(cfg, e) for e in range(4)] == [1, 1, 2, 3]
    assert [growth_at(cfg, e) for e in range(4)] == [0.1, 0.1, 2.0, 3.0]
    assert [lr_at(cfg, e) for e in range(4)] == [cfg.lr, cfg.lr, cfg.finetune_lr, cfg.frozen_lr]


def test_the_adaptive_schedule_decays_the_lr_over_the_whole_budget():
    cfg = TrainConfig(schedule="adaptive", epochs=2, finetune_epochs=2, lr=0.1, lr_steps=[1, 3], finetune_lr=1e-5)
    assert [lr_at(cfg, e) for e in range(4)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


@pytest.mark.parametrize("mult", [1.0, 10.0])
@pytest.mark.parametrize("steps_per_epoch", [45, 600])
def test_a_compressed_paper_fine_tune_conserves_the_reference_integrals(mult, steps_per_epoch):
    cfg = TrainConfig(schedule="paper", finetune_epochs=3, slope_lr_mult=mult)
    lr, growth = finetune_values(cfg, steps_per_epoch)
    steps = 3 * steps_per_epoch
    assert lr * steps == pytest.approx(REFERENCE_FINETUNE["lr_steps"])  # weights: 1e-5 x 40k
    assert mult * lr * growth * steps == pytest.approx(REFERENCE_FINETUNE["slope_push"])  # slopes: 1e-4 x 1 x 40k
    # a recipe that sets them keeps its own
    assert finetune_values(TrainConfig(finetune_lr=1e-6, finetune_growth=50.0), steps_per_epoch) == (1e-6, 50.0)


def test_fashion_mnist_class_names_match_torchvision():
    from torchvision import datasets

    assert DATASETS["fashion-mnist"].class_names == tuple(datasets.FashionMNIST.classes)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", [m for m in MODELS if m != "caffenet"])
def test_every_model_trains_with_every_method(model, method):
    # caffenet needs 224x224 inputs; it runs end to end in tests/cli (the imagenet recipe).
    shape = (3, 32, 32) if model == "resnet18" else (1, 28, 28) if model in ("lenet", "quick") else (1, 8, 8)
    cfg = TrainConfig(model=model, method=method)
    net = build_model(cfg, num_classes=4, input_shape=shape)
    out = net(torch.randn(2, *shape))
    out.sum().backward()
    assert out.shape == (2, 4)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_a_run_saved_before_the_learned_window_resumes_with_the_fixed_one(tmp_path):
    # Its config.json has no learn_window: it trained with the fixed window, and a resume
    # must go on that way (its optimizer state holds no widths either).
    data = json.loads(TrainConfig().to_json())
    assert data.pop("learn_window") is True
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert read_config(tmp_path).learn_window is False
    (tmp_path / "config.json").write_text(TrainConfig().to_json())
    assert read_config(tmp_path).learn_window is True
