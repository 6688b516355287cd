"""`abrnet train` on a deeper MLP, 784-256-256-128-128-10 (four binary layers, as many
as the quick net has), registered here as model ``mlp4``; with ``ABR_GAIN_POWER`` set,
also with gain_window.py's gradient gain on each surrogate window. A study variant, not
a library model (docs/results.md, "What decides the gain").

    OMP_NUM_THREADS=1 python docs/results/deep_mlp.py train --recipe fashion-mnist \
        --model mlp4 --binarize all --seed 0 --log-every 100000 --out runs/exp/mlp4-s0

Why: the gain of ``share ** -0.5`` helped the quick net (+0.48, seed 0) and cost the
two-layer MLP 0.57 (3 seeds). If the number of stacked binary layers is what decides,
the four-layer MLP should gain from it as the quick net does.
"""

import functools
import os
import sys

from abrnet.cli import main
from abrnet.train import models

models.MODELS["mlp4"] = functools.partial(models.mlp, hidden=(256, 256, 128, 128))

if __name__ == "__main__":
    if "ABR_GAIN_POWER" in os.environ:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import gain_window

        gain_window.patch()
    sys.exit(main(sys.argv[1:]))
