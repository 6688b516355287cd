"""Neuron semantics of a binary layer: what each bit of a deployed network says about the label.

A deployed network's hidden units are exactly 0 or 1, so a unit's behaviour on a class is
one number, its firing rate ``P(bit = 1 | class)``. From the counts follow the mutual
information between the bit and the label, the units that never or always fire, an
ordering of units that puts alike ones together, and, per informative unit, the classes
on which it fires and those on which it is inhibited. Everything here is numpy on
``(N, d)`` uint8 bits; :func:`layer_codes` records them from a deployed model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from ..codes.packing import default_layer, extract_codes, step_layers

__all__ = [
    "NeuronSemantics",
    "always_on_units",
    "cluster_order",
    "dead_units",
    "default_layer",
    "describe_neurons",
    "distinct_units",
    "firing_rates",
    "layer_codes",
    "layer_semantics",
    "mutual_information",
    "step_layers",
    "top_units",
    "unit_name",
]


def layer_codes(deployed: nn.Module, layer: str | None, loader, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Bits ``(N, d)`` uint8 of step layer ``layer`` (None: the last one), flattened per
    item (``d = C*H*W`` for a conv layer), and labels ``(N,)`` int64, over ``loader``'s
    ``(x, y)`` batches."""
    bits, labels, _ = extract_codes(deployed, layer, loader, device=device, with_float=False)
    if labels is None:
        raise ValueError("layer_codes needs (x, y) batches: firing rates are per class")
    return bits, labels.astype(np.int64)


