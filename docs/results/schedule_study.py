"""The schedule study of docs/results.md: a plain PyTorch loop (not the engine) on
Fashion-MNIST, one configuration of abrnet.BinarizationSchedule (or a rival) per run,
one thread. It prints test accuracy every 3 epochs and a JSON line at the end.

    python3 docs/results/schedule_study.py --binarize-at 0.6 --freeze-at 0.85 --growth 0
    python3 docs/results/schedule_study.py --method ste
"""

import argparse
import json
import time

import torch

import abrnet
from abrnet.rivals import make_activation
from abrnet.stats import non_binary_outputs
from abrnet.train.data import load_dataset
from abrnet.train.models import create_model


def accuracy(model, loader) -> float:
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            seen += len(y)
    model.train()
    return correct / seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--method", default="abr")
    ap.add_argument("--scope", default="all", choices=("all", "last"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slope-mult", type=float, default=1.0)
    ap.add_argument("--binarize-at", type=float, default=0.6)
    ap.add_argument("--freeze-at", type=float, default=0.85)
    ap.add_argument("--growth", type=float, default=0.0)
    ap.add_argument("--saturate", type=float, default=0.99)
    ap.add_argument("--comp", type=float, default=1.0, help="divide upstream gradients by rise ** comp")
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, test, info = load_dataset("fashion-mnist")
    torch.manual_seed(a.seed)

    def act(channels: int, last: bool):
        return torch.nn.ReLU() if a.scope == "last" and not last else make_activation(a.method, channels)

    model = create_model(a.model, act=act, num_classes=10, input_shape=info.input_shape)
    model(torch.zeros(2, *info.input_shape))  # materialise lazy slopes
    opt = torch.optim.SGD(abrnet.param_groups(model, 0.01, slope_lr_mult=a.slope_mult), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(train, batch_size=100, shuffle=True,
                                         generator=torch.Generator().manual_seed(a.seed))  # fmt: skip
    test_loader = torch.utils.data.DataLoader(test, batch_size=1000)
    held = next(iter(torch.utils.data.DataLoader(test, batch_size=256)))[0]
    sched = None
    if a.method == "abr":
        sched = abrnet.BinarizationSchedule(
            model, opt, a.epochs * len(loader), growth=a.growth, binarize_at=a.binarize_at, freeze_at=a.freeze_at,
            saturate=a.saturate, held_out=held, compensate=a.comp,
        )  # fmt: skip
    started = time.time()
    for epoch in range(a.epochs):
        abrnet.set_lr_(opt, 0.01 if epoch < 8 else 0.001)
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 3 == 2 or epoch == a.epochs - 1:
            deployed = abrnet.binarize(model) if abrnet.binary_layers(model) else model
            print(f"ep {epoch + 1} train-form {accuracy(model, test_loader):.4f} "
                  f"deployed {accuracy(deployed, test_loader):.4f} {sched}", flush=True)  # fmt: skip
    deployed = abrnet.binarize(model) if abrnet.binary_layers(model) else model
    check = non_binary_outputs(abrnet.binarization_stats(deployed, test_loader))
    print(json.dumps({"args": vars(a), "train_form": accuracy(model, test_loader),
                      "deployed": accuracy(deployed, test_loader), "non_binary": check["non_binary_outputs"],
                      "s": time.time() - started}))  # fmt: skip


if __name__ == "__main__":
    main()
