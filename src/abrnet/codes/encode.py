"""A run's codes: pick a step layer and a split, encode it through the deployed network,
write the codes (and a Hamming index with its labels file) to disk.

What ``abrnet codes`` does (:func:`write_codes`), and the pieces that ``abrnet search``
and ``abrnet retrieval`` share with it: :func:`check_layer`, :func:`split_dataset`,
:func:`encode`, :func:`read_codes`, the ``INDEX.labels.npz`` file next to an index
(:func:`save_index_labels`, :func:`load_index_labels`) and :func:`padding_note`.
``run`` is an :class:`abrnet.Run` (``abrnet.load_run(RUN_DIR)``); :func:`write_codes`
also takes a run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .packing import Codes, default_layer, extract_codes, load_codes, pack, packed_bytes, save_codes, step_layers

SPLITS = ("test", "train")


def as_run(run):
    """``run`` itself, or the run loaded from a run directory (:func:`abrnet.load_run`)."""
    if isinstance(run, (str, Path)):
        from ..train.run import load_run

        return load_run(run)
    return run


def check_layer(model, layer: str | None) -> str:
    """``layer`` if it is a step layer of ``model`` (default: the last one), else UserError."""
    names = step_layers(model)
    if layer is None:
        return default_layer(model)
    if layer not in names:
        choices = ", ".join(names) if names else "none (the run has no binary layers)"
        raise UserError(f"{layer!r} is not a step layer of the deployed network; choose from {choices}")
    return layer


def check_limit(limit: int | None, name: str = "limit") -> None:
    """UserError unless ``limit`` is None or a positive number of items."""
    if limit is not None and limit < 1:
        raise UserError(f"{name} must be a positive number of items, got {limit}")


def split_dataset(run, split: str, limit: int | None = None):
    """The run's ``split`` dataset (``"train"`` or ``"test"``), its first ``limit`` items when given."""
    from torch.utils.data import Subset

    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    train, test = run.datasets()
    ds = test if split == "test" else train
    if limit is not None and limit < len(ds):
        ds = Subset(ds, range(limit))
    return ds


def data_loader(run, ds, device, batch_size: int | None = None):
    """A loader over ``ds``: the run's batch size, at least 256 items per batch unless given."""
    return run.loader(ds, device, batch_size or max(run.config.batch_size, 256))


def resolve(device):
    """A ``torch.device`` from a device or a name (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...)."""
    import torch

    from ..train.distributed import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(device)


def encode(run, layer: str, ds, device="cpu", batch_size: int | None = None, with_float: bool = False):
    """``(bits, labels, floats, float32 bytes per item)`` of ``layer`` over ``ds``.

    Without ``with_float`` the float32 bytes per item are measured on the step input of
    the first batch only, so huge conv layers need not hold all their float features.
    """
    device = resolve(device)
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


def read_codes(path: Path) -> Codes:
    """:func:`abrnet.codes.packing.load_codes`, with plain messages for a missing or non-.npz file."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no codes file at {path}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a codes file (not an .npz archive); write one with abrnet codes")
    return load_codes(path)


def labels_path(index: Path) -> Path:
    """Where the labels of an index's items are kept: ``INDEX.labels.npz`` next to it."""
    index = Path(index)
    return index.with_name(index.name + ".labels.npz")


def save_index_labels(index: Path, labels, dim: int, **meta) -> Path:
    """Write ``labels`` (or None), ``dim`` and JSON-able ``meta`` next to ``index``."""
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
    """How the last byte of a ``dim``-bit packed code is padded, in words."""
    pad = 8 * packed_bytes(dim) - dim
    if pad == 0:
        return f"no padding: {dim} is a multiple of 8"
    return f"padded with {pad} zero bit{'s' if pad > 1 else ''} to {dim + pad}, which add no Hamming distance"


def write_codes(
    run,
    out: Path,
    *,
    layer: str | None = None,
    split: str = "train",
    limit: int | None = None,
    index: Path | None = None,
    index_kind: str = "auto",
    device="cpu",
    batch_size: int | None = None,
) -> dict:
    """Encode ``split`` through ``run``'s deployed network at the step ``layer`` (default:
    the last one), bit-pack it and write the codes with their labels to ``out`` (an .npz
    by :func:`abrnet.codes.packing.save_codes`). With ``index``, also build a
    :class:`abrnet.codes.search.HammingIndex` of ``index_kind`` over them, save it there
    and write the labels next to it (:func:`save_index_labels`).

    Returns what was done: ``layer``, ``split``, ``items``, ``dim``, ``code_bytes``
    (bytes per packed code), ``packed_bytes`` and ``float_bytes`` (per item, measured
    on the arrays), ``labels`` (whether there are any), ``file_bytes``, ``meta`` (as
    saved) and ``index`` (``{"path", "kind", "ntotal", "bytes", "labels_path"}`` or None).
    """
    out = Path(out)
    check_limit(limit)
    run = as_run(run)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give a file name such as codes.npz")
    layer = check_layer(run.deployed, layer)
    ds = split_dataset(run, split, limit)
    bits, labels, _, float_bytes = encode(run, layer, ds, device, batch_size)
    n, dim = bits.shape
    packed = pack(bits)
    del bits
    meta = {
        "run_dir": str(run.dir), "layer": layer, "split": split, "model": run.config.model,
        "dataset": run.config.dataset, "class_names": list(run.class_names), "padding_bits": 8 * packed.shape[1] - dim,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # keep the name as given (np.savez would append .npz)
        save_codes(f, packed, labels, dim, **meta)
    done = {
        "layer": layer, "split": split, "items": n, "dim": dim, "code_bytes": packed.shape[1],
        "packed_bytes": packed.nbytes / n, "float_bytes": float_bytes, "labels": labels is not None,
        "path": str(out), "file_bytes": out.stat().st_size, "meta": meta, "index": None,
    }  # fmt: skip
    if index is not None:
        from .search import HammingIndex

        index = Path(index)
        hamming = HammingIndex(dim, kind=index_kind)
        hamming.add(packed)
        index.parent.mkdir(parents=True, exist_ok=True)
        hamming.save(index)
        side = save_index_labels(index, labels, dim, codes=str(out), kind=hamming.kind, **meta)
        done["index"] = {"path": str(index), "kind": hamming.kind, "ntotal": hamming.ntotal,
                         "bytes": index.stat().st_size, "labels_path": str(side)}  # fmt: skip
    return done
