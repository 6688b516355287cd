"""``abrnet compare``: every method on one recipe, one budget and the same seeds.

    abrnet compare --recipe fashion-mnist --methods relu,ste,dorefa,pact,sigmoid,abr \\
        --binarize all --seeds 3 --out DIR [--epochs ...]

Writes ``DIR/compare.json`` and ``DIR/compare.md`` (see :mod:`abrnet.compare`) and
prints the table. Every recipe field is also a flag and applies to all methods alike.
Run it again with the same arguments to continue a killed comparison.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..config import CHOICES, METHODS, recipe_names
from .train import add_config_flags, overrides

PER_RUN = ("recipe", "method", "seed", "binarize")
# The float baseline first, abr last; the rivals in between.
DEFAULT_METHODS = ("relu", *(m for m in METHODS if m not in ("relu", "abr")), "abr")


def _comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="digits", help=f"one of: {', '.join(recipe_names())} (default digits)")
    p.add_argument(
        "--methods", type=_comma_list, default=list(DEFAULT_METHODS), metavar="M1,M2,...",
        help=f"comma-separated activations to compare (default: all, {','.join(DEFAULT_METHODS)})",
    )  # fmt: skip
    p.add_argument(
        "--binarize", type=_comma_list, default=["all"], metavar="SCOPE",
        help="which hidden representations are binary: all, last, or all,last for both (default all)",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="train seeds 0..N-1 of each method (default 3)")
    p.add_argument("--out", type=Path, help="comparison directory (default runs/compare-RECIPE-TIMESTAMP)")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    add_config_flags(p, exclude=PER_RUN)


def _command(args: argparse.Namespace, out: Path, flags: dict) -> str:
    words = ["abrnet", "compare", "--recipe", args.recipe, "--methods", ",".join(args.methods),
             "--binarize", ",".join(args.binarize), "--seeds", str(args.seeds)]  # fmt: skip
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join([*words, "--out", str(out)])


def main(args: argparse.Namespace) -> int:
    from ..compare import run_compare
    from ..errors import UserError

    if args.recipe not in recipe_names():
        raise UserError(f"unknown recipe {args.recipe!r}: choose from {', '.join(recipe_names())}")
    for name, values, options in (("method", args.methods, METHODS), ("binarize", args.binarize, CHOICES["binarize"])):
        bad = [v for v in values if v not in options]
        if bad or not values:
            raise UserError(f"--{name}{'s' if name == 'method' else ''}: unknown {', '.join(bad) or '(empty)'}; "
                            f"choose from {', '.join(options)}")  # fmt: skip
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    flags = overrides(args, exclude=PER_RUN)
    out = args.out or Path("runs") / f"compare-{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = _command(args, out, flags)
    if not args.quiet:
        print(f"abrnet compare: {len(args.binarize) * len(args.methods) * args.seeds} runs into {out}")
    run_compare(args.recipe, args.methods, args.binarize, args.seeds, flags, out, command=command,
                log=print if not args.quiet else None)  # fmt: skip
    if args.quiet:
        print((out / "compare.md").read_text(), end="")
    print(f"results: {out / 'compare.json'}, {out / 'compare.md'}")
    return 0