def _class_counts(bits: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    # (num_classes, d) ones per class, and (num_classes,) items per class; a loop over
    # classes keeps memory at one (N, d) mask, not an (N, C) x (N, d) product in float.
    ones = np.zeros((num_classes, bits.shape[1]), dtype=np.int64)
    items = np.bincount(labels, minlength=num_classes)[:num_classes]
    for c in range(num_classes):
        ones[c] = bits[labels == c].sum(axis=0, dtype=np.int64)
    return ones, items


def firing_rates(bits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, d)``: the share of a class's items on which each unit is 1. A class
    with no items gets NaN."""
    ones, items = _class_counts(np.asarray(bits), np.asarray(labels), num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ones / items[:, None]


def _entropy2(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits, with ``0 log 0 = 0``."""
    p = np.clip(p, 0.0, 1.0)
    out = np.zeros_like(p, dtype=np.float64)
    for q in (p, 1 - p):
        nz = q > 0
        out[nz] -= q[nz] * np.log2(q[nz])
    return out


def mutual_information(bits: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """``(d,)`` the plug-in mutual information ``I(bit; label)`` in bits, from the counts:
    ``H(bit) - sum_y P(y) H(bit | y)``. At most ``min(1, log2(num_classes))``."""
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    ones, items = _class_counts(np.asarray(bits), labels, num_classes)
    n = items.sum()
    prior = items / n
    seen = items > 0
    p_class = ones[seen] / items[seen, None]  # P(bit = 1 | y)
    conditional = (prior[seen, None] * _entropy2(p_class)).sum(axis=0)
    mi = _entropy2(ones.sum(axis=0) / n) - conditional
    return np.maximum(mi, 0.0)  # rounding can leave -1e-17


def dead_units(bits: np.ndarray) -> np.ndarray:
    """``(d,)`` bool: units that are 0 on every item."""
    return ~np.asarray(bits).any(axis=0)


def always_on_units(bits: np.ndarray) -> np.ndarray:
    """``(d,)`` bool: units that are 1 on every item."""
    return np.asarray(bits).all(axis=0)


def top_units(mi: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` units with the highest mutual information, highest first
    (ties by index)."""
    order = np.lexsort((np.arange(len(mi)), -np.asarray(mi)))
    return order[:k]


def cluster_order(rates: np.ndarray, axis: int = 1) -> np.ndarray:
    """A permutation of the rows (``axis=0``) or columns (``axis=1``) of ``rates`` that
    puts alike profiles next to each other: the leaves of an average-linkage
    hierarchical clustering, with the optimal leaf ordering. NaNs count as 0.5."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    x = np.nan_to_num(np.asarray(rates, dtype=np.float64), nan=0.5)
    x = x if axis == 0 else x.T
    if len(x) < 3:
        return np.arange(len(x))
    return leaves_list(linkage(x, method="average", metric="euclidean", optimal_ordering=True))


@dataclass
class NeuronSemantics:
    """One unit: the classes on which it fires (rate >= ``fire``) and those on which it
    is inhibited (rate <= ``silent``), by name, and its mutual information with the label."""

    unit: int
    mi: float
    fires_on: list[str]
    silent_on: list[str]
    rates: list[float]  # per class

    def __str__(self) -> str:
        fires = ", ".join(self.fires_on) or "-"
        silent = ", ".join(self.silent_on) or "-"
        return f"unit {self.unit} (MI {self.mi:.3f} bits): fires on {fires}; silent on {silent}"


def describe_neurons(
    rates: np.ndarray,
    class_names: Sequence[str],
    mi: np.ndarray | None = None,
    top: int = 8,
    fire: float = 0.8,
    silent: float = 0.2,
    units: Sequence[int] | None = None,
) -> list[NeuronSemantics]:
    """For the ``top`` most informative units (by ``mi``; without it, by the spread of
    their firing rates across classes), or for the given ``units``, the classes they fire
    on and are inhibited on."""
    rates = np.asarray(rates, dtype=np.float64)
    score = np.asarray(mi) if mi is not None else np.nan_to_num(rates).std(axis=0)
    names = [str(n) for n in class_names] if len(class_names) == len(rates) else [str(c) for c in range(len(rates))]
    out = []
    for j in top_units(score, min(top, rates.shape[1])) if units is None else units:
        col = rates[:, j]
        out.append(
            NeuronSemantics(
                unit=int(j),
                mi=float(mi[j]) if mi is not None else float("nan"),
                fires_on=[names[c] for c in np.argsort(-np.nan_to_num(col, nan=-1), kind="stable") if col[c] >= fire],
                silent_on=[names[c] for c in np.argsort(np.nan_to_num(col, nan=2), kind="stable") if col[c] <= silent],
                rates=[float(r) for r in col],
            )
        )
    return out


def distinct_units(rates: np.ndarray, mi: np.ndarray, k: int, min_distance: float = 0.25) -> list[int]:
    """Up to ``k`` units, the most informative first, each with a firing-rate profile
    unlike those already picked: the mean absolute difference of their rates over the
    classes is at least ``min_distance``. The top units of a layer often split the
    classes the same way; these show different splits."""
    x = np.nan_to_num(np.asarray(rates, dtype=np.float64), nan=0.5)
    picked: list[int] = []
    for j in top_units(mi, len(mi)):
        if len(picked) == k:
            break
        if all(np.abs(x[:, j] - x[:, i]).mean() >= min_distance for i in picked):
            picked.append(int(j))
    return picked


def unit_name(unit: int, shape: Sequence[int]) -> str:
    """A flattened unit index as the reader sees it: ``"17"`` for a vector layer,
    ``"c5 (3,4)"`` for channel 5 at row 3, column 4 of a ``(C, H, W)`` layer."""
    if len(shape) <= 1:
        return str(unit)
    c, rest = divmod(unit, int(np.prod(shape[1:])))
    pos = np.unravel_index(rest, tuple(shape[1:]))
    return f"c{c} ({','.join(str(int(p)) for p in pos)})"


def layer_semantics(
    deployed: nn.Module,
    layer: str,
    dataset,
    class_names: Sequence[str],
    *,
    heatmap_units: int = 64,
    described: int = 8,
    distinct: int = 3,
    batch_size: int = 500,
) -> dict:
    """Everything the report says about step layer ``layer`` over ``dataset`` (``(x, y)``
    items): ``bits``, ``labels``, ``rates`` (classes, d), ``mi`` (d,), ``dead`` and
    ``always_on`` counts, ``label_entropy`` in bits, ``heatmap_units`` (the most
    informative units, in cluster order), ``class_order`` (classes in cluster order) and
    ``described`` (:class:`NeuronSemantics` of the most informative units) and
    ``distinct`` (of ``distinct`` informative units with different profiles, see
    :func:`distinct_units`)."""
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    bits, labels = layer_codes(deployed, layer, loader)
    k = len(class_names)
    rates = firing_rates(bits, labels, k)
    mi = mutual_information(bits, labels, k)
    top = top_units(mi, min(heatmap_units, bits.shape[1]))
    prior = np.bincount(labels, minlength=k) / len(labels)
    return {
        "layer": layer,
        "bits": bits,
        "labels": labels,
        "rates": rates,
        "mi": mi,
        "dead": int(dead_units(bits).sum()),
        "always_on": int(always_on_units(bits).sum()),
        "label_entropy": float(-(prior[prior > 0] * np.log2(prior[prior > 0])).sum()),
        "heatmap_units": top[cluster_order(rates[:, top], axis=1)],
        "class_order": cluster_order(rates[:, top], axis=0),
        "described": describe_neurons(rates, class_names, mi, top=described),
        "distinct": describe_neurons(rates, class_names, mi, units=distinct_units(rates, mi, distinct)),
    }
