"""Readers of the on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR-10's pickle
batches and an ImageNet-style folder tree. torchvision parses; these find the files and
turn every way of not finding them into a one-line error that says how to get them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import extract_archive
from torchvision.transforms import v2

from ..errors import UserError
from .datasets import DATASETS, SYSTEM_DIRS, DatasetInfo
from .inmemory import InMemoryDataset, cache_dir, one_line, parse_errors

_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_CLASSES = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def idx(name: str, root: Path | None, download: bool) -> tuple[InMemoryDataset, InMemoryDataset]:
    # Accepted: the four files directly in a folder (Debian's layout), .gz or not, or
    # torchvision's <root>/<Class>/raw/. torchvision's own class wants the unzipped files
    # in raw/, so we find them ourselves and use only its IDX reader.
    cls = IDX_CLASSES[name]
    base = root if root is not None else cache_dir() / "data"
    if root is not None:
        folders = [root]
    else:
        folders = [SYSTEM_DIRS[name]] if name in SYSTEM_DIRS else []
    folders.append(base / cls.__name__ / "raw")
    stems = [stem for pair in _IDX.values() for stem in pair]

    def complete(folder: Path) -> bool:
        return all(_idx_file(folder, stem) for stem in stems)

    folder = next((f for f in folders if complete(f)), None)
    if folder is None and download:
        try:
            cls(base, download=True)
        except (RuntimeError, OSError) as e:
            raise UserError(f"could not download {name} into {base}: {one_line(e)}") from e
        folder = folders[-1]
    if folder is None:
        hint = "install it with 'apt-get install dataset-fashion-mnist', " if name == "fashion-mnist" else ""
        raise UserError(
            f"{name} not found in {' or '.join(map(str, folders))} (looked for {', '.join(stems)}, "
            f"each optionally .gz); {hint}pass --data-dir, or add --download"
        )
    mean, std = DATASETS[name].mean_std
    with parse_errors(name, folder):
        return tuple(InMemoryDataset(*_read_idx_pair(folder, *_IDX[split]), mean, std) for split in ("train", "test"))


def _read_idx_pair(folder: Path, image_stem: str, label_stem: str) -> tuple[Tensor, Tensor]:
    with tempfile.TemporaryDirectory(prefix="abrnet-idx-") as tmp:

        def read(stem, reader):
            path = _idx_file(folder, stem)
            if path.suffix == ".gz":  # torchvision's reader opens plain files only
                path = extract_archive(path, tmp)
            return reader(str(path))

        images = read(image_stem, read_image_file)
        labels = read(label_stem, read_label_file)
    if len(images) != len(labels):
        raise ValueError(f"{image_stem} holds {len(images)} images but {label_stem} {len(labels)} labels")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < 10:
        raise ValueError(f"{label_stem} holds labels outside 0..9")
    return images.unsqueeze(1), labels


class _CIFAR10(datasets.CIFAR10):
    # torchvision checks the md5 of each batch file against the official download on
    # every load; check_integrity(path, None) only checks that the file exists. Parse
    # errors still surface, and the archive's md5 is still checked on download.
    train_list = [[f, None] for f, _ in datasets.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


def cifar10(root: Path | None, download: bool, augment: bool) -> tuple[InMemoryDataset, InMemoryDataset]:
    base = root if root is not None else cache_dir() / "data"
    folder = _CIFAR10.base_folder
    if not (base / folder).is_dir() and base.name == folder:  # --data-dir pointed at the batches themselves
        base = base.parent
    files = [f for f, _ in _CIFAR10.train_list + _CIFAR10.test_list] + [_CIFAR10.meta["filename"]]

    def missing() -> list[str]:
        return [f for f in files if not (base / folder / f).is_file()]

    if missing() and download:
        try:
            _CIFAR10(base, download=True)
        except (RuntimeError, OSError) as e:
            raise UserError(f"could not download cifar10 into {base}: {one_line(e)}") from e
    if missing():
        raise UserError(
            f"cifar10 not found in {base / folder} (looked for {', '.join(files)}; missing "
            f"{', '.join(missing())}); pass --data-dir with the folder that holds {folder}/, or add --download"
        )
    mean, std = DATASETS["cifar10"].mean_std
    out = []
    with parse_errors("cifar10", base / folder):
        for train in (True, False):
            ds = _CIFAR10(base, train=train)
            data = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()  # torchvision holds HWC
            out.append(InMemoryDataset(data, torch.as_tensor(ds.targets), mean, std, augment=augment and train))
    return out[0], out[1]


def imagenet(root: Path | None, augment: bool, limit: int | None) -> tuple[Dataset, Dataset, DatasetInfo]:
    layout = "train/<class>/*.JPEG and val/<class>/*.JPEG, one folder per class in each"
    if root is None:
        raise UserError(f"imagenet needs --data-dir: a folder with {layout}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(
                f"imagenet not found: no {root / split} (expected {layout}; the official val "
                f"archive is flat, sort it into class folders first)"
            )
    mean, std = DATASETS["imagenet"].mean_std
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    plain = v2.Compose([v2.Resize(256), v2.CenterCrop(224), *tail])
    train_tf = v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(), *tail]) if augment else plain
    splits = []
    for split, tf in (("train", train_tf), ("val", plain)):
        try:
            splits.append(datasets.ImageFolder(root / split, transform=tf))
        except OSError as e:  # FileNotFoundError: no class folders, or no images in them
            raise UserError(f"imagenet in {root / split}: {one_line(e)} (expected {layout})") from e
    train, test = splits
    if train.classes != test.classes:
        raise UserError(
            f"imagenet: {root / 'train'} has {len(train.classes)} class folders, {root / 'val'} "
            f"{len(test.classes)}, and they differ; both need the same class folders"
        )
    info = DATASETS["imagenet"].with_classes(tuple(train.classes))
    if limit is not None:
        # ImageFolder sorts by class, so the first items all share the first classes.
        train, test = (Subset(ds, range(min(limit, len(ds)))) for ds in (train, test))
    return train, test, info
