"""The CLI as a user types it: subprocesses, exit codes, files, one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import save_file

from abrnet.train.config import recipe_names, resolve
from clitools import KILLED_AT_CHECKPOINT, QUICK, abrnet, assert_one_line_error
from fakedata import _write_cifar, _write_folders, _write_idx

SIX = {f"class{i}": (40 * i, 255 - 40 * i, 0) for i in range(6)}  # > 5 classes: top-5 is reported


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    run = abrnet("train", "--out", out, "--baseline", *QUICK)
    return out, run


def test_train_default_recipe_writes_a_complete_run(digits_run):
    out, run = digits_run
    for name in ("config.json", "checkpoint.safetensors", "metrics.jsonl", "dynamics.jsonl", "model.safetensors",
                 "deployed.safetensors", "report.json", "baseline/model.safetensors"):  # fmt: skip
        assert (out / name).exists(), name
    assert list((out / "tb").iterdir())
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "abrnet-report-1"
    assert set(report["accuracy"]) == {"abr", "binary", "relu", "train_form"}
    assert all(0 <= v <= 1 for v in report["accuracy"].values())
    assert report["deployed_binary"]["non_binary_outputs"] == 0
    assert report["memory"]["ratio"] == pytest.approx(32.0)
    assert "deployed step network (exact 0/1)" in run.stdout and "ReLU baseline" in run.stdout
    # Every layer ends frozen into its rounded step: the table gives where it fires, not a slope.
    for name, layer in report["layers"].items():
        assert layer["frozen"] and layer["threshold"] > 0
        assert re.search(rf"^{name} +frozen +{layer['threshold']:.4g} ", run.stdout, re.M), run.stdout
    metrics = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and [m["phase"] for m in metrics] == [1, 2]
    last = json.loads((out / "dynamics.jsonl").read_text().splitlines()[-1])
    assert all(layer["window_width"] > 0 for layer in last["layers"].values())  # the learned windows
    config = json.loads((out / "config.json").read_text())
    assert config["limit"] == 300 and config["baseline"] is True and config["recipe"] == "digits"


def test_eval_and_export(digits_run, tmp_path):
    out, _ = digits_run
    res = json.loads(abrnet("eval", out, "--json").stdout)
    report = json.loads((out / "report.json").read_text())
    assert res["binary"]["1"] == pytest.approx(report["accuracy"]["binary"])
    assert res["relu"]["1"] == pytest.approx(report["accuracy"]["relu"])
    assert res["binary"]["non_binary_outputs"] == 0
    run = abrnet("export", out, "--onnx", tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    assert "bits identical in 2 step outputs: True" in run.stdout


def test_python_m_and_help():
    assert "train" in abrnet("--help").stdout
    assert "--finetune-growth" in abrnet("train", "--help").stdout


@pytest.mark.parametrize("frozen,kill", [(0, 2), (2, 4)])
def test_resume_after_a_kill_gives_the_same_metrics(tmp_path, frozen, kill):
    # (2, 4): killed in the frozen phase, whose frozen steps the resume must rebuild
    args = ["--epochs", "2", "--finetune-epochs", "1", "--frozen-epochs", frozen, "--limit", "200", "--quiet"]
    abrnet("train", "--out", tmp_path / "straight", *args)
    killed = abrnet("train", "--out", tmp_path / "killed", *args, env={"KILL_AT": str(kill)}, check=False,
                    entry=("-c", KILLED_AT_CHECKPOINT))  # fmt: skip
    assert killed.returncode != 0
    # killed after the epoch's metrics line but before its checkpoint
    assert len((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()) == kill
    abrnet("train", "--out", tmp_path / "killed", "--resume", "--quiet")

    def metrics(run):
        rows = [json.loads(ln) for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "epoch_time"} for r in rows]

    assert metrics("killed") == metrics("straight")

    def dynamics(run):
        return [json.loads(ln) for ln in (tmp_path / run / "dynamics.jsonl").read_text().splitlines()]

    # replayed records were dropped, not duplicated; flip shares continue across the resume
    assert dynamics("killed") == dynamics("straight")
    a = json.loads((tmp_path / "straight" / "report.json").read_text())["accuracy"]
    b = json.loads((tmp_path / "killed" / "report.json").read_text())["accuracy"]
    assert a == b


def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           "-m", "abrnet", "train", "--out", str(out), "--device", "cpu", *QUICK]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("deployed step network") == 1  # the report is printed once
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # written once per epoch
    report = json.loads((out / "report.json").read_text())
    assert report["deployed_binary"]["non_binary_outputs"] == 0
    dyn = [json.loads(ln) for ln in (out / "dynamics.jsonl").read_text().splitlines()]
    assert dyn[-1]["step"] == json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"]


# Tiny files in each dataset's real format; digits is embedded (the digits_run fixture).
WRITERS = {
    "mnist": lambda d: _write_idx(d, gz=True),
    "fashion-mnist": lambda d: _write_idx(d / "FashionMNIST" / "raw", gz=True),
    "cifar10": _write_cifar,
    "imagenet": lambda d: _write_folders(d, SIX),
}
# Every shipped recipe with its own model, and the imagenet recipe's other model.
RECIPE_RUNS = [(r, resolve(r, {}).model) for r in recipe_names() if r != "digits"] + [("imagenet", "resnet18")]


def test_every_recipe_has_a_tiny_data_run():
    assert {r for r, _ in RECIPE_RUNS} | {"digits"} == set(recipe_names())
    assert {resolve(r, {}).dataset for r, _ in RECIPE_RUNS} <= set(WRITERS)


@pytest.mark.parametrize("recipe,model", RECIPE_RUNS)
def test_every_recipe_end_to_end_on_tiny_data(tmp_path, recipe, model):
    WRITERS[resolve(recipe, {}).dataset](tmp_path / "data")
    out = tmp_path / "run"
    abrnet("train", "--recipe", recipe, "--model", model, "--data-dir", tmp_path / "data", "--out", out,
           "--batch-size", "4", *QUICK)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"] == recipe and report["model"] == model
    assert report["deployed_binary"]["non_binary_outputs"] == 0
    if recipe == "imagenet":
        assert set(report["top5"]) == {"train_form", "binary"}


def test_fashion_mnist_recipe_on_the_debian_files(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    out = tmp_path / "fm"
    abrnet("train", "--recipe", "fashion-mnist", "--out", out, "--binarize", "last", *QUICK)
    report = json.loads((out / "report.json").read_text())
    assert report["deployed_binary"]["layers"] == 1
    assert "Trouser" in json.loads((out / "dataset.json").read_text())["class_names"]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["train", "--recipe", "nope"], ["unknown recipe 'nope'", "digits"]),
        (["train", "--model", "nope"], ["unknown model 'nope'"]),
        (["train", "--growth", "-1"], ["--growth must be >= 0"]),
        (["train", "--lr", "1e38"], ["--lr x --slope-lr-mult must be finite"]),
        (["train", "--window-share", "1"], ["--window-share must lie in (0, 1)"]),
        (["train", "--binarize", "half"], ["unknown binarize 'half'"]),
        (["train", "--epochs", "many"], ["invalid int value"]),
        (["train", "--no-such-flag"], ["unrecognized arguments"]),
        (["train", "--recipe", "mnist", "--data-dir", "/nonexistent/mnist"], ["/nonexistent/mnist", "--download"]),
        (["train", "--recipe", "imagenet", "--data-dir", "/nonexistent/in"], ["train/<class>"]),
        (["train", "--device", "cuda:7"], ["no CUDA device"]),
        (["eval", "/nonexistent/run"], ["no run directory"]),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, needles, tmp_path):
    assert_one_line_error(abrnet(*args, "--out", tmp_path / "o", check=False) if args[0] == "train"
                          else abrnet(*args, check=False), *needles)  # fmt: skip
    assert not (tmp_path / "o").exists()  # a run that fails at its start leaves no half-made directory


def test_recipe_from_a_toml_file_and_the_recipes_command(tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('model = "mlp"\nepochs = 1\nfinetune_epochs = 1\nlimit = 200\n')
    abrnet("train", "--recipe", recipe, "--out", tmp_path / "run", "--quiet")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"] == str(recipe) and config["epochs"] == 1 and config["limit"] == 200
    listing = abrnet("recipes").stdout
    assert all(name in listing for name in recipe_names())
    assert abrnet("recipes", "digits").stdout.startswith("# Embedded default")
    recipe.write_text("epochs = [")
    assert_one_line_error(abrnet("train", "--recipe", recipe, "--out", tmp_path / "bad", check=False), "not valid TOML")


def test_every_option_explains_itself():
    import dataclasses

    from abrnet.train.config import CHOICES, TrainConfig

    text = " ".join(abrnet("train", "--help").stdout.split())
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        assert f"--{f.name.replace('_', '-')}" in text
        assert " ".join(f.metadata["help"].split()) in text, f.name
    for name, options in CHOICES.items():
        assert f"one of {', '.join(options)}" in text, name
    assert "no effect on a CPU" in text  # --amp says what it does on a CPU


def test_unwritable_out(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(abrnet("train", "--out", tmp_path / "file" / "run", *QUICK, check=False), "cannot write")


def test_existing_run_is_never_overwritten(digits_run):
    out, _ = digits_run
    before = (out / "report.json").read_bytes()
    assert_one_line_error(abrnet("train", "--out", out, *QUICK, check=False), "already holds a run", "--resume")
    assert (out / "report.json").read_bytes() == before


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_truncated_and_foreign_checkpoints(digits_run, tmp_path):
    out, _ = digits_run
    run = _copy_run(out, tmp_path / "trunc")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_one_line_error(abrnet("eval", run, check=False), "corrupt or truncated")

    run = _copy_run(out, tmp_path / "garbage")
    (run / "model.safetensors").write_bytes(b"\x80\x04this is a pickle, not weights")
    assert_one_line_error(abrnet("eval", run, check=False), "corrupt or truncated")

    import torch

    run = _copy_run(out, tmp_path / "foreign")
    save_file({"weight": torch.zeros(3)}, str(run / "model.safetensors"))  # valid safetensors, not ours
    assert_one_line_error(abrnet("eval", run, check=False), "not an abrnet checkpoint")

    run = _copy_run(out, tmp_path / "config")
    (run / "config.json").write_text("{not json")
    assert_one_line_error(abrnet("eval", run, check=False), "corrupt")

    run = _copy_run(out, tmp_path / "resume-trunc")
    data = (run / "checkpoint.safetensors").read_bytes()
    (run / "checkpoint.safetensors").write_bytes(data[:100])
    (run / "report.json").unlink()
    assert_one_line_error(abrnet("train", "--out", run, "--resume", check=False), "corrupt or truncated")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "nan"
    # a fine-tune lr this large blows the weights past float32's range in epoch 2
    run = abrnet("train", "--out", out, "--epochs", "1", "--finetune-epochs", "1", "--limit", "200", "--quiet",
                 "--schedule", "paper", "--finetune-lr", "1e36", check=False)  # fmt: skip
    assert_one_line_error(run, "loss became", "(epoch 2)", "last good checkpoint (epoch 1) is kept")
    assert not (out / "report.json").exists()
    from abrnet.train.checkpoint import read_checkpoint

    _, meta = read_checkpoint(out / "checkpoint.safetensors")
    assert meta["epoch"] == 1
