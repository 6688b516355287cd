"""Datasets for the CLI: the small ones held in memory, ImageNet read from folders.

torchvision parses the formats (IDX, CIFAR pickles, image folders); this module finds the
files, keeps whole splits in memory as uint8 tensors (decoding one PIL image per item is
the bottleneck on a small CPU) and turns every way of not finding or not parsing the
data into a one-line :class:`~abrnet.errors.UserError`. Only the CLI imports it: it
needs torchvision and scikit-learn, which ``import abrnet`` must not load.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import extract_archive
from torchvision.transforms import v2

from .errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: classes and the input shape (C, H, W)."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]


_DIGITS = tuple(str(i) for i in range(10))
_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 10, (1, 8, 8), _DIGITS),
    "mnist": DatasetInfo("mnist", 10, (1, 28, 28), _DIGITS),
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, (1, 28, 28), tuple(datasets.FashionMNIST.classes)),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), _CIFAR10_CLASSES),
    # The real class count and names come from the folders when loaded.
    "imagenet": DatasetInfo("imagenet", 1000, (3, 224, 224), ()),
}

# The usual per-channel statistics of each training set, on pixels scaled to [0, 1].
_MEAN_STD = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# Where Debian's dataset packages put the files (apt-get install dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_CLASSES = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}

# What torchvision raises on a truncated or foreign file: its IDX reader asserts, the
# pickle and gzip modules raise their own errors, reshapes raise RuntimeError.
_PARSE_ERRORS = (
    AssertionError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    RuntimeError,
    OSError,
    EOFError,
    pickle.UnpicklingError,
)


def cache_dir() -> Path:
    """``$ABRNET_CACHE`` or ``~/.cache/abrnet``; downloads go to its ``data/`` folder."""
    return Path(os.environ.get("ABRNET_CACHE") or Path.home() / ".cache" / "abrnet")


class InMemoryDataset(Dataset):
    """A whole split as uint8 images ``data`` (N, C, H, W) and int64 ``targets`` (N,).

    Items are ``(x, y)``: ``x`` float32 ``(data * scale - mean) / std``, ``y`` an int64
    scalar tensor. Kept in uint8 (a quarter of float32) and normalised per batch: the
    DataLoader fetches whole batches through ``__getitems__``. ``augment`` adds random
    crops (zero padding of 4, like torchvision's ``RandomCrop(padding=4)``) and
    horizontal flips, drawn from torch's global generator.
    """

    def __init__(
        self,
        data: Tensor,
        targets: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        scale: float = 1 / 255,
        augment: bool = False,
    ) -> None:
        if data.ndim != 4 or len(data) != len(targets):
            raise ValueError(f"expected data (N, C, H, W) and N targets, got {tuple(data.shape)} and {len(targets)}")
        self.data = data
        self.targets = targets.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.scale = scale
        self.augment = augment

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.data[idx].float().mul_(self.scale)
        if self.augment:
            x = _crop_flip(x, pad=4)
        x = x.sub_(self.mean).div_(self.std)
        return list(zip(x, self.targets[idx]))

    def head(self, n: int | None) -> InMemoryDataset:
        """The first ``n`` items (all when None), sharing memory with this one."""
        if n is None:
            return self
        return InMemoryDataset(
            self.data[:n],
            self.targets[:n],
            self.mean.flatten().tolist(),
            self.std.flatten().tolist(),
            scale=self.scale,
            augment=self.augment,
        )


def _crop_flip(x: Tensor, pad: int) -> Tensor:
    # One random crop offset and flip per image, vectorised over the batch.
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n, 1, 1))
    left = torch.randint(0, 2 * pad + 1, (n, 1, 1))
    rows = top + torch.arange(h).view(1, h, 1)
    cols = left + torch.arange(w).view(1, 1, w)
    x = padded[torch.arange(n).view(n, 1, 1), :, rows, cols].permute(0, 3, 1, 2)  # advanced dims come first
    flip = torch.rand(n) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)


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
    root = Path(data_dir).expanduser() if data_dir is not None else None
    if key in _IDX_CLASSES:
        return (*(ds.head(limit) for ds in _idx(key, root, download)), DATASETS[key])
    if key == "cifar10":
        train, test = _cifar10(root, download, train_augment)
        return train.head(limit), test.head(limit), DATASETS[key]
    return _imagenet(root, train_augment, limit)


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


@contextmanager
def _parse_errors(name: str, where: Path) -> Iterator[None]:
    try:
        yield
    except _PARSE_ERRORS as e:
        raise UserError(
            f"{name} in {where} could not be read ({_one_line(e)}); the files are damaged or not "
            f"{name}: replace them with a fresh copy"
        ) from e


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx(name: str, root: Path | None, download: bool) -> tuple[InMemoryDataset, InMemoryDataset]:
    # Accepted: the four files directly in a folder (Debian's layout), .gz or not, or
    # torchvision's <root>/<Class>/raw/. torchvision's own class wants the unzipped files
    # in raw/, so we find them ourselves and use only its IDX reader.
    cls = _IDX_CLASSES[name]
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
            raise UserError(f"could not download {name} into {base}: {_one_line(e)}") from e
        folder = folders[-1]
    if folder is None:
        hint = "install it with 'apt-get install dataset-fashion-mnist', " if name == "fashion-mnist" else ""
        raise UserError(
            f"{name} not found in {' or '.join(map(str, folders))} (looked for {', '.join(stems)}, "
            f"each optionally .gz); {hint}pass --data-dir, or add --download"
        )
    mean, std = _MEAN_STD[name]
    with _parse_errors(name, folder):
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


def _cifar10(root: Path | None, download: bool, augment: bool) -> tuple[InMemoryDataset, InMemoryDataset]:
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
            raise UserError(f"could not download cifar10 into {base}: {_one_line(e)}") from e
    if missing():
        raise UserError(
            f"cifar10 not found in {base / folder} (looked for {', '.join(files)}; missing "
            f"{', '.join(missing())}); pass --data-dir with the folder that holds {folder}/, or add --download"
        )
    mean, std = _MEAN_STD["cifar10"]
    out = []
    with _parse_errors("cifar10", base / folder):
        for train in (True, False):
            ds = _CIFAR10(base, train=train)
            data = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()  # torchvision holds HWC
            out.append(InMemoryDataset(data, torch.as_tensor(ds.targets), mean, std, augment=augment and train))
    return out[0], out[1]


def _imagenet(root: Path | None, augment: bool, limit: int | None) -> tuple[Dataset, Dataset, DatasetInfo]:
    layout = "train/<class>/*.JPEG and val/<class>/*.JPEG, one folder per class in each"
    if root is None:
        raise UserError(f"imagenet needs --data-dir: a folder with {layout}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(
                f"imagenet not found: no {root / split} (expected {layout}; the official val "
                f"archive is flat, sort it into class folders first)"
            )
    mean, std = _MEAN_STD["imagenet"]
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    plain = v2.Compose([v2.Resize(256), v2.CenterCrop(224), *tail])
    train_tf = v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(), *tail]) if augment else plain
    splits = []
    for split, tf in (("train", train_tf), ("val", plain)):
        try:
            splits.append(datasets.ImageFolder(root / split, transform=tf))
        except OSError as e:  # FileNotFoundError: no class folders, or no images in them
            raise UserError(f"imagenet in {root / split}: {_one_line(e)} (expected {layout})") from e
    train, test = splits
    if train.classes != test.classes:
        raise UserError(
            f"imagenet: {root / 'train'} has {len(train.classes)} class folders, {root / 'val'} "
            f"{len(test.classes)}, and they differ; both need the same class folders"
        )
    info = replace(DATASETS["imagenet"], num_classes=len(train.classes), class_names=tuple(train.classes))
    if limit is not None:
        # ImageFolder sorts by class, so the first items all share the first classes.
        train, test = (Subset(ds, range(min(limit, len(ds)))) for ds in (train, test))
    return train, test, info
