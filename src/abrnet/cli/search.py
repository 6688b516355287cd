"""``abrnet search INDEX``: query a saved Hamming index, with packed codes from
``abrnet codes`` or with raw inputs of a run's dataset passed through its deployed net.

    abrnet search train.faiss --codes test_codes.npz --query-index 0,1,2 -k 10
    abrnet search train.faiss --run RUN_DIR --split test --items 0,1,2 -k 10

Hits are printed with their row id in the index, Hamming distance and label. Labels
come from ``--db-codes`` (the codes the index was built from) or from the
``INDEX.labels.npz`` that ``abrnet codes --index`` writes next to the index. The work
is :func:`abrnet.codes.query.query_index`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def parse_rows(text: str, what: str) -> list[int] | None:
    """``"all"`` (None) or comma-separated row numbers."""
    if text.strip() == "all":
        return None
    try:
        rows = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"{what} takes comma-separated item numbers or 'all', got {text!r}") from None
    if not rows:
        raise UserError(f"{what} is empty")
    return rows


def _name(label, class_names) -> str:
    if label is None:
        return "-"
    label = int(label)
    if class_names and 0 <= label < len(class_names) and class_names[label] != str(label):
        return f"{label} ({class_names[label]})"
    return str(label)


def main(args: argparse.Namespace) -> int:
    from ..codes.query import query_index

    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    if args.codes is not None:
        if args.items is not None:
            raise UserError("--items goes with --run; with --codes use --query-index")
        source = {"codes": args.codes, "rows": parse_rows(args.query_index, "--query-index")}
    else:
        if args.items is None:
            raise UserError("--run needs --items I,J (which items of --split to query with)")
        if args.query_index != "all":
            raise UserError("--query-index goes with --codes; with --run use --items")
        source = {"run": args.run, "items": parse_rows(args.items, "--items"), "split": args.split, "layer": args.layer}
    res = query_index(args.index, args.k, db_codes=args.db_codes, device=args.device, **source)
    if args.json:
        print(json.dumps({key: res[key] for key in ("index", "bits", "k", "results")}, indent=1))
        return 0
    origin = f"{args.codes}" if args.codes is not None else f"{args.run} ({args.split} split, layer {res['layer']!r})"
    n = len(res["results"])
    print(f"{args.index}: {res['kind']} Hamming index, {res['ntotal']:,} codes of {res['bits']} bits; "
          f"{n} quer{'y' if n == 1 else 'ies'} from {origin}, top {res['k']}")  # fmt: skip
    if not res["has_labels"]:
        print("  (no labels for the index's items: pass --db-codes, or build the index with abrnet codes --index)")
    for r in res["results"]:
        same = ""
        if r["label"] is not None and res["has_labels"]:
            n_same = sum(h["label"] == r["label"] for h in r["hits"])
            same = f", {n_same}/{len(r['hits'])} hits share its label"
        print(f"query {r['query']}: label {_name(r['label'], res['class_names'])}{same}")
        print(f"  {'rank':>4}  {'id':>8}  {'hamming':>7}  label")
        for rank, h in enumerate(r["hits"], 1):
            print(f"  {rank:>4}  {h['id']:>8}  {h['distance']:>7}  {_name(h['label'], res['class_names'])}")
    return 0
