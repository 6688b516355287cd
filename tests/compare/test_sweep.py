"""``abrnet compare``: every method, one budget, the same seeds; the deployed nets are
exactly binary; the aggregates are those of the per-run reports; a rerun reuses
finished runs and resumes killed ones; CIFAR-10 and ImageNet layouts go through the
same harness (tiny generated data)."""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abrnet.cli import main as cli_main
from abrnet.compare import SCHEMA, aggregate, merge_summaries
from abrnet.compare.plan import ROWS
from abrnet.errors import UserError
from abrnet.train.config import TrainConfig, resolve
from clitools import KILLED_AT_CHECKPOINT
from fakedata import _write_cifar, _write_folders

METHODS = list(ROWS)  # the rows registry (every method, and abr-paper), in its order
QUICK = ["--epochs", "1", "--finetune-epochs", "1"]


def _env(tmp: Path) -> dict:
    # One thread: on a small shared CPU, two threads per process mostly wait on each other.
    return {**os.environ, "OMP_NUM_THREADS": "1", "ABRNET_CACHE": str(tmp / "cache")}


def _compare(args: list[str], tmp: Path, entry=("-m", "abrnet"), **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *entry, "compare", *args],
        capture_output=True,
        text=True,
        env={**_env(tmp), **env},
        timeout=600,
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    out = tmp / "cmp"
    args = ["--recipe", "digits", "--methods", ",".join(METHODS), "--seeds", "2", *QUICK, "--limit", "200"]
    started = time.perf_counter()
    done = _compare([*args, "--out", str(out)], tmp)
    assert done.returncode == 0, done.stderr
    return {"out": out, "args": args, "tmp": tmp, "stdout": done.stdout, "wall": time.perf_counter() - started}


def test_compare_json_schema(digits):
    out = digits["out"]
    summary = json.loads((out / "compare.json").read_text())
    assert summary["schema"] == SCHEMA
    assert summary["recipe"] == "digits" and summary["methods"] == METHODS
    assert summary["binarize"] == ["all"] and summary["seeds"] == [0, 1]
    assert summary["command"].startswith(f"abrnet compare --recipe digits --methods {','.join(METHODS)} ")
    assert "--limit 200" in summary["command"] and f"--out {out}" in summary["command"]
    config = summary["config"]
    assert config["epochs"] == 1 and config["finetune_epochs"] == 1 and config["limit"] == 200
    assert not {"method", "seed", "binarize"} & set(config)
    assert set(summary["commit"]) == {"id", "dirty"}
    machine = summary["machine"]
    assert machine["cpu_count"] == os.cpu_count() and machine["torch_threads"] == 1 and machine["device"] == "cpu"
    assert {e["method"] for e in summary["results"]} == set(METHODS)
    for entry in summary["results"]:
        assert entry["binarize"] == "all" and [r["seed"] for r in entry["runs"]] == [0, 1]
        for run in entry["runs"]:
            assert run["run_dir"] == f"all/{entry['method']}-seed{run['seed']}"
            assert (out / run["run_dir"] / "report.json").is_file()
            assert 0 <= run["train_form"] <= 1 and run["wall_time_s"] > 0 and run["reused"] is False
        assert entry["aggregate"]["n"] == 2
    assert summary["wall_time_s"] == pytest.approx(sum(r["wall_time_s"] for e in summary["results"] for r in e["runs"]))


def test_every_rival_deploys_exactly_binary(digits):
    summary = json.loads((digits["out"] / "compare.json").read_text())
    for entry in summary["results"]:
        agg = entry["aggregate"]
        if entry["method"] == "relu":
            assert agg["deployed"] is None and agg["binary_share"] is None and agg["all_binary"] is None
            assert all(r["deployed"] is None and r["binary_layers"] == 0 for r in entry["runs"])
            continue
        assert agg["all_binary"] is True
        assert agg["deployed_binary_share"]["min"] == 1.0
        for run in entry["runs"]:
            assert run["binary_layers"] == 2  # the MLP's two hidden layers
            assert run["non_binary_outputs"] == 0 and run["outputs_checked"] == 200 * (256 + 128)
            assert 0 <= run["binary_share"] <= 1 and 0 <= run["deployed"] <= 1
            # report.json counts Step and ThresholdStep (dorefa, pact) outputs alike: compare
            # takes its counts and recounts nothing (an older report is refused instead).
            assert "binary_check" not in run
            assert not (digits["out"] / run["run_dir"] / "deployed_check.json").exists()
        if entry["method"] in ("ste", "dorefa", "pact"):  # already 0/1 while training
            assert agg["binary_share"]["mean"] == 1.0
            assert agg["deployed"] == agg["train_form"]


