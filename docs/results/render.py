"""Regenerate the tables (and figures) of the docs from the raw results committed here.

Every ``docs/results/NAME.json`` is either a ``compare.json`` written by ``abrnet
compare`` (its command, commit and machine are inside), rendered into docs/results.md,
or a ``--json`` of ``benchmarks/bench_search.py`` (rendered into docs/deploy.md with its
figure ``docs/NAME.png``) or of ``benchmarks/bench_train_step.py``, ``bench_deploy.py`` or ``bench_surrogate.py``
(docs/benchmarks.md). The page holds, for each, a block between
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; this script replaces the
block's contents with the tables the writing tool itself prints for that file. A folder
``docs/results/NAME-parts/`` of compare.json files (one comparison run in parts:
other seeds, other days) becomes one merged table in the block ``NAME-parts``
(``abrnet compare --merge``); a folder ``docs/results/NAME-stages/`` of compare.json files (one per setting of the adaptive
schedule's stages) becomes one study table in the block ``NAME-stages``; a folder with
an ``index.json`` (a study of single runs) one table in the block named after it. A
``NAME.json`` of schema ``abrnet-pool-1`` pools seeds from several compare.json files
into one table (:func:`pool_table`).

    python3 docs/results/render.py
"""

import json
import re
import sys
from functools import partial
from pathlib import Path

from abrnet.compare import format_markdown, merge_summaries

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
sys.path.insert(0, str(DOCS.parent / "benchmarks"))
import bench_deploy  # noqa: E402
import bench_search  # noqa: E402
import bench_surrogate  # noqa: E402
import bench_train_step  # noqa: E402


def compare_tables(name: str, data: dict) -> str:
    tables = format_markdown(data)
    return tables.split("\n", 1)[1].lstrip("\n").replace("\n## ", "\n#### ")  # under the page's own heading


def search_tables(name: str, data: dict) -> str:
    bench_search.plot(data, DOCS / f"{name}.png")
    return (f"Command: `{data['command']}`; {data['machine']}; {data['date']}; {data['threads']} thread(s), "
            f"{data['clock']} clock; top-{data['k']} of {data['queries']} queries; codes in {data['clusters']} "
            f"clusters, bits flipped with probability {data['flip']}; HNSW M={data['hnsw_m']}, "
            f"efSearch={data['ef_search']}.\n\n![search cost against database size]({name}.png)\n\n"
            + bench_search.table(data["rows"]) + "\n")  # fmt: skip


def bench_tables(bench):
    """The renderer of a benchmark that writes its JSON with ``bench_train_step.save_json``."""

    def render(name: str, data: dict) -> str:
        return (f"Command: `{data['command']}`; {data['card']} ({data['device']}), torch {data['torch']}, "
                f"{data['threads']} threads; {data['date']}.\n\n" + bench.table(data["rows"]) + "\n")  # fmt: skip

    return render


def stage_table(name: str, runs: list[dict]) -> str:
    """One row per compare.json of a study directory: the adaptive schedule's stages and
    the deployed accuracy of each seed (every layer binary)."""
    lines = ["| binarize_at / freeze_at | surrogate | seeds | deployed % per seed | mean | command |",
             "| --- | --- | --- | --- | ---: | --- |"]  # fmt: skip
    for data in sorted(runs, key=lambda d: d["config"]["binarize_at"]):
        c = data["config"]
        for res in data["results"]:
            acc = [r["deployed"] * 100 for r in res["runs"]]
            lines.append(f"| {c['binarize_at']:g} / {c['freeze_at']:g} | {c['surrogate']} | {len(acc)} | "
                         f"{', '.join(f'{a:.2f}' for a in acc)} | {sum(acc) / len(acc):.2f} | `{data['command']}` |")  # fmt: skip
    return "\n".join(lines) + "\n"


def leads_table(folder: Path) -> str:
    """A study folder with an ``index.json`` (each run's raw file, variant and command):
    one row per run, the deployed accuracy read from its raw file, a ``compare.json``
    or an ``abrnet train`` report (its ``"read"`` accuracy when the entry names one). Runs
    listed but not yet there are skipped."""
    index = json.loads((folder / "index.json").read_text())
    lines = ["| variant | model | seed | deployed % | command |", "| --- | --- | ---: | ---: | --- |"]
    for run in index["runs"]:
        path = folder / run["file"]
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if "results" in data:  # compare.json
            model = data["config"]["model"]
            several = len(data["results"]) > 1  # then each row names its method
            rows = [(r["seed"], r["deployed"], f" ({e['method']})" if several else "")
                    for e in data["results"] for r in e["runs"]]  # fmt: skip
        else:  # report.json
            acc = data["accuracy"]  # a ReLU run has no deployed binary net: its float accuracy
            # (a study whose network the library cannot deploy names the form to read)
            read = acc[run["read"]] if "read" in run else acc.get("binary", acc["train_form"])
            model, rows = data["model"], [(data["config"]["seed"], read, "")]
        for seed, acc, method in rows:
            lines.append(f"| {run['variant']}{method} | {model} | {seed} | {acc * 100:.2f} | `{run['command']}` |")
    return "\n".join(lines) + "\n"


