"""abrnet.compare.configs: a run directory is reused or resumed only under the same maths."""

import dataclasses
import json

import pytest

from abrnet.compare import configs as C
from abrnet.errors import UserError
from abrnet.train.config import resolve


@pytest.fixture
def cfg():
    return resolve("digits", {"epochs": 1, "method": "abr", "seed": 0})


def test_where_and_how_often_do_not_count(cfg, tmp_path):
    saved = json.loads(dataclasses.replace(cfg, device="cuda", workers=4, log_every=7, channels_last=False).to_json())
    C.check_same_config(saved, cfg, tmp_path)
    saved["epochs"], saved["lr"] = 2, 0.5
    with pytest.raises(UserError) as err:
        C.check_same_config(saved, cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "(epochs, lr differ)" in message and "delete that run directory" in message


@pytest.mark.parametrize(
    ("method", "schedule", "counts"), [("abr", "adaptive", True), ("abr", "paper", False), ("ste", "adaptive", False)]
)
def test_adaptive_schedule_fields_count_only_where_the_schedule_runs(cfg, tmp_path, method, schedule, counts):
    cfg = dataclasses.replace(cfg, method=method, schedule=schedule)
    saved = json.loads(
        dataclasses.replace(cfg, binarize_at=0.5, freeze_at=0.9, saturate=0.9, surrogate=False).to_json()
    )
    if counts:
        with pytest.raises(UserError, match="binarize_at, freeze_at, saturate, surrogate differ"):
            C.check_same_config(saved, cfg, tmp_path)
    else:
        C.check_same_config(saved, cfg, tmp_path)
    saved["lr"] = 0.5  # everything else still counts
    with pytest.raises(UserError, match=r"[(, ]lr[, ]"):
        C.check_same_config(saved, cfg, tmp_path)


def test_finished_and_resumable_runs(cfg, tmp_path):
    assert C.finished_report(tmp_path, cfg) is None and not C.resumable(tmp_path, cfg)
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert C.resumable(tmp_path, cfg)
    report = {"accuracy": {"train_form": 0.5}, "config": json.loads(cfg.to_json())}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert C.finished_report(tmp_path, cfg) == report
    other = dataclasses.replace(cfg, seed=1)
    for check in (C.finished_report, C.resumable):
        with pytest.raises(UserError, match="another config"):
            check(tmp_path, other)


@pytest.mark.parametrize("name", ["report.json", "config.json"])
def test_unreadable_files_say_to_retrain(cfg, tmp_path, name):
    (tmp_path / name).write_text("{not json")
    check = C.finished_report if name == "report.json" else C.resumable
    with pytest.raises(UserError, match="unreadable .*delete its run directory to retrain it"):
        check(tmp_path, cfg)
