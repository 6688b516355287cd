"""`abrnet train` with the adaptive schedule and one of BinarizationSchedule's options the
command line does not expose (the runs behind docs/results.md's quick-net variants).

    OMP_NUM_THREADS=1 python docs/results/schedule_variants.py straight_through \
        train --recipe fashion-mnist --schedule adaptive --log-every 100000 --out runs/fm-quick-st
    OMP_NUM_THREADS=1 python docs/results/schedule_variants.py surrogate \
        train --recipe fashion-mnist --schedule adaptive --log-every 100000 --out runs/fm-quick-sur

The first argument names a boolean option of ``abrnet.BinarizationSchedule`` to switch on;
the rest is an ``abrnet`` command line.
"""

import functools
import sys

import abrnet.train.engine as engine
from abrnet.cli import main

if __name__ == "__main__":
    option, argv = sys.argv[1], sys.argv[2:]
    engine.BinarizationSchedule = functools.partial(engine.BinarizationSchedule, **{option: True})
    sys.exit(main(argv))
