"""Regenerate the tables of docs/results.md from the raw results committed here.

Every ``docs/results/NAME.json`` is a ``compare.json`` written by ``abrnet compare``
(its command, commit and machine are inside). docs/results.md holds, for each, a block
between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; this script replaces
the block's contents with the tables ``abrnet compare`` itself prints for that file.

    python3 docs/results/render.py
"""

import json
import re
import sys
from pathlib import Path

from abrnet.compare import format_markdown

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "results.md"


def main() -> int:
    page = PAGE.read_text()
    for path in sorted(HERE.glob("*.json")):
        name = path.stem
        block = re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)", re.S)
        if not block.search(page):
            print(f"{path.name}: no <!-- results:{name} --> block in {PAGE.name}; skipped", file=sys.stderr)
            continue
        tables = format_markdown(json.loads(path.read_text()))
        tables = tables.split("\n", 1)[1].lstrip("\n").replace("\n## ", "\n#### ")  # under the page's own heading
        page = block.sub(lambda m, t=tables: m.group(1) + t + m.group(2), page)
        print(f"{path.name}: tables written")
    PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
