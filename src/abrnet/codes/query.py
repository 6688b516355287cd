"""Query a saved Hamming index (``abrnet codes --index``) with packed codes from a codes
file, or with raw items of a run's dataset passed through its deployed network.

:func:`query_index` is what ``abrnet search`` does. Hits come with their row id in the
index, Hamming distance and label; labels of the index's items come from ``db_codes``
(the codes the index was built from) or from the ``INDEX.labels.npz`` next to the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import UserError
from .encode import as_run, check_layer, encode, load_index_labels, read_codes, split_dataset
from .packing import pack, packed_bytes


class Queries(NamedTuple):
    """Packed query codes, the rows they came from, their labels (or None) and meta."""

    packed: np.ndarray
    rows: list[int]
    labels: np.ndarray | None
    meta: dict


def check_rows(rows, n: int, what: str = "row") -> list[int]:
    """``rows`` as a list of ints in ``[0, n)``; None means all ``n``."""
    if rows is None:
        return list(range(n))
    rows = [int(r) for r in rows]
    if not rows:
        raise UserError(f"no {what}s given")
    bad = [r for r in rows if not 0 <= r < n]
    if bad:
        raise UserError(f"{what} {bad[0]} is out of range; there are {n:,} items (0 to {n - 1})")
    return rows


def db_labels(index, index_path: Path, db_codes: Path | None = None) -> tuple[np.ndarray | None, dict]:
    """``(labels, meta)`` of the index's items: from the codes file ``db_codes`` when given,
    else from the labels file next to the index; ``(None, {})`` when there is neither."""
    if db_codes is not None:
        codes = read_codes(db_codes)
        if len(codes.packed) != index.ntotal:
            raise UserError(f"{db_codes} holds {len(codes.packed):,} codes but the index {index.ntotal:,}")
        return codes.labels, codes.meta
    side = load_index_labels(index_path)
    if side is None:
        return None, {}
    labels, meta = side
    if labels is not None and len(labels) != index.ntotal:
        raise UserError(f"the labels next to {index_path} are for {len(labels):,} items but the index holds "
                        f"{index.ntotal:,}: rebuild it with abrnet codes --index")  # fmt: skip
    return labels, meta


def queries_from_codes(index, index_path: Path, codes_path: Path, rows=None) -> Queries:
    """The codes of ``rows`` (default: all) of the codes file ``codes_path``."""
    codes = read_codes(codes_path)
    if not index.accepts(codes.packed.shape[1]):
        raise UserError(f"{codes_path} holds {codes.dim}-bit codes but {index_path} indexes {index.dim}-bit ones")
    rows = check_rows(rows, len(codes.packed), "query row")
    labels = None if codes.labels is None else codes.labels[rows]
    return Queries(codes.packed[rows], rows, labels, codes.meta)


def queries_from_run(index, index_path: Path, run, items, split: str = "test", layer=None, device="cpu") -> Queries:
    """Items ``items`` of ``run``'s (a Run or a run directory) ``split`` through its deployed network, encoded at the
    step ``layer`` (default: the layer the index was built from, else the last one)."""
    from torch.utils.data import Subset

    run = as_run(run)
    side = load_index_labels(index_path)
    layer = check_layer(run.deployed, layer or (side[1].get("layer") if side else None))
    ds = split_dataset(run, split)
    rows = check_rows(items, len(ds), "item")
    bits, labels, _, _ = encode(run, layer, Subset(ds, rows), device)
    if not index.accepts(packed_bytes(bits.shape[1])):
        raise UserError(f"layer {layer!r} gives {bits.shape[1]}-bit codes but {index_path} indexes {index.dim}-bit "
                        "ones: pass the layer the index was built from")  # fmt: skip
    return Queries(pack(bits), rows, labels, {"layer": layer, "class_names": list(run.class_names)})


def query_index(
    index_path: Path,
    k: int = 10,
    *,
    codes: Path | None = None,
    rows=None,
    run=None,
    items=None,
    split: str = "test",
    layer: str | None = None,
    db_codes: Path | None = None,
    device="cpu",
) -> dict:
    """The ``k`` nearest items of the index at ``index_path`` for each query.

    Queries are either ``rows`` (default: all) of the codes file ``codes``, or ``items``
    (row numbers of ``split``) of ``run`` (an :class:`abrnet.Run` or a run directory,
    loaded once the index and its labels are read) through its deployed
    network at ``layer``. Returns ``{"index", "kind", "ntotal", "bits", "k",
    "has_labels", "class_names", "layer", "results": [{"query", "label", "hits":
    [{"id", "distance", "label"}]}]}``; a label is None where there is none.
    """
    from .search import HammingIndex

    index_path = Path(index_path)
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if (codes is None) == (run is None):
        raise UserError("query with either codes (a codes file) or run (and items), not both or neither")
    if not index_path.is_file():
        raise UserError(f"no index file at {index_path} (build one with abrnet codes RUN_DIR -o CODES --index INDEX)")
    index = HammingIndex.load(index_path)
    labels, meta = db_labels(index, index_path, db_codes)
    if codes is not None:
        q = queries_from_codes(index, index_path, codes, rows)
    else:
        if items is None:
            raise UserError("querying with a run needs items (which items of the split to query with)")
        q = queries_from_run(index, index_path, run, items, split, layer, device)
    k = min(k, index.ntotal)
    if k == 0:
        raise UserError(f"{index_path} is empty")
    dist, ids = index.search(q.packed, k)
    results = []
    for i, row in enumerate(q.rows):
        hits = [
            {"id": int(j), "distance": int(d), "label": None if labels is None else int(labels[j])}
            for d, j in zip(dist[i], ids[i])
            if j >= 0
        ]
        results.append({"query": int(row), "label": None if q.labels is None else int(q.labels[i]), "hits": hits})
    return {
        "index": str(index_path), "kind": index.kind, "ntotal": index.ntotal, "bits": index.dim, "k": k,
        "has_labels": labels is not None, "class_names": meta.get("class_names") or q.meta.get("class_names") or [],
        "layer": q.meta.get("layer"), "results": results,
    }  # fmt: skip
