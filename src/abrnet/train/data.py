"""Datasets by name: the embedded digits here, the files on disk through
:mod:`abrnet.train.formats` (torchvision parses IDX, CIFAR pickles and image folders).
Every way of not finding or not parsing the data is a one-line
:class:`~abrnet.errors.UserError`. Needs torchvision and scikit-learn, which
``import abrnet`` must not load.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .datasets import DATASETS, DatasetInfo
from .inmemory import InMemoryDataset


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    train_augment: bool = False,
    limit: int | None = None,
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """``(train, test, info)`` for one of :data:`DATASETS`.

    Items are ``(x, y)`` with ``x`` a normalised float32 tensor of ``info.input_shape``
    and ``y`` the class index. ``data_dir`` is ignored for ``digits`` (scikit-learn
    ships it); when None, Fashion-MNIST is looked up in Debian's folder and everything
    else in ``cache_dir()/data``, where ``download=True`` puts it. ``train_augment`` adds
    the usual augmentation to the train split of ``cifar10`` (crop + flip) and
    ``imagenet`` (RandomResizedCrop + flip); the 1-channel sets have none. ``limit``
    keeps the first ``limit`` items of each split.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    if limit is not None and limit < 1:
        raise UserError(f"dataset limit must be a positive number of items, got {limit}")
    if key == "digits":
        return (*(ds.head(limit) for ds in _digits()), DATASETS[key])
    from . import formats  # torchvision: loaded only for the datasets that need it

    root = Path(data_dir).expanduser() if data_dir is not None else None
    if key in formats.IDX_CLASSES:
        return (*(ds.head(limit) for ds in formats.idx(key, root, download)), DATASETS[key])
    if key == "cifar10":
        train, test = formats.cifar10(root, download, train_augment)
        return train.head(limit), test.head(limit), DATASETS[key]
    return formats.imagenet(root, train_augment, limit)


def _digits() -> tuple[InMemoryDataset, InMemoryDataset]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    # Pixels are integers 0..16: keep them as uint8 and scale by 1/16 on access.
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train = torch.as_tensor(x_train).to(torch.uint8).view(-1, 1, 8, 8)
    x_test = torch.as_tensor(x_test).to(torch.uint8).view(-1, 1, 8, 8)
    scaled = x_train.double() / 16
    mean, std = [scaled.mean().item()], [scaled.std().item()]
    return (
        InMemoryDataset(x_train, torch.as_tensor(y_train), mean, std, scale=1 / 16),
        InMemoryDataset(x_test, torch.as_tensor(y_test), mean, std, scale=1 / 16),
    )
