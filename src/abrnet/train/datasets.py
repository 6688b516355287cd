"""The dataset registry: what a model, the loader and the evaluation need to know about
each dataset, defined once. Light (torch only), so the config and the command line can
list the choices without loading torchvision; :mod:`abrnet.train.data` reads the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset


@dataclass(frozen=True)
class DatasetInfo:
    """Classes, the input shape (C, H, W), and how the data is read and scored.

    ``in_memory``: whole splits are held as tensors (no loader workers needed on a CPU);
    ``topk``: the accuracies reported (ImageNet's usual top-1 and top-5);
    ``mean_std``: per-channel statistics of the training set, on pixels in [0, 1]
    (None: computed when loaded, as for digits).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    in_memory: bool = True
    topk: tuple[int, ...] = (1,)

    def with_classes(self, class_names: tuple[str, ...]) -> DatasetInfo:
        """This dataset as found on disk: its own classes, and only the top-k that fit."""
        n = len(class_names)
        return replace(self, num_classes=n, class_names=tuple(class_names), topk=tuple(k for k in self.topk if k <= n))


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 10, (1, 8, 8), _DIGITS),
    "mnist": DatasetInfo("mnist", 10, (1, 28, 28), _DIGITS, ((0.1307,), (0.3081,))),
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, (1, 28, 28), _FASHION, ((0.2860,), (0.3530,))),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), _CIFAR10, ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))),
    # The real class count and names come from the folders when loaded.
    "imagenet": DatasetInfo(
        "imagenet", 1000, (3, 224, 224), (), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), False, (1, 5)
    ),
}

# Where Debian's dataset packages put the files (apt-get install dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


def make_loader(
    ds: Dataset, info: DatasetInfo, batch_size: int, device: torch.device, *, workers: int = -1,
    sampler=None, generator=None,
) -> DataLoader:  # fmt: skip
    """A DataLoader with the policy of this project: ``workers=-1`` means none for
    in-memory data on a CPU (batches are slices of a tensor), else up to 8."""
    if workers < 0:
        workers = 0 if (info.in_memory and device.type == "cpu") else min(8, os.cpu_count() or 1)
    return DataLoader(
        ds, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
        generator=generator, persistent_workers=False,
    )  # fmt: skip
