"""Small files in the real formats of the datasets abrnet reads: gzipped IDX (MNIST,
Fashion-MNIST), CIFAR-10 python pickle batches, and an ImageFolder tree."""

import gzip
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from abrnet.train.data import DATASETS

IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _idx_bytes(array: np.ndarray) -> bytes:
    # Magic 0x0000 08 ndim (08 = unsigned byte), then each dimension as a big-endian int32.
    magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def _write_idx(folder: Path, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 1, 2, 3, 9, 5], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 8, 4], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        raw = _idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def _py2_pickle(obj) -> bytes:
    # The official batches were pickled by Python 2, whose str is 8-bit: rewrite each short
    # text string as SHORT_BINSTRING, which Python 3 decodes with torchvision's encoding="latin1".
    raw = pickle.dumps(obj, protocol=2)
    out, last = bytearray(), 0
    for op, arg, pos in pickletools.genops(raw):
        if op.name == "BINUNICODE" and arg.isascii() and len(arg) < 256:
            out += raw[last:pos] + b"U" + bytes([len(arg)]) + arg.encode("latin1")
            last = pos + 5 + len(arg)
    return bytes(out + raw[last:])


CIFAR_NAMES = list(DATASETS["cifar10"].class_names)


def _write_cifar(root: Path, per_batch: int = 2) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)  # rows: 1024 red, 1024 green, 1024 blue
        labels = [(i * per_batch + j) % 10 for j in range(per_batch)]
        batch = {
            "batch_label": f"batch {i}",
            "labels": labels,
            "data": pixels,
            "filenames": [f"{name}_{j}.png" for j in range(per_batch)],
        }
        (folder / name).write_bytes(_py2_pickle(batch))
        written[name] = (pixels, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_pickle(meta))
    return written


COLOURS = {"cat": (255, 0, 0), "dog": (0, 128, 0), "fox": (10, 20, 250)}


def _write_folders(root: Path, classes=COLOURS, per_class=(("train", 2), ("val", 1))) -> None:
    for split, n in per_class:
        for name, colour in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (24 + 8 * i, 20), colour).save(root / split / name / f"{i}.png")
