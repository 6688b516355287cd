"""Packed binary codes: a deployed network's 0/1 representation at 1 bit per unit.

A code of ``d`` units is stored as ``ceil(d / 8)`` uint8 bytes, in numpy's default
``bitorder="big"``: unit ``j`` is bit ``7 - j % 8`` (the most significant first) of byte
``j // 8``. When ``d`` is not a multiple of 8 the last byte is padded with zero bits, so
padding never changes a Hamming distance. :class:`abrnet.codes.deploy.BinaryInputLinear` and
faiss's binary indexes read the same layout.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..layers import is_step

BITORDER = "big"


def packed_bytes(dim: int) -> int:
    """Bytes per packed code of ``dim`` bits: ``ceil(dim / 8)``."""
    return -(-dim // 8)


def as_numpy(a) -> np.ndarray:
    """``a`` as a numpy array: a torch tensor is detached and copied to the CPU."""
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def pack(bits) -> np.ndarray:
    """Pack ``(N, d)`` 0/1 values (any dtype, numpy or torch) into ``(N, ceil(d/8))`` uint8.

    Raises ValueError on anything but exact 0 and 1: ``packbits`` would read 0.5 as 1
    and the round trip would no longer be lossless.
    """
    b = as_numpy(bits)
    if b.ndim != 2:
        raise ValueError(f"expected (N, d) bits, got shape {b.shape}")
    if not np.isin(b, (0, 1)).all():
        raise ValueError("bits must be exactly 0 or 1 (a Step's output)")
    return np.packbits(b.astype(bool), axis=1, bitorder=BITORDER)


def unpack(packed, dim: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(N, ceil(dim/8))`` uint8 -> ``(N, dim)`` uint8 0/1."""
    p = as_numpy(packed)
    if p.dtype != np.uint8 or p.ndim != 2 or p.shape[1] != packed_bytes(dim):
        raise ValueError(f"expected (N, {packed_bytes(dim)}) uint8 codes for dim={dim}, got {p.dtype} {p.shape}")
    return np.unpackbits(p, axis=1, count=dim, bitorder=BITORDER)


class Codes(NamedTuple):
    """What :func:`load_codes` returns; unpacks like a tuple."""

    packed: np.ndarray  # (N, ceil(dim/8)) uint8
    labels: np.ndarray | None  # (N,)
    dim: int
    meta: dict


def save_codes(path, packed, labels, dim: int, **meta) -> None:
    """Write packed codes, their labels (or None) and JSON-able ``meta`` to an .npz file.

    No pickles: ``meta`` goes in as a JSON string, so :func:`load_codes` can keep
    ``allow_pickle=False`` and a downloaded file cannot run code.
    """
    p = as_numpy(packed)
    if p.dtype != np.uint8 or p.ndim != 2 or p.shape[1] != packed_bytes(dim):
        raise ValueError(f"expected (N, {packed_bytes(dim)}) uint8 codes for dim={dim}, got {p.dtype} {p.shape}")
    arrays = {"packed": p, "dim": np.int64(dim), "bitorder": np.str_(BITORDER), "meta": np.str_(json.dumps(meta))}
    if labels is not None:
        lab = as_numpy(labels)
        if len(lab) != len(p):
            raise ValueError(f"{len(lab)} labels for {len(p)} codes")
        arrays["labels"] = lab
    np.savez(path, **arrays)


def load_codes(path) -> Codes:
    """Read a file written by :func:`save_codes`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["bitorder"]) != BITORDER:
                raise UserError(f"{path}: codes use bitorder {f['bitorder']}, expected {BITORDER}")
            labels = f["labels"] if "labels" in f.files else None
            return Codes(f["packed"], labels, int(f["dim"]), json.loads(str(f["meta"])))
    except (OSError, KeyError, ValueError) as err:
        raise UserError(f"{path}: not a codes file written by abrnet.codes.packing.save_codes ({err})") from None


def step_layers(model: nn.Module) -> list[str]:
    """Names of the step layers (:func:`abrnet.layers.is_step`: ``Step``, ``ThresholdStep``)
    in ``named_modules()`` order."""
    return [n for n, m in model.named_modules() if is_step(m)]


def default_layer(model: nn.Module) -> str:
    """The last step layer: the last hidden representation of a deployed model."""
    names = step_layers(model)
    if not names:
        raise UserError("the model has no Step layers: deploy it with abrnet.binarize first")
    return names[-1]


class _Recorder:
    def __init__(self, keep_float: bool) -> None:
        self.keep_float = keep_float
        self.bits: list[np.ndarray] = []
        self.feats: list[np.ndarray] = []

    def __call__(self, module: nn.Module, inputs: tuple, y: torch.Tensor) -> None:
        n = len(y)
        self.bits.append(y.detach().reshape(n, -1).to(torch.uint8).cpu().numpy())
        if self.keep_float:
            self.feats.append(inputs[0].detach().reshape(n, -1).float().cpu().numpy())


@torch.no_grad()
def extract_codes(
    model: nn.Module, layer: str | None, data_loader, device="cpu", with_float: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Run ``data_loader`` through a deployed ``model`` and record one step layer.

    Args:
        layer: the name of a ``Step`` or ``ThresholdStep`` module; None for
            :func:`default_layer`.
        data_loader: an iterable of ``(x, y)`` batches, or of bare ``x`` tensors (then
            no labels are returned).
        with_float: also return the step's input as float32.

    Returns ``(bits, labels, floats)``: ``bits`` is ``(N, d)`` uint8 0/1, the step's
    output flattened per item; ``floats`` is the step's input flattened the same way,
    the pre-activation before binarization (before the folded BatchNorm for a
    ``ThresholdStep``), or None. For a plain ``Step``, ``bits == (floats > 0)``.
    """
    names = step_layers(model)
    layer = default_layer(model) if layer is None else layer
    if layer not in names:
        choices = ", ".join(names) if names else "none: deploy the model with abrnet.binarize first"
        raise UserError(f"{layer!r} is not a step layer of the model; choose from {choices}")
    rec = _Recorder(with_float)
    handle = model.get_submodule(layer).register_forward_hook(rec)
    was_training = model.training
    labels: list[np.ndarray] = []
    try:
        model.eval()
        for batch in data_loader:
            if isinstance(batch, (tuple, list)):
                x, y = batch[0], batch[1]
                labels.append(as_numpy(y).reshape(len(y)))
            else:
                x = batch
            model(x.to(device))
    finally:
        handle.remove()
        model.train(was_training)
    if not rec.bits:
        raise UserError("the data loader yielded no batches")
    bits = np.concatenate(rec.bits)
    feats = np.concatenate(rec.feats) if with_float else None
    return bits, (np.concatenate(labels) if labels else None), feats
