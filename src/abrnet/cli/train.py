"""``abrnet train``: run a recipe. Every config field is also a flag."""

from __future__ import annotations

import argparse
import dataclasses
import time
import types
import typing
from pathlib import Path

from ..train.config import CHOICES, TrainConfig, recipe_names, resolve


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _flag_type(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return {int: int, float: float, str: str}.get(tp, _int_list)


def _help(f: dataclasses.Field) -> str:
    # One line from the field's own definition: its help, its choices, its default.
    text = f.metadata.get("help", "")
    if f.name in CHOICES:
        text += f"; one of {', '.join(CHOICES[f.name])}"
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    shown = "unset" if default is None else ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default {shown}, unless the recipe sets it)"


def add_config_flags(p: argparse.ArgumentParser, exclude=()) -> None:
    hints = typing.get_type_hints(TrainConfig)
    group = p.add_argument_group("recipe fields (each overrides the recipe)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=_help(f))
        else:
            group.add_argument(flag, type=_flag_type(hints[f.name]), default=None, metavar=f.name.upper(),
                               help=_help(f))  # fmt: skip


def overrides(args: argparse.Namespace, exclude=()) -> dict:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in exclude and getattr(args, f.name, None) is not None
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="digits",
                   help=f"a shipped recipe ({', '.join(recipe_names())}) or a .toml file of fields (default digits)")  # fmt: skip
    p.add_argument("--out", type=Path, help="run directory (default runs/RECIPE-TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(p, exclude=("recipe",))


def main(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..train.pipeline import format_report, train_run
    from ..train.progress import progress_factory

    flags = overrides(args, exclude=("recipe",))
    if args.resume:
        if args.out is None:
            raise UserError("--resume needs --out RUN_DIR")
        changed = sorted(set(flags) - {"device", "workers"})
        if changed:
            raise UserError(f"--resume continues a run with its saved config; drop {', '.join(changed)}")
        cfg = TrainConfig(workers=flags.get("workers", -1))
    else:
        cfg = resolve(args.recipe, flags)
    out = args.out or Path("runs") / f"{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    import os

    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank and not args.quiet:
        print(f"abrnet train: recipe {args.recipe}, run directory {out}")
    report = train_run(
        cfg, out, resume=args.resume, progress=progress_factory(main_rank and not args.quiet),
        quiet=args.quiet, device=flags.get("device"),
    )  # fmt: skip
    if report is not None:
        print(format_report(report))
        print(f"report: {out / 'report.json'}")
    return 0