def test_aggregates_are_those_of_the_reports(digits):
    out = digits["out"]
    summary = json.loads((out / "compare.json").read_text())
    for entry in summary["results"]:
        reports = [json.loads((out / r["run_dir"] / "report.json").read_text()) for r in entry["runs"]]
        # a row's runs are its method's (abr-paper: abr under the paper schedule)
        assert [(rep["method"], rep["config"]["schedule"]) for rep in reports] == [
            (ROWS[entry["method"]]["method"], ROWS[entry["method"]].get("schedule", TrainConfig().schedule))] * 2  # fmt: skip
        assert [rep["config"]["seed"] for rep in reports] == [0, 1]
        agg = entry["aggregate"]
        train = [rep["accuracy"]["train_form"] for rep in reports]
        assert agg["train_form"]["mean"] == pytest.approx(statistics.fmean(train))
        assert agg["train_form"]["std"] == pytest.approx(statistics.stdev(train))
        assert agg["train_form"]["std"] == pytest.approx(abs(train[0] - train[1]) / 2**0.5)  # ddof = 1
        walls = [rep["wall_time_s"] for rep in reports]
        assert agg["wall_time_s"]["total"] == pytest.approx(sum(walls))
        assert agg["wall_time_s"]["mean"] == pytest.approx(sum(walls) / 2)
        if entry["method"] == "relu":
            assert all("binary" not in rep["accuracy"] for rep in reports)
            continue
        deployed = [rep["accuracy"]["binary"] for rep in reports]
        assert agg["deployed"]["mean"] == pytest.approx(statistics.fmean(deployed))
        assert agg["deployed"]["std"] == pytest.approx(statistics.stdev(deployed))
        assert (agg["deployed"]["min"], agg["deployed"]["max"]) == (min(deployed), max(deployed))
        shares = []
        for rep in reports:
            layers = rep["layers"].values()
            shares.append(sum((s["zero"] + s["one"]) * s["numel"] for s in layers) / sum(s["numel"] for s in layers))
        assert agg["binary_share"]["mean"] == pytest.approx(statistics.fmean(shares))


def test_aggregate_of_one_seed_has_no_std():
    row = {"train_form": 0.5, "deployed": 0.25, "binary_share": 1.0, "deployed_binary_share": 1.0,
           "non_binary_outputs": 0, "wall_time_s": 2.0}  # fmt: skip
    agg = aggregate([row])
    assert agg["n"] == 1 and agg["train_form"] == {"mean": 0.5, "std": None, "min": 0.5, "max": 0.5}
    assert agg["all_binary"] is True


def test_markdown_has_a_row_per_method(digits):
    out = digits["out"]
    table = (out / "compare.md").read_text()
    summary = json.loads((out / "compare.json").read_text())
    assert "## binarize all" in table and summary["command"] in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| method", "| ---"))]
    assert [r.split("|")[1].strip() for r in rows] == METHODS
    relu = rows[0].split("|")
    assert relu[3].strip() == "n/a" and relu[6].strip() == "n/a"  # nothing to deploy
    for row in rows[1:]:
        cells = [c.strip() for c in row.split("|")]
        assert "±" in cells[2] and "±" in cells[3] and cells[6] == "100%"
    abr = next(e for e in summary["results"] if e["method"] == "abr")["aggregate"]["deployed"]
    assert f"{100 * abr['mean']:.2f} ± {100 * abr['std']:.2f}" in rows[-1]
    assert table in digits["stdout"]  # the table is also printed


