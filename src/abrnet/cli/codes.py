"""``abrnet codes RUN_DIR -o codes.npz``: the deployed network's binary codes of one step
layer, bit-packed (``ceil(d/8)`` bytes per item), with their labels; optionally a
Hamming index over them for ``abrnet search``. The work is
:func:`abrnet.codes.encode.write_codes`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..codes.search import AUTO_HNSW_BITS, KINDS

    p.add_argument("run_dir", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, metavar="CODES.npz", help="where to write the codes")
    p.add_argument("--layer", help="a Step layer of the deployed net (default: the last hidden one)")
    p.add_argument("--split", choices=("test", "train"), default="train", help="which split to encode (default: train)")
    p.add_argument("--limit", type=int, help="encode the first N items only")
    p.add_argument("--index", type=Path, metavar="INDEX.faiss",
                   help="also build and save a Hamming index over the codes (labels go to INDEX.faiss.labels.npz)")  # fmt: skip
    p.add_argument("--index-kind", choices=KINDS, default="auto",
                   help="flat: exact search; hnsw: approximate graph search; auto: hnsw from "
                        f"{AUTO_HNSW_BITS / 1e6:g}M bits of codes (items x width), else flat (default: auto)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, help="items per forward pass (default: the run's batch size)")


def main(args: argparse.Namespace) -> int:
    from ..codes.encode import check_limit, padding_note, write_codes
    from ..train.run import load_run

    check_limit(args.limit, "--limit")
    if args.out.is_dir():
        raise UserError(f"-o {args.out} is a directory; give a file name such as codes.npz")
    run = load_run(args.run_dir)
    done = write_codes(run, args.out, layer=args.layer, split=args.split, limit=args.limit, index=args.index,
                       index_kind=args.index_kind, device=args.device, batch_size=args.batch_size)  # fmt: skip
    n, dim, packed, floats = done["items"], done["dim"], done["packed_bytes"], done["float_bytes"]
    print(f"codes of layer {done['layer']!r}: {run.config.model} on {run.config.dataset}, {args.split} split, "
          f"{n:,} items")  # fmt: skip
    print(f"  d = {dim} bits -> {done['code_bytes']} bytes per item packed; {padding_note(dim)}")
    print(f"  bytes per item (measured from the arrays): packed {packed:g}, float32 {floats:g} "
          f"({floats / packed:.1f}x less)")  # fmt: skip
    print(f"  wrote {args.out}: {n:,} codes{' and labels' if done['labels'] else ''}, "
          f"{done['file_bytes']:,} bytes ({done['file_bytes'] / n:.1f} per item)")  # fmt: skip
    if done["index"] is not None:
        ix = done["index"]
        print(f"  wrote {args.index}: {ix['kind']} Hamming index of {ix['ntotal']:,} codes "
              f"({ix['bytes']:,} bytes); labels in {ix['labels_path']}")  # fmt: skip
    return 0
