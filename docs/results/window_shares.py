"""Share of each binary layer's pre-activations inside its surrogate window, for finished
run directories (the numbers behind docs/results.md's "--window-share" paragraph).

    python docs/results/window_shares.py runs/fm-quick-v2/all/abr-seed0 runs/fm-quick-v2/all/pact-seed0

Inputs: every 60th training image (1,000 of Fashion-MNIST's 60,000), through the trained
network in eval mode. ABR: the window ``|x| < 1/(2 w0)`` at the ``w0`` its schedule used
(the checkpoint's measured start slopes, or its ``window`` with --window-share). PACT:
its gradient's window ``0 <= x < alpha``, centred on its threshold ``alpha/2``.
"""

import sys
from pathlib import Path

import torch

from abrnet.layers import ABR
from abrnet.rivals import PACT
from abrnet.train.checkpoint import read_checkpoint
from abrnet.train.run import load_run


def shares(run_dir: str) -> dict[str, tuple[float, float]]:
    """Per binary layer: (window slope w, share of inputs inside the window)."""
    _, meta = read_checkpoint(Path(run_dir) / "checkpoint.safetensors")
    schedule = meta.get("binarization") or {}
    w0 = schedule.get("start", {}) | schedule.get("window", {})
    run = load_run(run_dir)
    model = run.model.eval()
    train, _ = run.datasets()
    x = torch.stack([train[i][0] for i in range(0, len(train), 60)])
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, (m, i[0].flatten())))
             for n, m in model.named_modules() if isinstance(m, (ABR, PACT))]  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    out = {}
    for name, (m, v) in inputs.items():
        if isinstance(m, PACT):
            alpha = m.alpha.detach().clamp(min=m.min_alpha).item()
            out[name] = (1 / alpha, ((v >= 0) & (v < alpha)).float().mean().item())
        elif name in w0:
            out[name] = (w0[name], (v.abs() < 0.5 / w0[name]).float().mean().item())
    return out


if __name__ == "__main__":
    for run_dir in sys.argv[1:]:
        cells = ", ".join(f"{n}: w {w:.2f}, share {s:.2f}" for n, (w, s) in shares(run_dir).items())
        print(f"{run_dir}: {cells}")