def test_rerun_reuses_finished_runs(digits):
    out = digits["out"]
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*/report.json")}
    assert len(before) == 2 * len(METHODS)
    first = json.loads((out / "compare.json").read_text())
    done = _compare([*digits["args"], "--out", str(out)], digits["tmp"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(reused)") == 2 * len(METHODS) and "training in" not in done.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/report.json")} == before
    again = json.loads((out / "compare.json").read_text())
    assert all(r["reused"] for e in again["results"] for r in e["runs"])
    for a, b in zip(first["results"], again["results"]):
        assert a["aggregate"] == b["aggregate"]


def test_rerun_with_another_budget_is_refused(digits):
    args = [a if a != "1" else "2" for a in digits["args"]]  # --epochs 2 --finetune-epochs 2
    done = _compare([*args, "--out", str(digits["out"])], digits["tmp"])
    assert done.returncode == 2
    message = done.stderr.strip()
    assert "\n" not in message and "another config" in message and "epochs" in message


def _results(summary: dict) -> list[tuple]:
    return [(e["binarize"], e["method"], r["seed"], r["run_dir"], r["binary_layers"], r["train_form"], r["deployed"],
             r["non_binary_outputs"]) for e in summary["results"] for r in e["runs"]]  # fmt: skip


def test_jobs_2_gives_the_results_of_jobs_1(digits, tmp_path):
    out = tmp_path / "cmp"
    args = [*digits["args"], "--jobs", "2", "--out", str(out)]
    done = _compare(args, digits["tmp"])
    assert done.returncode == 0, done.stderr
    serial = json.loads((digits["out"] / "compare.json").read_text())
    parallel = json.loads((out / "compare.json").read_text())
    assert serial["jobs"] == 1 and parallel["jobs"] == 2 and "--seeds 2 --jobs 2 " in parallel["command"]
    assert parallel["machine"]["torch_threads"] == 1 and parallel["config"] == serial["config"]
    # Same configs and seeds: the same numbers, and the rows in plan order whatever order the runs finished in.
    assert _results(parallel) == _results(serial)
    for a, b in zip(serial["results"], parallel["results"]):
        assert a["aggregate"]["train_form"] == b["aggregate"]["train_form"]
        assert a["aggregate"]["deployed"] == b["aggregate"]["deployed"]
    line = re.compile(rf"\[\d+/{2 * len(METHODS)}\] binarize all, [\w-]+, seed \d: train form")
    finished = [ln for ln in done.stdout.splitlines() if line.match(ln)]
    assert len(finished) == 2 * len(METHODS) and "(reused)" not in done.stdout  # a line per run as it finished
    # Still resumable: finished runs are reused, unfinished ones (config.json, no report) resume.
    for rel in ("all/relu-seed0", "all/abr-seed1"):
        (out / rel / "report.json").unlink()
    again = _compare(args, digits["tmp"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(reused)") == 2 * len(METHODS) - 2 and again.stdout.count("resuming in") == 2
    assert "training in" not in again.stdout
    assert _results(json.loads((out / "compare.json").read_text())) == _results(serial)


def test_a_failed_run_is_one_line_after_the_runs_in_flight(tmp_path):
    out = tmp_path / "cmp"
    # abr's run was started (its config.json is there) and left a corrupt checkpoint: resuming it fails.
    cfg = resolve("digits", {"epochs": 1, "finetune_epochs": 1, "limit": 100, **ROWS["abr"], "seed": 0})
    run = out / "all" / "abr-seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(cfg.to_json())
    (run / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    done = _compare(["--recipe", "digits", "--methods", "relu,abr", "--seeds", "1", *QUICK, "--limit", "100",
                     "--jobs", "2", "--out", str(out)], tmp_path)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    err = done.stderr.strip()
    assert "\n" not in err and err.startswith("abrnet compare: error: binarize all, abr, seed 0: ")
    assert "checkpoint.safetensors is corrupt" in err
    # relu's run, in flight when abr's failed, finished and is kept for the next invocation.
    assert (out / "all" / "relu-seed0" / "report.json").is_file()
    assert "[1/2] binarize all, relu, seed 0: train form" in done.stdout
    assert not (out / "compare.json").exists()


def test_listed_seeds_reuse_those_runs_only(digits, tmp_path):
    # "--seeds 1," is seed 1 alone: the comparison reads the finished seed-1 runs and
    # trains nothing, and its command says which seeds it holds.
    out = tmp_path / "cmp"
    shutil.copytree(digits["out"], out)
    args = ["--recipe", "digits", "--methods", "relu,abr", "--seeds", "1,", *QUICK, "--limit", "200"]
    done = _compare([*args, "--out", str(out)], digits["tmp"])
    assert done.returncode == 0, done.stderr
    assert "training in" not in done.stdout
    summary = json.loads((out / "compare.json").read_text())
    full = json.loads((digits["out"] / "compare.json").read_text())
    assert summary["seeds"] == [1] and " --seeds 1, " in summary["command"]
    for row in summary["results"]:
        (run,) = row["runs"]
        same = next(r for r in full["results"] if r["method"] == row["method"])
        assert run["seed"] == 1 and run["reused"] and run["deployed"] == same["runs"][1]["deployed"]


def test_an_outdated_report_is_refused_in_one_line(digits, tmp_path):
    out = tmp_path / "cmp"
    shutil.copytree(digits["out"], out)
    path = out / "all" / "pact-seed1" / "report.json"
    report = json.loads(path.read_text())
    # What an older abrnet wrote for pact and dorefa (ThresholdStep layers were not counted).
    report["deployed_binary"] = {"layers": 0, "non_binary_outputs": 0, "outputs_checked": 0}
    path.write_text(json.dumps(report))
    done = _compare([*digits["args"], "--out", str(out)], digits["tmp"])
    assert done.returncode == 2
    err = done.stderr.strip()
    assert "\n" not in err and err.startswith("abrnet compare: error: ") and str(path) in err
    assert "0 of its 2 binary layers" in err and "delete that run directory to retrain it" in err
    assert "training in" not in done.stdout  # every run directory is checked before anything is trained


def test_killed_compare_resumes_and_runs_both_scopes(tmp_path):
    out = tmp_path / "cmp"
    args = ["--recipe", "digits", "--methods", "abr", "--binarize", "all,last", "--seeds", "1", *QUICK,
            "--limit", "100", "--out", str(out)]  # fmt: skip
    killed = _compare(args, tmp_path, entry=("-c", KILLED_AT_CHECKPOINT), KILL_AT="2")
    assert killed.returncode != 0
    run = out / "all" / "abr-seed0"
    assert (run / "checkpoint.safetensors").exists() and not (run / "report.json").exists()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # epoch 2 logged, not checkpointed
    done = _compare(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"resuming in {run}" in done.stdout and f"training in {out / 'last' / 'abr-seed0'}" in done.stdout
    report = json.loads((run / "report.json").read_text())
    assert report["epochs"] == 2 and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    summary = json.loads((out / "compare.json").read_text())
    assert summary["binarize"] == ["all", "last"]
    assert [(e["binarize"], e["method"]) for e in summary["results"]] == [("all", "abr"), ("last", "abr")]
    assert [e["runs"][0]["binary_layers"] for e in summary["results"]] == [2, 1]
    assert all(e["aggregate"]["all_binary"] for e in summary["results"])
    table = (out / "compare.md").read_text()
    assert "## binarize all" in table and "## binarize last" in table


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_relu_is_trained_once_for_every_scope(tmp_path, jobs):
    # ReLU has no binary layer: its network is the same in every scope, so one run (in
    # the first scope's folder) stands for it in all of them.
    out = tmp_path / "cmp"
    args = ["--recipe", "digits", "--methods", "relu", "--binarize", "all,last", "--seeds", "1", *QUICK,
            "--limit", "100", "--jobs", jobs, "--out", str(out)]  # fmt: skip
    done = _compare(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 runs into" in done.stdout and "(1 shared between scopes" in done.stdout
    assert done.stdout.count("training in") == 1
    assert (out / "all" / "relu-seed0" / "report.json").is_file() and not (out / "last").exists()
    summary = json.loads((out / "compare.json").read_text())
    (all_, last) = summary["results"]
    assert (all_["binarize"], last["binarize"]) == ("all", "last")
    assert all_["runs"] == last["runs"] and last["runs"][0]["run_dir"] == "all/relu-seed0"
    assert summary["wall_time_s"] == all_["runs"][0]["wall_time_s"]  # counted once
    again = _compare(args, tmp_path)  # and reused as one run
    assert again.returncode == 0 and "2 runs into" in again.stdout and "1 finished, 0 to train" in again.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--methods", "relu,sign"], ["sign", ", ".join(METHODS)]),  # the choices, in registry order
        (["--methods", ""], ["(empty)"]),
        (["--binarize", "all,some"], ["some", "all, last"]),
        (["--seeds", "0"], ["--seeds", ">= 1"]),
        (["--seeds", "1,x"], ["--seeds", "comma-separated seeds", "'1,x'"]),
        (["--seeds", "1,1"], ["--seeds repeat"]),
        (["--recipe", "mnsit"], ["mnsit"]),
        (["--epochs", "-1"], ["--epochs"]),
        (["--baseline"], ["--methods relu"]),
        (["--binarize", "last,last"], ["twice"]),
        (["--jobs", "0"], ["--jobs", ">= 1"]),
    ],
)
def test_bad_values_are_one_line_user_errors(tmp_path, capsys, args, words):
    code = cli_main(["compare", *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("abrnet compare: error:")
    for word in words:
        assert word in err
    assert not (tmp_path / "x" / "compare.json").exists()


def test_cifar10_through_compare(tmp_path):
    _write_cifar(tmp_path / "data", per_batch=4)
    out = tmp_path / "cmp"
    done = _compare(["--recipe", "cifar10", "--methods", "relu,abr", "--seeds", "1", "--epochs", "1",
                     "--finetune-epochs", "0", "--batch-size", "4", "--data-dir", str(tmp_path / "data"),
                     "--out", str(out)], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "compare.json").read_text())
    assert summary["config"]["model"] == "quick" and summary["config"]["dataset"] == "cifar10"
    abr = summary["results"][1]
    assert abr["method"] == "abr" and abr["runs"][0]["binary_layers"] == 4  # conv1..3, fc
    assert abr["aggregate"]["all_binary"] is True
    report = json.loads((out / "all" / "abr-seed0" / "report.json").read_text())
    assert report["test_size"] == 4 and report["deployed_binary"]["non_binary_outputs"] == 0


def test_imagenet_folders_through_compare(tmp_path):
    # CaffeNet at 224 px on 2 classes x 4 images; workers 0 keeps it in one process.
    _write_folders(tmp_path / "data", {"cat": (255, 0, 0), "dog": (0, 128, 0)}, (("train", 4), ("val", 4)))
    out = tmp_path / "cmp"
    done = _compare(["--recipe", "imagenet", "--model", "caffenet", "--methods", "relu,abr", "--seeds", "1",
                     "--epochs", "1", "--finetune-epochs", "0", "--batch-size", "4", "--limit", "8",
                     "--workers", "0", "--data-dir", str(tmp_path / "data"), "--out", str(out)], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "compare.json").read_text())
    assert summary["config"]["model"] == "caffenet" and summary["config"]["dataset"] == "imagenet"
    abr = summary["results"][1]
    assert abr["runs"][0]["binary_layers"] == 7  # conv1..5, fc6, fc7
    assert abr["aggregate"]["all_binary"] is True
    report = json.loads((out / "all" / "abr-seed0" / "report.json").read_text())
    assert report["test_size"] == 8 and "top5" not in report  # 2 classes: top-1 only


def _part(summary: dict, seed: int) -> dict:
    # The comparison as if it had been run with --seeds SEED, alone.
    part = json.loads(json.dumps(summary))
    part["seeds"] = [seed]
    for entry in part["results"]:
        entry["runs"] = [r for r in entry["runs"] if r["seed"] == seed]
    return part


def test_merge_joins_parts_into_the_whole(digits, tmp_path):
    # Seeds 0 and 1 of every method, as two comparisons (two machines, say): merged,
    # they give the statistics of the comparison that ran both.
    full = json.loads((digits["out"] / "compare.json").read_text())
    for seed in (0, 1):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "compare.json").write_text(json.dumps(_part(full, seed)))
    out = tmp_path / "merged"
    done = _compare(["--merge", str(tmp_path / "seed1"), str(tmp_path / "seed0" / "compare.json"), "--out", str(out)],
                    tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    merged = json.loads((out / "compare.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["methods"] == full["methods"]
    assert [p["seeds"] for p in merged["parts"]] == [[1], [0]] and merged["command"].startswith(
        "abrnet compare --merge"
    )
    for got, want in zip(merged["results"], full["results"], strict=True):
        assert (got["binarize"], got["method"]) == (want["binarize"], want["method"])
        assert [r["seed"] for r in got["runs"]] == [0, 1]
        assert got["aggregate"] == want["aggregate"]
    assert "## binarize all" in (out / "compare.md").read_text() and "seed1/compare.json`: seeds 1 of" in done.stdout


def test_merge_ignores_the_adaptive_schedules_fields_in_parts_without_abr(digits):
    full = json.loads((digits["out"] / "compare.json").read_text())
    rivals = _part(full, 1)  # a part whose abr row trained elsewhere, before a default moved
    rivals["results"] = [e for e in rivals["results"] if e["method"] != "abr"]
    rivals["methods"] = [m for m in rivals["methods"] if m != "abr"]
    rivals["config"]["binarize_at"] = 0.3
    merged = merge_summaries([_part(full, 0), rivals])
    assert [r["seed"] for r in merged["results"][1]["runs"]] == [0, 1]
    # A part with abr-paper alone shares schedule=paper, one without it adaptive: the
    # row fixes that key, so the parts still merge.
    paper, rest = _part(full, 1), _part(full, 0)
    for part, keep in ((paper, lambda m: m == "abr-paper"), (rest, lambda m: m != "abr-paper")):
        part["results"] = [e for e in part["results"] if keep(e["method"])]
        part["methods"] = [m for m in part["methods"] if keep(m)]
    paper["config"]["schedule"], rest["config"]["schedule"] = "paper", "adaptive"
    merged = merge_summaries([rest, paper])
    assert {e["method"]: [r["seed"] for r in e["runs"]] for e in merged["results"]}["abr-paper"] == [1]
    moved = _part(full, 1)  # its abr runs did train with other stages: refused
    moved["config"]["binarize_at"] = 0.3
    with pytest.raises(UserError, match="binarize_at"):
        merge_summaries([_part(full, 0), moved])


def test_merge_refuses_parts_that_do_not_fit(digits, tmp_path):
    full = json.loads((digits["out"] / "compare.json").read_text())
    other = _part(full, 1)
    other["config"]["epochs"] += 1
    clash = _part(full, 0)
    clash["results"][0]["runs"][0]["deployed"] = 0.5
    files = {"whole": full, "other": other, "clash": clash}
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / "bad.json").write_text("{not json")
    cases = [
        (["whole", "other"], "other.json trained another config than", "epochs"),
        (["whole", "clash"], f"binarize all, {full['results'][0]['method']}, seed 0 differs between", "clash.json"),
        (["whole", "bad"], "cannot read", "bad.json"),
        (["whole"], "at least two", "--merge"),
    ]
    for names, *words in cases:
        done = _compare(["--merge", *(str(tmp_path / f"{n}.json") for n in names), "--out", str(tmp_path / "m")],
                        tmp_path)  # fmt: skip
        err = done.stderr.strip()
        assert done.returncode == 2 and "\n" not in err and err.startswith("abrnet compare: error:"), err
        assert all(w in err for w in words), err
        assert not (tmp_path / "m" / "compare.json").exists()
    # The same run reused by two comparisons of one directory is one run, not a clash.
    done = _compare(["--merge", str(tmp_path / "whole.json"), str(digits["out"]), "--out", str(tmp_path / "m")],
                    tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((tmp_path / "m" / "compare.json").read_text())["results"][0]["aggregate"]
        == full["results"][0]["aggregate"]
    )
