"""The benchmarks still run against today's library (a smoke run each, no timing
asserted): bench_surrogate's forms broke silently once the ABRs began passing a width."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from abrnet.functional import windowed
from fakedata import _write_idx

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    "args",
    [
        ["bench_surrogate.py", "--models", "mlp"],
        ["bench_surrogate.py", "--models", "mlp", "--learned"],
        ["bench_train_step.py", "--models", "mlp", "--schedule", "adaptive,fixed-window,centred,paper"],
        ["bench_train_step.py", "--models", "mlp", "--schedule", "floor-fixed,floor-learned"],
    ],
    ids=["surrogate", "surrogate-learned", "train-step", "train-step-floor"],
)
def test_benchmark_runs_and_writes_its_rows(args, tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, *args, "--repeats", "1", "--iters", "1", "--threads", "1",
                           "--json", str(out)], cwd=BENCH, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["model"] == "mlp" for r in rows)
    if "abr_ops" in rows[0]:  # the step's op count: ABR adds work to ReLU's, never less
        floor = [r for r in rows if r["schedule"].startswith("floor")]
        assert all(r["abr_ops"] > r["relu_ops"] > 0 for r in rows if r not in floor)
        assert all(r["abr_ops"] >= r["relu_ops"] > 0 for r in floor)
        assert all(r["work_us"] > 0 and r["fused_sgd_us"] > 0 for r in rows)
    assert "| mlp |" in done.stdout


@pytest.mark.parametrize("learned", [False, True])
def test_floor_window_has_the_rounded_windows_gradients(learned, monkeypatch):
    """The benchmark's floor is a lower bound on the method's own step only if it computes
    the same gradients: those of the rounded window of width 2 (and, learned, its width's)."""
    monkeypatch.syspath_prepend(str(BENCH))
    from bench_train_step import FloorWindow

    x = torch.linspace(-1, 3, 41, dtype=torch.float64).reshape(1, -1).requires_grad_()
    g = torch.rand(1, 41, dtype=torch.float64)
    floor = FloorWindow(learned).double()
    (gx, *gw) = torch.autograd.grad(floor(x), [x, *floor.parameters()], g)
    width = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (wx, ww) = torch.autograd.grad(windowed(x, 0.5, width=width, offset=0.5), [x, width], g)
    torch.testing.assert_close(gx, wx, rtol=1e-12, atol=0)
    assert bool(gx.ne(0).any()) and bool(gx.eq(0).any())  # inside the window and outside it
    if learned:
        torch.testing.assert_close(gw[0], ww, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "limits", [{}, {"PART_S": "1"}, {"TOTAL_S": "3"}], ids=["every-part", "part-out-of-time", "out-of-time"]
)
def test_gpu_script_runs_every_part_on_the_cpu(limits, tmp_path):
    """benchmarks/gpu.sh is the one run a lent GPU gets (15 minutes for all tries), so its
    tiny CPU mode runs every part here first. Out of time, a part is stopped (or not
    started) and named, the script fails, and what ran still comes back."""
    _write_idx(tmp_path / "fm", gz=True)
    env = os.environ | {"DEVICE": "cpu", "PYTHON": sys.executable, "PART_S": "300", "TOTAL_S": "900"} | limits
    done = subprocess.run(["bash", "benchmarks/gpu.sh", str(tmp_path / "out"), str(tmp_path / "fm")],
                          cwd=BENCH.parent, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    summary = (tmp_path / "out" / "summary.txt").read_text()
    parts = [
        "step",
        "step-bf16",
        "digits",
        "fashion-mnist",
        "compile-mlp",
        "compile-bf16-mlp",
        "search",
        "binary-linear",
    ]
    subprocess.run(["tar", "xzf", "gpu.tgz"], cwd=tmp_path / "out", check=True)
    if limits:
        said = "ran out of its 1 s" if "PART_S" in limits else "not run, the 3 s were spent"
        assert done.returncode == 1
        assert all(f"{p}: {said}" in summary for p in parts), summary
        return
    assert done.returncode == 0, summary + done.stderr[-2000:]
    assert all(f"{p}: ok in " in summary for p in parts), summary
    assert "| mlp | adaptive |" in summary and "deployed step network" in summary
    for name in ["step", "step-bf16", "compile-mlp", "compile-bf16-mlp"]:
        rows = json.loads((tmp_path / "out" / f"{name}.json").read_text())["rows"]
        assert rows and all(r["abr_ms"] > 0 for r in rows)
    assert json.loads((tmp_path / "out" / "search.json").read_text())["rows"]
    assert (tmp_path / "out" / "fm" / "report.json").exists()
