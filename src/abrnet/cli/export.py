"""``abrnet export RUN_DIR --onnx model.onnx``: the deployed binary network as ONNX,
checked against PyTorch with onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--onnx", type=Path, required=True, help="output file")
    p.add_argument("--binarize", choices=("all", "last"), default="all")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--check-items", type=int, default=256, help="test items used for the onnxruntime check")


def main(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..export import export_onnx
    from ..run import load_run

    run = load_run(args.run_dir, binarize_layers=args.binarize)
    _, test = run.datasets(limit=args.check_items)
    x = __import__("torch").stack([test[i][0] for i in range(min(args.check_items, len(test)))])
    if not args.onnx.parent.exists():
        raise UserError(f"no directory {args.onnx.parent} for --onnx")
    result = export_onnx(run.deployed, x, args.onnx, opset=args.opset)
    print(
        f"wrote {args.onnx} ({result['bytes']:,} bytes); onnxruntime vs PyTorch on {len(x)} test items: "
        f"max |logit diff| {result['max_abs_diff']:.2e}, same prediction {result['same_argmax']:.4f}, "
        f"bits identical in {result['binary_outputs_checked']} step outputs: {result['bits_equal']}"
    )
    return 0 if result["ok"] else 1
