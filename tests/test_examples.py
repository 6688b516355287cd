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
