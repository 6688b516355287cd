"""Bytes per item of packed binary codes against float32 features, as measured.

    python benchmarks/bench_codes.py                 # d = 8, 13, 64, 100, 256, 1000, 4096
    python benchmarks/bench_codes.py --quick --json codes.json

Codes come from a deployed model (Linear -> ABR, binarized), extracted with
``abrnet.codes.packing.extract_codes``; bytes are measured on the arrays (``nbytes``) and on the
``.npz`` file that ``save_codes`` writes (codes and int64 labels). Each row also checks
that unpacking gives back the step outputs exactly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile

import numpy as np
import torch
from torch import nn

import abrnet
from abrnet.codes.packing import extract_codes, load_codes, pack, save_codes, unpack
from abrnet.compare.provenance import cpu_model


def machine() -> str:
    return f"{cpu_model()}, torch {torch.__version__}, numpy {np.__version__}"


def measure(d: int, n: int, tmp: str) -> dict:
    torch.manual_seed(d)
    model = abrnet.binarize(nn.Sequential(nn.Linear(32, d), abrnet.ABR(d)))
    x, y = torch.randn(n, 32), torch.randint(0, 10, (n,))
    bits, labels, floats = extract_codes(model, None, [(x, y)])
    packed = pack(bits)
    path = os.path.join(tmp, f"codes{d}.npz")
    save_codes(path, packed, labels, d, layer="1")
    back = load_codes(path)
    exact = bool(np.array_equal(unpack(back.packed, back.dim), bits) and np.array_equal(back.labels, labels))
    return {
        "dim": d,
        "pad_bits": 8 * packed.shape[1] - d,
        "packed_bytes": packed.nbytes / n,
        "float32_bytes": floats.astype(np.float32).nbytes / n,
        "ratio": floats.astype(np.float32).nbytes / packed.nbytes,
        "npz_bytes": os.path.getsize(path) / n,
        "labels_bytes": labels.nbytes / n,
        "lossless": exact,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", default="8,13,64,100,256,1000,4096")
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="1000 items")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    n = 1000 if args.quick else args.items
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(int(d), n, tmp) for d in args.dims.split(",")]
    print(f"# Packed codes vs float32, {n} items; {machine()}; {datetime.date.today()}\n")
    print(
        "| d (bits) | padding bits | packed B/item | float32 B/item | float32 / packed | .npz B/item (+ int64 label) | lossless |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dim']} | {r['pad_bits']} | {r['packed_bytes']:.0f} | {r['float32_bytes']:.0f} | "
            f"{r['ratio']:.1f}x | {r['npz_bytes']:.1f} | {'yes' if r['lossless'] else 'NO'} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "date": str(datetime.date.today()), "items": n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
