"""The examples run as a user runs them, and end where they say."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_own_loop_ends_fully_binary_above_95_percent():
    run = subprocess.run([sys.executable, str(EXAMPLES / "own_loop.py")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"deployed accuracy (0\.\d{4}), non-binary outputs (\d+)", last)
    assert m, last
    assert float(m.group(1)) >= 0.95 and int(m.group(2)) == 0
    # the trained model is the deployed one: the same accuracy on the line before
    assert f"training form {m.group(1)};" in run.stdout


def test_quickstart_ends_fully_binary_within_one_point_of_its_abr_form():
    run = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    before = float(
        re.search(r"ABR accuracy before freezing (0\.\d{4}); after: training form (0\.\d{4})", run.stdout)[1]
    )
    last = run.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"deployed accuracy (0\.\d{4}) \(([+-]\d+\.\d{2}) points from the ABR form\), "
                     r"non-binary outputs (\d+) of ([\d,]+)", last)  # fmt: skip
    assert m, last
    deployed = float(m[1])
    assert deployed >= before - 0.01 and int(m[3]) == 0 and int(m[4].replace(",", "")) > 0
    assert f"training form {m[1]}" in run.stdout  # the trained model is the deployed one
