"""abrnet.compare.results: a row per run from its report.json, the statistics over seeds."""

import copy
from pathlib import Path

import pytest

from abrnet.compare.results import aggregate, describe, run_row
from abrnet.errors import UserError

LAYER = {"zero": 0.5, "one": 0.25, "numel": 100}
BINARY = {
    "accuracy": {"train_form": 0.9, "binary": 0.8},
    "layers": {"0": LAYER, "2": {**LAYER, "zero": 1.0, "one": 0.0, "numel": 300}},
    "deployed_binary": {"layers": 2, "non_binary_outputs": 4, "outputs_checked": 400},
    "wall_time_s": 3.0,
}
RELU = {"accuracy": {"train_form": 0.95}, "wall_time_s": 2.0}


def test_row_of_a_binary_run():
    row = run_row(BINARY, 1, "all/abr-seed1", False, Path("cmp/all/abr-seed1"))
    assert row == {
        "seed": 1, "run_dir": "all/abr-seed1", "reused": False, "train_form": 0.9, "deployed": 0.8,
        "binary_layers": 2, "binary_share": (0.75 * 100 + 1.0 * 300) / 400, "deployed_binary_share": 0.99,
        "non_binary_outputs": 4, "outputs_checked": 400, "wall_time_s": 3.0,
    }  # fmt: skip
    assert describe(row) == "train form 0.9000, deployed 0.8000 (4 non-binary outputs), 3.0 s"


def test_row_of_relu_has_nothing_to_deploy():
    row = run_row(RELU, 0, "all/relu-seed0", True, Path("x"))
    assert row["deployed"] is None and row["binary_layers"] == 0 and row["non_binary_outputs"] is None
    assert describe(row) == "train form 0.9500, 2.0 s (reused)"
    agg = aggregate([row, {**row, "train_form": 0.85}])
    assert agg["deployed"] is None and agg["all_binary"] is None
    assert agg["train_form"]["mean"] == pytest.approx(0.9) and agg["train_form"]["std"] == pytest.approx(0.1 / 2**0.5)


@pytest.mark.parametrize("check", [{"layers": 1, "non_binary_outputs": 0, "outputs_checked": 100}, None])
def test_a_report_missing_step_layers_is_one_line_error(check):
    report = copy.deepcopy(BINARY)
    if check is None:
        del report["deployed_binary"]
    else:
        report["deployed_binary"] = check
    counted = 0 if check is None else 1
    with pytest.raises(UserError) as err:
        run_row(report, 0, "all/pact-seed0", True, Path("cmp/all/pact-seed0"))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(Path("cmp/all/pact-seed0/report.json")))
    assert f"{counted} of its 2 binary layers" in message and "delete that run directory to retrain it" in message


def test_all_binary_only_when_every_run_is():
    rows = [run_row(BINARY, s, f"all/abr-seed{s}", False, Path("x")) for s in (0, 1)]
    assert aggregate(rows)["all_binary"] is False
    clean = copy.deepcopy(BINARY)
    clean["deployed_binary"]["non_binary_outputs"] = 0
    rows = [run_row(clean, s, f"all/abr-seed{s}", False, Path("x")) for s in (0, 1)]
    agg = aggregate(rows)
    assert agg["all_binary"] is True and agg["deployed_binary_share"] == {
        "mean": 1.0,
        "std": 0.0,
        "min": 1.0,
        "max": 1.0,
    }
    assert agg["wall_time_s"] == {"total": 6.0, "mean": 3.0}
