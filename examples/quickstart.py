"""Train a small ABR network on scikit-learn's 8x8 digits, then deploy it fully binary.

The paper's two phases written out with the low-level API (``growth_penalty``,
``clamp_slopes_``), and a third that freezes every ABR into its step and fine-tunes
what follows, so the trained model is the deployed one. ``abrnet train`` runs the same
schedule; ``examples/own_loop.py`` lets ``abrnet.BinarizationSchedule`` drive it.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

import abrnet

torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
perm = torch.randperm(len(x))
train, test = perm[:1500], perm[1500:]

model = nn.Sequential(nn.Linear(64, 256), abrnet.ABR(256), nn.Linear(256, 128), abrnet.ABR(128), nn.Linear(128, 10))
opt = torch.optim.SGD(abrnet.param_groups(model, lr=0.02), momentum=0.9)


def run(epochs: int, growth: float, lr: float) -> None:
    abrnet.set_lr_(opt, lr)  # each group at lr times its multiplier (slopes: 10x)
    for _ in range(epochs):
        for idx in train[torch.randperm(len(train))].split(50):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + abrnet.growth_penalty(model, growth)
            opt.zero_grad()
            loss.backward()
            opt.step()
            abrnet.clamp_slopes_(model)


def accuracy(net: nn.Module) -> float:
    with torch.no_grad():
        return (net.eval()(x[test]).argmax(1) == y[test]).float().mean().item()


run(epochs=30, growth=1e-3, lr=0.02)  # phase 1: learn with a small growth
run(epochs=20, growth=1.0, lr=1e-3)  # phase 2: push the slopes up towards steps
before = accuracy(model)
for name, s in abrnet.binarization_stats(model, x[test]).items():
    print(f"layer {name}: slope mean {s.slope_mean:.1f}, binary share {s.binary:.4f}")
abrnet.freeze(model, abrnet.binary_layers(model), straight_through=True)  # phase 3: every ABR computes its step...
run(epochs=10, growth=0.0, lr=3e-3)  # ...and the whole net adapts to exact 0/1 (ABR gradients)
deployed = abrnet.binarize(model)
print(abrnet.summary(deployed, (64,)))
trained, binary = accuracy(model), accuracy(deployed)
checked = abrnet.stats.non_binary_outputs(abrnet.binarization_stats(deployed, x[test]))
print(f"ABR accuracy before freezing {before:.4f}; after: training form {trained:.4f}")
print(
    f"deployed accuracy {binary:.4f} ({100 * (binary - before):+.2f} points from the ABR form), "
    f"non-binary outputs {checked['non_binary_outputs']} of {checked['outputs_checked']:,}"
)
