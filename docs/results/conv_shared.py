"""`abrnet train` with one slope per layer on convolutional ABRs only (inputs with spatial
dimensions) and one per channel on fully connected ones: a study variant, not a library
option (docs/results.md, "Why PACT wins here").

    OMP_NUM_THREADS=1 python docs/results/conv_shared.py \
        train --recipe fashion-mnist --log-every 100000 --out runs/fm-quick-convshared

Why: `--shared-slope` (one slope per layer everywhere) lifted the quick net by about a
point on 3 seeds and cost the MLP half a point. The MLP has only fully connected ABRs;
if the quick net's gain comes from its convolutional layers, this rule keeps the gain
and leaves the MLP as the default has it, by construction.
"""

import sys

import torch
from torch import nn

import abrnet.train.pipeline as pipeline
import abrnet.train.run as run
from abrnet.cli import main
from abrnet.layers import ABR

_build = run.build_model


def build_model(cfg, num_classes, input_shape) -> nn.Module:
    model = _build(cfg, num_classes, input_shape)
    dims = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: dims.__setitem__(n, i[0].dim()))
             for n, m in model.named_modules() if isinstance(m, ABR)]  # fmt: skip
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    for name, d in dims.items():
        if d > 2:  # a feature map: one slope for the layer
            old = model.get_submodule(name)
            parent, _, leaf = name.rpartition(".")
            new = ABR(shared=True, channel_dim=old.channel_dim, init_slope=old.init_slope, min_slope=old.min_slope,
                      binary_loss=old.binary_loss)  # fmt: skip
            setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return model.train()


if __name__ == "__main__":
    run.build_model = pipeline.build_model = build_model
    sys.exit(main(sys.argv[1:]))
