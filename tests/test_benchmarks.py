"""The benchmarks still run against today's library (a smoke run each, no timing
asserted): bench_surrogate's forms broke silently once the ABRs began passing a width."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from abrnet.functional import windowed

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
