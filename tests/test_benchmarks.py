"""The benchmarks still run against today's library (a smoke run each, no timing
asserted): bench_surrogate's forms broke silently once the ABRs began passing a width."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    "args",
    [
        ["bench_surrogate.py", "--models", "mlp"],
        ["bench_surrogate.py", "--models", "mlp", "--learned"],
        ["bench_train_step.py", "--models", "mlp", "--schedule", "adaptive,fixed-window,centred,paper"],
    ],
    ids=["surrogate", "surrogate-learned", "train-step"],
)
def test_benchmark_runs_and_writes_its_rows(args, tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, *args, "--repeats", "1", "--iters", "1", "--threads", "1",
                           "--json", str(out)], cwd=BENCH, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["model"] == "mlp" for r in rows)
    if "abr_ops" in rows[0]:  # the step's op count: ABR adds work to ReLU's, never less
        assert all(r["abr_ops"] > r["relu_ops"] > 0 for r in rows)
        assert all(r["work_us"] > 0 and r["fused_sgd_us"] > 0 for r in rows)
    assert "| mlp |" in done.stdout
