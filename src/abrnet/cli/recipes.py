"""``abrnet recipes [NAME]``: the shipped recipes, a line each, or one recipe's TOML."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="print this recipe's TOML (a shipped name or a .toml path)")


def main(args: argparse.Namespace) -> int:
    from ..train.config import recipe_names, recipe_text, resolve

    if args.name:
        print(recipe_text(args.name), end="")
        return 0
    for name in recipe_names():
        cfg = resolve(name, {})
        first = next((ln.lstrip("# ").strip() for ln in recipe_text(name).splitlines() if ln.startswith("#")), "")
        print(f"{name:<14} {cfg.model} on {cfg.dataset}, {cfg.total_epochs} epochs: {first}")
    print("abrnet recipes NAME prints one; abrnet train --recipe NAME|FILE.toml trains it")
    return 0
