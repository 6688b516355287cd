"""Whole splits held in memory as uint8 tensors, and the one-line errors of reading them.

Decoding one PIL image per item is the bottleneck of a small CPU; a split of MNIST or
CIFAR-10 fits in memory as uint8 (a quarter of float32) and is normalised per batch.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import UserError

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


@contextmanager
def parse_errors(name: str, where: Path) -> Iterator[None]:
    try:
        yield
    except _PARSE_ERRORS as e:
        raise UserError(
            f"{name} in {where} could not be read ({one_line(e)}); the files are damaged or not "
            f"{name}: replace them with a fresh copy"
        ) from e


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
