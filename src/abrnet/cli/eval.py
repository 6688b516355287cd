"""``abrnet eval RUN_DIR``: accuracy of the training form, the deployed step network
and the ReLU baseline, on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--binarize", choices=("all", "last", "none"), default="all",
                   help="which binary layers the evaluated step network steps (none: training form only)")  # fmt: skip
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, help="evaluate on the first N items only")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def main(args: argparse.Namespace) -> int:
    from ..train.distributed import resolve_device
    from ..train.evaluate import evaluate_run
    from ..train.run import load_run

    run = load_run(args.run_dir)
    results = evaluate_run(run, split=args.split, layers=args.binarize, device=resolve_device(args.device),
                           limit=args.limit)  # fmt: skip
    items = results.pop("items")
    if args.json:
        print(json.dumps({k: {str(kk): vv for kk, vv in v.items()} for k, v in results.items()}, indent=2))
        return 0
    print(f"{run.dir}: {run.config.model} on {run.config.dataset} ({args.split}, {items} items), "
          f"method {run.config.method}, binarize {args.binarize}")  # fmt: skip
    names = {"train_form": f"training form ({run.config.method})", "binary": "deployed step network (exact 0/1)",
             "relu": "ReLU baseline"}  # fmt: skip
    for key, res in results.items():
        extra = f"   top-5 {res[5]:.4f}" if 5 in res else ""
        print(f"  {names[key]:<36} {res[1]:.4f}{extra}")
    return 0