POOL_SCHEMA = "abrnet-pool-1"


def pool_table(name: str, spec: dict) -> str:
    """Seeds pooled across compare.json files, one row per model, scope and method: the
    spec names, per method, the files its seeds come from (a seed in two is an error),
    and each method is set against ABR seed by seed, on the seeds both have."""
    lines = ["| model, scope | method | seeds | deployed %, mean ± std | ABR − method, paired: mean (ABR ahead on) "
             "| per seed | from |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for row in spec["rows"]:
        seeds = {}
        for method, files in row["methods"].items():
            got, where = {}, {}
            for file in files:
                data = json.loads((HERE / file).read_text())
                for entry in data["results"]:
                    if entry["binarize"] != row["scope"] or entry["method"] != method:
                        continue
                    for run in entry["runs"]:
                        if run["seed"] in got:
                            raise SystemExit(
                                f"{name}: {method} seed {run['seed']} is in {where[run['seed']]} and {file}"
                            )
                        got[run["seed"]], where[run["seed"]] = run["deployed"] * 100, file
            seeds[method] = got
        abr = seeds["abr"]
        for method, got in seeds.items():
            values = [got[s] for s in sorted(got)]
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
            common = sorted(abr.keys() & got.keys())
            diffs = [abr[s] - got[s] for s in common]
            paired = "" if method == "abr" else (
                f"{sum(diffs) / len(diffs):+.2f} ({sum(d > 0 for d in diffs)} of {len(diffs)})")  # fmt: skip
            per = ", ".join(f"{s}: {got[s]:.2f}" for s in sorted(got))
            files = ", ".join(dict.fromkeys(row["methods"][method]))
            lines.append(f"| {row['label']} | {method} | {len(values)} | {mean:.2f} ± {std:.2f} | {paired} | {per} "
                         f"| {files} |")  # fmt: skip
    return "\n".join(lines) + "\n"


PAGES = {  # schema -> (page, renderer); anything else is a compare.json for results.md
    POOL_SCHEMA: (DOCS / "results.md", pool_table),
    bench_search.SCHEMA: (DOCS / "deploy.md", search_tables),
    bench_train_step.SCHEMA: (DOCS / "benchmarks.md", bench_tables(bench_train_step)),
    bench_deploy.SCHEMA: (DOCS / "benchmarks.md", bench_tables(bench_deploy)),
    bench_surrogate.SCHEMA: (DOCS / "benchmarks.md", bench_tables(bench_surrogate)),
}


def main() -> int:
    pages: dict[Path, str] = {}

    def put(page_path: Path, name: str, render) -> None:
        """Replace block ``name`` of the page with ``render()``, or say it is missing."""
        page = pages.setdefault(page_path, page_path.read_text())
        block = re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)", re.S)
        if not block.search(page):
            print(f"{name}: no <!-- results:{name} --> block in {page_path.name}; skipped", file=sys.stderr)
            return
        text = render()
        pages[page_path] = block.sub(lambda m: m.group(1) + text + m.group(2), page)
        print(f"{name}: tables written to {page_path.name}")

    for path in sorted(HERE.glob("*.json")):
        data = json.loads(path.read_text())
        page_path, render = PAGES.get(data.get("schema"), (DOCS / "results.md", compare_tables))
        put(page_path, path.stem, partial(render, path.stem, data))
    for folder in sorted(p for p in HERE.iterdir() if p.is_dir()):
        if folder.name.endswith("-stages"):
            runs = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
            put(DOCS / "results.md", folder.name, partial(stage_table, folder.name, runs))
        elif folder.name.endswith("-parts"):  # one comparison run in parts: merged into one table
            parts = sorted(folder.glob("*.json"))
            data = merge_summaries([json.loads(f.read_text()) for f in parts], [f.name for f in parts])
            put(DOCS / "results.md", folder.name, partial(compare_tables, folder.name, data))
        elif (folder / "index.json").exists():
            put(DOCS / "results.md", folder.name, partial(leads_table, folder))
    for page_path, page in pages.items():
        page_path.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
