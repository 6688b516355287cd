"""``abrnet report RUN_DIR``: one self-contained HTML page with the run's training
curves, binarization dynamics, neuron semantics and activation memory."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _units(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated unit indices, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of items, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory written by abrnet train")
    p.add_argument("--layer", help="binary layer for the neuron semantics (default: the last hidden one)")
    p.add_argument("--out", type=Path, help="the HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="items for the semantics (default test)")
    p.add_argument("--limit", type=_positive, help="use only the first LIMIT items of the split for the semantics")
    p.add_argument("--neurons", type=_units, help="units to show with image grids, e.g. 3,17 (default: the most "
                   "informative)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from ..analysis.report import write_report

    started = time.perf_counter()
    out = write_report(args.run_dir, args.out, layer=args.layer, split=args.split, limit=args.limit,
                       neurons=args.neurons)  # fmt: skip
    print(f"report: {out} ({time.perf_counter() - started:.1f} s)")
    return 0
