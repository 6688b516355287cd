"""``abrnet export RUN_DIR --onnx model.onnx``: the deployed binary network as ONNX,
checked against PyTorch with onnxruntime (:func:`abrnet.codes.export.export_run`)."""

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
    from ..codes.export import export_run
    from ..errors import UserError
    from ..train.run import load_run

    run = load_run(args.run_dir, binarize_layers=args.binarize)
    if not args.onnx.parent.exists():
        raise UserError(f"no directory {args.onnx.parent} for --onnx")
    result = export_run(run, args.onnx, check_items=args.check_items, opset=args.opset)
    print(
        f"wrote {args.onnx} ({result['bytes']:,} bytes); onnxruntime vs PyTorch on {result['items']} test items: "
        f"max |logit diff| {result['max_abs_diff']:.2e}, same prediction {result['same_argmax']:.4f}, "
        f"bits identical in {result['binary_outputs_checked']} step outputs: {result['bits_equal']}"
    )
    return 0 if result["ok"] else 1
