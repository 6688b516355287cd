"""The command line as a user types it, for the tests: a subprocess runner and the
check that an error is one line on stderr with no traceback."""

import os
import subprocess
import sys

QUICK = ["--epochs", "1", "--finetune-epochs", "1", "--limit", "300", "--quiet"]


# ``abrnet`` as a job killed at the worst moment: after epoch KILL_AT's metrics line is
# written and before its checkpoint is (the engine has no hook for this; the test patches).
KILLED_AT_CHECKPOINT = """
import os, signal, sys
from abrnet.train.engine import Trainer
save = Trainer.save
def dying_save(self):
    if self.epoch == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    save(self)
Trainer.save = dying_save
from abrnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def abrnet(*args, env=None, check=True, timeout=300, entry=("-m", "abrnet")):
    run = subprocess.run(
        [sys.executable, *entry, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and run.returncode != 0:
        raise AssertionError(f"exit {run.returncode}\n{run.stdout}\n{run.stderr}")
    return run


def assert_one_line_error(run, *needles):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
