"""Accuracy of a model on a loader, in the layout the engine trains in."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader


def input_format(model: nn.Module) -> torch.memory_format:
    """``channels_last`` when the model's conv weights are (TrainConfig.channels_last),
    so inputs match them; otherwise the input keeps its layout."""
    w = next((p for p in model.parameters() if p.dim() == 4 and p.shape[1] * p.shape[2] * p.shape[3] > 1), None)
    if w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
        return torch.channels_last
    return torch.preserve_format


def to_device(x: torch.Tensor, device: torch.device, fmt: torch.memory_format) -> torch.Tensor:
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=fmt)
    return x.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, data: DataLoader, device: torch.device, topk: tuple[int, ...] = (1,)) -> dict:
    """Accuracy (top-k) of ``model`` on ``data``, in eval mode."""
    was_training = model.training
    model.eval()
    correct = dict.fromkeys(topk, 0)
    n = 0
    fmt = input_format(model)
    for x, y in data:
        x, y = to_device(x, device, fmt), y.to(device, non_blocking=True)
        out = model(x)
        top = out.topk(max(topk), dim=1).indices
        for k in topk:
            correct[k] += (top[:, :k] == y[:, None]).any(1).sum().item()
        n += len(y)
    model.train(was_training)
    return {k: correct[k] / max(n, 1) for k in topk}


def evaluate_run(run, *, split: str = "test", layers: str = "all", device: torch.device, limit: int | None = None):
    """Accuracies of a loaded run (:func:`abrnet.load_run`) on one split, top-k as its
    dataset reports: ``train_form``; ``binary``, the step network with ``layers``
    stepped ("none" skips it), with ``non_binary_outputs`` counted at those steps; and
    ``relu``, the baseline, when the run has one. Also ``items``, the split's size."""
    from ..layers import is_step
    from ..stats import binarization_stats, non_binary_outputs
    from ..steps import binarize, binary_layers

    train, test = run.datasets(limit=limit)
    data = run.loader(test if split == "test" else train, device)
    results: dict = {"items": len(data.dataset)}
    results["train_form"] = evaluate(run.model.to(device), data, device, run.info.topk)
    if layers != "none" and binary_layers(run.model):
        stepped = binarize(run.model, layers).to(device)
        results["binary"] = evaluate(stepped, data, device, run.info.topk)
        stats = binarization_stats(stepped, data)
        steps = {n: s for n, s in stats.items() if is_step(stepped.get_submodule(n))}
        results["binary"]["non_binary_outputs"] = non_binary_outputs(steps)["non_binary_outputs"]
    if run.baseline is not None:
        results["relu"] = evaluate(run.baseline.to(device), data, device, run.info.topk)
    return results
