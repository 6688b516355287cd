"""``abrnet`` command line. Each subcommand lives in ``abrnet.cli.<name>`` and defines
``add_arguments(parser)`` and ``main(args) -> int``; it is imported only when used, so
``abrnet --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import UserError
from ..rivals import METHODS

COMMANDS = {
    "train": "train a recipe: ABR binarized by its schedule (the paper's, or adaptive), deploy, evaluate, save",
    "recipes": "list the shipped recipes, or print one",
    "eval": "evaluate a run directory (ABR, deployed binary, ReLU baseline)",
    "export": "export the deployed binary network to ONNX and check it with onnxruntime",
    "compare": f"compare {', '.join(METHODS)} on one recipe, budget and seeds",
    "report": "write an HTML report of a run: curves, binarization dynamics, neuron semantics, memory",
    "codes": "extract a step layer's bit-packed binary codes (and a Hamming index) from a run",
    "search": "query a saved Hamming index with codes or with raw inputs through the deployed net",
    "retrieval": "retrieval mAP and precision@k: binary codes vs float features vs the ReLU baseline",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"abrnet: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="abrnet", description="Deep networks with exactly binary hidden representations.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Parse the command name first, then let its module add its own arguments.
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        module = importlib.import_module(f"abrnet.cli.{name.replace('-', '_')}")
        sub = _Parser(prog=f"abrnet {name}", description=COMMANDS[name])
        module.add_arguments(sub)
        args = sub.parse_args(argv[1:])
        try:
            return int(module.main(args) or 0)
        except UserError as err:
            print(f"abrnet {name}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"abrnet {name}: interrupted", file=sys.stderr)
            return 130
    args = parser.parse_args(argv or ["--help"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
