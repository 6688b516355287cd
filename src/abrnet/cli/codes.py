"""``abrnet codes RUN_DIR -o codes.npz``: the deployed network's binary codes of one step
layer, bit-packed (``ceil(d/8)`` bytes per item), with their labels; optionally a
Hamming index over them for ``abrnet search``.

The helpers here (loading a split, the labels file next to an index) are shared with
``abrnet search`` and ``abrnet retrieval``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import UserError

SPLITS = ("test", "train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, metavar="CODES.npz", help="where to write the codes")
    p.add_argument("--layer", help="a Step layer of the deployed net (default: the last hidden one)")
    p.add_argument("--split", choices=SPLITS, default="train", help="which split to encode (default: train)")
    p.add_argument("--limit", type=int, help="encode the first N items only")
    p.add_argument("--index", type=Path, metavar="INDEX.faiss",
                   help="also build and save a Hamming index over the codes (labels go to INDEX.faiss.labels.npz)")  # fmt: skip
    p.add_argument("--index-kind", choices=("flat", "hnsw"), default="flat",
                   help="flat: exact search; hnsw: approximate graph search (default: flat)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, help="items per forward pass (default: the run's batch size)")


# --- shared with abrnet search / abrnet retrieval -------------------------------------


def check_layer(model, layer: str | None) -> str:
    """``layer`` if it is a step layer of ``model`` (default: the last one), else UserError."""
    from ..codes import default_layer, step_layers

    names = step_layers(model)
    if layer is None:
        return default_layer(model)
    if layer not in names:
        choices = ", ".join(names) if names else "none (the run has no binary layers)"
        raise UserError(f"{layer!r} is not a step layer of the deployed network; choose from {choices}")
    return layer


def check_limit(limit: int | None, name: str = "--limit") -> None:
    if limit is not None and limit < 1:
        raise UserError(f"{name} must be a positive number of items, got {limit}")


def split_dataset(run, split: str, limit: int | None = None):
    """The run's ``split`` dataset, its first ``limit`` items when given."""
    from torch.utils.data import Subset

    train, test = run.datasets()
    ds = test if split == "test" else train
    if limit is not None and limit < len(ds):
        ds = Subset(ds, range(limit))
    return ds


def data_loader(run, ds, device, batch_size: int | None = None):
    import dataclasses

    from ..engine import loader

    cfg = dataclasses.replace(run.config, workers=-1, batch_size=batch_size or max(run.config.batch_size, 256))
    return loader(ds, cfg, device)


def read_codes(path: Path):
    """:func:`abrnet.codes.load_codes`, with plain messages for a missing or non-.npz file."""
    import zipfile

    from ..codes import load_codes

    if not path.is_file():
        raise UserError(f"no codes file at {path}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a codes file (not an .npz archive); write one with abrnet codes")
    return load_codes(path)


def labels_path(index: Path) -> Path:
    """Where the labels of an index's items are kept: ``INDEX.labels.npz`` next to it."""
    return index.with_name(index.name + ".labels.npz")


def save_index_labels(index: Path, labels, dim: int, **meta) -> Path:
    path = labels_path(index)
    arrays = {"dim": np.int64(dim), "meta": np.str_(json.dumps(meta))}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    with open(path, "wb") as f:  # np.savez would append .npz to a path without it
        np.savez(f, **arrays)
    return path


def load_index_labels(index: Path) -> tuple[np.ndarray | None, dict] | None:
    """``(labels, meta)`` from the file next to ``index``, or None when there is none."""
    path = labels_path(index)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            labels = f["labels"] if "labels" in f.files else None
            return labels, {"dim": int(f["dim"]), **json.loads(str(f["meta"]))}
    except (OSError, KeyError, ValueError) as err:
        raise UserError(f"{path}: not an index labels file written by abrnet codes --index ({err})") from None


def padding_note(dim: int) -> str:
    from ..codes import packed_bytes

    pad = 8 * packed_bytes(dim) - dim
    if pad == 0:
        return f"no padding: {dim} is a multiple of 8"
    return f"padded with {pad} zero bit{'s' if pad > 1 else ''} to {dim + pad}, which add no Hamming distance"


def encode(run, layer: str, ds, device, batch_size: int | None = None, with_float: bool = False):
    """``(bits, labels, floats, float32 bytes per item)`` of ``layer`` over ``ds``.

    Without ``with_float`` the float32 bytes per item are measured on the step input of
    the first batch only, so huge conv layers need not hold all their float features.
    """
    from ..codes import extract_codes

    model = run.deployed.to(device)
    data = data_loader(run, ds, device, batch_size)
    if len(ds) == 0:
        raise UserError("no items to encode")
    bits, labels, floats = extract_codes(model, layer, data, device, with_float=with_float)
    if floats is None:
        _, _, first = extract_codes(model, layer, [next(iter(data))], device, with_float=True)
        float_bytes = first.nbytes / len(first)
    else:
        float_bytes = floats.nbytes / len(floats)
    return bits, labels, floats, float_bytes


def main(args: argparse.Namespace) -> int:
    from ..codes import pack, save_codes
    from ..engine import resolve_device
    from ..run import load_run

    check_limit(args.limit)
    if args.out.is_dir():
        raise UserError(f"-o {args.out} is a directory; give a file name such as codes.npz")
    run = load_run(args.run_dir)
    layer = check_layer(run.deployed, args.layer)
    device = resolve_device(args.device)
    ds = split_dataset(run, args.split, args.limit)
    bits, labels, _, float_bytes = encode(run, layer, ds, device, args.batch_size)
    n, dim = bits.shape
    packed = pack(bits)
    del bits
    meta = {
        "run_dir": str(run.dir), "layer": layer, "split": args.split, "model": run.config.model,
        "dataset": run.config.dataset, "class_names": list(run.class_names), "padding_bits": 8 * packed.shape[1] - dim,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:  # keep the name as given (np.savez would append .npz)
        save_codes(f, packed, labels, dim, **meta)
    size = args.out.stat().st_size
    packed_bytes = packed.nbytes / n
    print(f"codes of layer {layer!r}: {run.config.model} on {run.config.dataset}, {args.split} split, {n:,} items")
    print(f"  d = {dim} bits -> {packed.shape[1]} bytes per item packed; {padding_note(dim)}")
    print(f"  bytes per item (measured from the arrays): packed {packed_bytes:g}, float32 {float_bytes:g} "
          f"({float_bytes / packed_bytes:.1f}x less)")  # fmt: skip
    print(f"  wrote {args.out}: {n:,} codes{' and labels' if labels is not None else ''}, "
          f"{size:,} bytes ({size / n:.1f} per item)")  # fmt: skip
    if args.index is not None:
        from ..search import HammingIndex

        index = HammingIndex(dim, kind=args.index_kind)
        index.add(packed)
        args.index.parent.mkdir(parents=True, exist_ok=True)
        index.save(args.index)
        side = save_index_labels(args.index, labels, dim, codes=str(args.out), kind=args.index_kind, **meta)
        print(f"  wrote {args.index}: {args.index_kind} Hamming index of {index.ntotal:,} codes "
              f"({args.index.stat().st_size:,} bytes); labels in {side}")  # fmt: skip
    return 0
