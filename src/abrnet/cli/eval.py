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
    import dataclasses

    from ..convert import binarize, binary_layers
    from ..engine import evaluate, loader, resolve_device
    from ..run import load_run
    from ..stats import binarization_stats

    run = load_run(args.run_dir)
    device = resolve_device(args.device)
    train, test = run.datasets(limit=args.limit)
    data = loader(test if args.split == "test" else train, dataclasses.replace(run.config, workers=-1), device)
    topk = (1, 5) if run.config.dataset == "imagenet" else (1,)
    results: dict[str, dict] = {}
    results["train_form"] = evaluate(run.model.to(device), data, device, topk)
    if args.binarize != "none" and binary_layers(run.model):
        stepped = binarize(run.model, args.binarize).to(device)
        results["binary"] = evaluate(stepped, data, device, topk)
        check = binarization_stats(stepped, data)
        results["binary"]["non_binary_outputs"] = sum(
            round(s.between * s.numel) for n, s in check.items() if n in binary_layers(run.model)
            and type(stepped.get_submodule(n)).__name__ != "ABR"
        )  # fmt: skip
    if run.baseline is not None:
        results["relu"] = evaluate(run.baseline.to(device), data, device, topk)
    if args.json:
        print(json.dumps({k: {str(kk): vv for kk, vv in v.items()} for k, v in results.items()}, indent=2))
        return 0
    print(f"{run.dir}: {run.config.model} on {run.config.dataset} ({args.split}, {len(data.dataset)} items), "
          f"method {run.config.method}, binarize {args.binarize}")  # fmt: skip
    names = {"train_form": f"training form ({run.config.method})", "binary": "deployed step network (exact 0/1)",
             "relu": "ReLU baseline"}  # fmt: skip
    for key, res in results.items():
        extra = f"   top-5 {res[5]:.4f}" if 5 in res else ""
        print(f"  {names[key]:<36} {res[1]:.4f}{extra}")
    return 0
