"""``abrnet compare``: every method on one recipe, one budget and the same seeds.

    abrnet compare --recipe fashion-mnist [--methods M1,M2,...] [--binarize all,last] \\
        --seeds 3 [--jobs 4] --out DIR [--epochs ...]

    abrnet compare --merge DIR1 DIR2 ... --out DIR   # one table from several parts

Writes ``DIR/compare.json`` and ``DIR/compare.md`` (see :mod:`abrnet.compare`) and
prints the table. ``--merge`` trains nothing: it joins comparisons of the same recipe
and config run in parts (``--seeds 2,`` on another day or machine) into one. Every recipe field is also a flag and applies to all methods alike.
Run it again with the same arguments to continue a killed comparison. Only the
arguments and the printing live here; :func:`abrnet.compare.run_compare` checks them.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..compare.plan import ROWS
from ..train.config import SCOPES, recipe_names
from .train import add_config_flags, overrides

PER_RUN = ("recipe", "method", "seed", "binarize")


def _comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _seeds(text: str) -> int | list[int]:
    # "3" is a count (seeds 0, 1, 2); "1,2" the seeds themselves, so a comparison can be
    # extended, or split across machines, one seed at a time.
    from ..errors import UserError

    try:
        return int(text) if "," not in text else [int(v) for v in _comma_list(text)]
    except ValueError:
        raise UserError(f"--seeds: expected a count or comma-separated seeds, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="digits", help=f"one of: {', '.join(recipe_names())} (default digits)")
    p.add_argument(
        "--methods", type=_comma_list, default=list(ROWS), metavar="M1,M2,...",
        help=f"comma-separated rows to compare: a method, or abr-paper (ABR under the paper schedule); default: all, {','.join(ROWS)}",
    )  # fmt: skip
    p.add_argument(
        "--binarize", type=_comma_list, default=["all"], metavar="SCOPE",
        help=f"which hidden representations are binary: one or several of {','.join(SCOPES)} (default all)",
    )  # fmt: skip
    p.add_argument(
        "--seeds", default="3", metavar="N|S1,S2,...",
        help="train seeds 0..N-1 of each method (default 3), or the seeds listed, e.g. 1,2",
    )  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="train up to N runs at once, each a single-thread process (default 1: one after another)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="comparison directory (default runs/compare-RECIPE-TIMESTAMP)")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    p.add_argument(
        "--merge", nargs="+", type=Path, metavar="PART",
        help="train nothing; join these comparisons (their directories or compare.json files) of the same "
             "recipe and config into --out",
    )  # fmt: skip
    add_config_flags(p, exclude=PER_RUN)


def _seed_text(seeds: int | list[int]) -> str:
    return str(seeds) if isinstance(seeds, int) else ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


def _command(args: argparse.Namespace, out: Path, flags: dict) -> str:
    words = ["abrnet", "compare", "--recipe", args.recipe, "--methods", ",".join(args.methods),
             "--binarize", ",".join(args.binarize), "--seeds", _seed_text(args.seeds)]  # fmt: skip
    if args.jobs != 1:
        words += ["--jobs", str(args.jobs)]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join([*words, "--out", str(out)])


def _merge(args: argparse.Namespace) -> int:
    import json

    from ..compare.merge import merge_summaries
    from ..compare.sweep import write_summary
    from ..errors import UserError

    if args.out is None:
        raise UserError("--merge needs --out, the directory of the merged comparison")
    parts, names = [], []
    for path in args.merge:
        file = path / "compare.json" if path.is_dir() else path
        try:
            parts.append(json.loads(file.read_text()))
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {file}: {getattr(err, 'strerror', None) or err}") from None
        names.append(str(file))
    command = shlex.join(["abrnet", "compare", "--merge", *names, "--out", str(args.out)])
    summary = merge_summaries(parts, names, command)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out {args.out} ({err.strerror or err})") from None
    print(write_summary(summary, args.out), end="")
    print(f"results: {args.out / 'compare.json'}, {args.out / 'compare.md'}")
    return 0


def main(args: argparse.Namespace) -> int:
    from ..compare import run_compare

    if args.merge:
        return _merge(args)

    flags = overrides(args, exclude=PER_RUN)
    args.seeds = _seeds(args.seeds)
    out = args.out or Path("runs") / f"compare-{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_compare(args.recipe, args.methods, args.binarize, args.seeds, flags, out, command=_command(args, out, flags),
                log=None if args.quiet else print, jobs=args.jobs)  # fmt: skip
    if args.quiet:
        print((out / "compare.md").read_text(), end="")
    print(f"results: {out / 'compare.json'}, {out / 'compare.md'}")
    return 0
