"""``abrnet search INDEX``: query a saved Hamming index, with packed codes from
``abrnet codes`` or with raw inputs of a run's dataset passed through its deployed net.

    abrnet search train.faiss --codes test_codes.npz --query-index 0,1,2 -k 10
    abrnet search train.faiss --run RUN_DIR --split test --items 0,1,2 -k 10

Hits are printed with their row id in the index, Hamming distance and label. Labels
come from ``--db-codes`` (the codes the index was built from) or from the
``INDEX.labels.npz`` that ``abrnet codes --index`` writes next to the index.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", type=Path, help="a Hamming index written by abrnet codes --index")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", type=Path, metavar="CODES.npz", help="query with these packed codes")
    src.add_argument(
        "--run", type=Path, metavar="RUN_DIR", help="query with raw inputs through this run's deployed net"
    )
    p.add_argument("--query-index", default="all", metavar="I,J|all", help="with --codes: which rows (default: all)")
    p.add_argument("--items", metavar="I,J", help="with --run: which items of --split (required)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="with --run (default: test)")
    p.add_argument("--layer", help="with --run: the step layer (default: the index's layer, else the last one)")
    p.add_argument("-k", type=int, default=10, help="hits per query (default: 10)")
    p.add_argument(
        "--db-codes", type=Path, metavar="CODES.npz", help="labels of the index's items, from its codes file"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def parse_rows(text: str, n: int, what: str) -> list[int]:
    """``"all"`` or comma-separated row numbers, each in ``[0, n)``."""
    if text.strip() == "all":
        return list(range(n))
    try:
        rows = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"{what} takes comma-separated item numbers or 'all', got {text!r}") from None
    if not rows:
        raise UserError(f"{what} is empty")
    bad = [r for r in rows if not 0 <= r < n]
    if bad:
        raise UserError(f"{what}: item {bad[0]} is out of range; there are {n:,} items (0 to {n - 1})")
    return rows


def _db_labels(args, index, side) -> tuple[np.ndarray | None, dict]:
    from .codes import read_codes

    if args.db_codes is not None:
        codes = read_codes(args.db_codes)
        if len(codes.packed) != index.ntotal:
            raise UserError(f"{args.db_codes} holds {len(codes.packed):,} codes but the index {index.ntotal:,}")
        return codes.labels, codes.meta
    if side is None:
        return None, {}
    labels, meta = side
    if labels is not None and len(labels) != index.ntotal:
        raise UserError(f"the labels next to {args.index} are for {len(labels):,} items but the index holds "
                        f"{index.ntotal:,}: rebuild it with abrnet codes --index")  # fmt: skip
    return labels, meta


def _queries_from_codes(args, index):
    from .codes import read_codes

    if args.items is not None:
        raise UserError("--items goes with --run; with --codes use --query-index")
    codes = read_codes(args.codes)
    if not index.accepts(codes.packed.shape[1]):
        raise UserError(f"{args.codes} holds {codes.dim}-bit codes but {args.index} indexes {index.dim}-bit ones")
    rows = parse_rows(args.query_index, len(codes.packed), "--query-index")
    labels = None if codes.labels is None else codes.labels[rows]
    return codes.packed[rows], rows, labels, codes.meta


def _queries_from_run(args, index, side_meta: dict):
    from ..codes import pack
    from ..engine import resolve_device
    from ..run import load_run
    from .codes import check_layer, encode, split_dataset

    if args.items is None:
        raise UserError("--run needs --items I,J (which items of --split to query with)")
    if args.query_index != "all":
        raise UserError("--query-index goes with --codes; with --run use --items")
    run = load_run(args.run)
    layer = check_layer(run.deployed, args.layer or side_meta.get("layer"))
    ds = split_dataset(run, args.split)
    rows = parse_rows(args.items, len(ds), "--items")
    from torch.utils.data import Subset

    bits, labels, _, _ = encode(run, layer, Subset(ds, rows), resolve_device(args.device))
    if not index.accepts(-(-bits.shape[1] // 8)):
        raise UserError(f"layer {layer!r} gives {bits.shape[1]}-bit codes but {args.index} indexes {index.dim}-bit "
                        "ones: pass the --layer the index was built from")  # fmt: skip
    return pack(bits), rows, labels, {"layer": layer, "class_names": list(run.class_names)}


def _name(label, class_names) -> str:
    if label is None:
        return "-"
    label = int(label)
    if class_names and 0 <= label < len(class_names) and class_names[label] != str(label):
        return f"{label} ({class_names[label]})"
    return str(label)


def main(args: argparse.Namespace) -> int:
    from ..search import HammingIndex

    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    if not args.index.is_file():
        raise UserError(f"no index file at {args.index} (build one with abrnet codes RUN_DIR -o CODES --index INDEX)")
    from .codes import load_index_labels

    index = HammingIndex.load(args.index)
    side = load_index_labels(args.index)
    db_labels, db_meta = _db_labels(args, index, side)
    if args.codes is not None:
        queries, rows, q_labels, q_meta = _queries_from_codes(args, index)
    else:
        queries, rows, q_labels, q_meta = _queries_from_run(args, index, (side or (None, {}))[1])
    k = min(args.k, index.ntotal)
    if k == 0:
        raise UserError(f"{args.index} is empty")
    dist, ids = index.search(queries, k)
    class_names = db_meta.get("class_names") or q_meta.get("class_names") or []
    results = []
    for i, row in enumerate(rows):
        hits = [
            {"id": int(j), "distance": int(d), "label": None if db_labels is None else int(db_labels[j])}
            for d, j in zip(dist[i], ids[i])
            if j >= 0
        ]
        q_label = None if q_labels is None else int(q_labels[i])
        results.append({"query": int(row), "label": q_label, "hits": hits})
    if args.json:
        print(json.dumps({"index": str(args.index), "bits": index.dim, "k": k, "results": results}, indent=1))
        return 0
    source = (
        f"{args.codes}" if args.codes is not None else f"{args.run} ({args.split} split, layer {q_meta['layer']!r})"
    )
    print(f"{args.index}: {index.kind} Hamming index, {index.ntotal:,} codes of {index.dim} bits; "
          f"{len(rows)} quer{'y' if len(rows) == 1 else 'ies'} from {source}, top {k}")  # fmt: skip
    if db_labels is None:
        print("  (no labels for the index's items: pass --db-codes, or build the index with abrnet codes --index)")
    for res in results:
        same = ""
        if res["label"] is not None and db_labels is not None:
            n_same = sum(h["label"] == res["label"] for h in res["hits"])
            same = f", {n_same}/{len(res['hits'])} hits share its label"
        print(f"query {res['query']}: label {_name(res['label'], class_names)}{same}")
        print(f"  {'rank':>4}  {'id':>8}  {'hamming':>7}  label")
        for r, h in enumerate(res["hits"], 1):
            print(f"  {r:>4}  {h['id']:>8}  {h['distance']:>7}  {_name(h['label'], class_names)}")
    return 0
