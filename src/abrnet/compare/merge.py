"""One ``compare.json`` from several: the same comparison run in parts (other seeds,
methods or scopes, in other sessions or on other machines).

Parts merge only when they compared the same thing: the same recipe and the same
shared config, so every run had the same budget. A (scope, method, seed) run in two
parts must be the same run (one run directory reused by both), else the merge is
refused. Each part's command, commit, machine and date are kept under
``parts``; the statistics over seeds are recomputed from the runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from ..errors import UserError
from ..train.config import SCOPES
from .configs import ADAPTIVE_ONLY
from .plan import ROWS
from .results import aggregate

# The config keys a part may differ in without changing what was trained: where the
# data was read from, and how much was logged.
_NOT_TRAINING = ("data_dir", "log_every")


def _training_config(part: dict) -> dict:
    # The adaptive schedule's fields train nothing in a part without its abr row (the
    # rivals' and abr-paper's runs stay valid when its defaults move, as in a sweep).
    # The keys its rows fix (abr-paper's schedule) are named by the method, not shared:
    # a part with abr-paper alone holds schedule=paper where others hold adaptive.
    methods = part.get("methods", ())
    fixed = tuple(k for m in methods for k in ROWS.get(m, {}))
    skip = _NOT_TRAINING + fixed + (() if "abr" in methods else ADAPTIVE_ONLY)
    return {k: v for k, v in part["config"].items() if k not in skip}


def _same_run(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "reused"} == {k: v for k, v in b.items() if k != "reused"}


def merge_summaries(parts: Sequence[dict], names: Sequence[str] | None = None, command: str | None = None) -> dict:
    """The ``compare.json`` dict that holds every run of ``parts`` (``compare.json``
    dicts), with ``names`` (default: their positions) in error messages."""
    from .sweep import SCHEMA

    names = list(names) if names is not None else [f"part {i + 1}" for i in range(len(parts))]
    if len(parts) < 2:
        raise UserError("--merge needs at least two compare.json files")
    first, first_name = parts[0], names[0]
    for part, name in zip(parts, names, strict=True):
        if part.get("schema") != SCHEMA:
            raise UserError(f"{name} is not a {SCHEMA} compare.json (schema {part.get('schema')!r})")
        if part["recipe"] != first["recipe"]:
            raise UserError(f"{name} compared recipe {part['recipe']}, {first_name} {first['recipe']}")
        # A key one part lacks varied between its runs (as ``schedule`` does between the
        # abr and abr-paper rows), which the method names fix: only shared keys must agree.
        a, b = _training_config(first), _training_config(part)
        differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        if differ:
            shown = ", ".join(f"{k} ({a.get(k)!r} vs {b.get(k)!r})" for k in differ[:3])
            raise UserError(f"{name} trained another config than {first_name}: {shown}")

    entries: dict[tuple[str, str], dict] = {}
    origin: dict[tuple[str, str, int], str] = {}
    for part, name in zip(parts, names, strict=True):
        for entry in part["results"]:
            key = (entry["binarize"], entry["method"])
            merged = entries.setdefault(key, {"binarize": key[0], "method": key[1], "runs": []})
            for run in entry["runs"]:
                seen = origin.get((*key, run["seed"]))
                if seen is None:
                    origin[(*key, run["seed"])] = name
                    merged["runs"].append(run)
                elif _same_run(run, next(r for r in merged["runs"] if r["seed"] == run["seed"])):
                    continue  # one run, reused by two comparisons in one directory
                else:
                    raise UserError(
                        f"binarize {key[0]}, {key[1]}, seed {run['seed']} differs between {seen} and {name}"
                    )
    # Scopes and methods in the registry's order, runs by seed.
    scopes = sorted(dict.fromkeys(k[0] for k in entries), key=lambda s: SCOPES.index(s) if s in SCOPES else len(SCOPES))
    order = {m: i for i, m in enumerate(ROWS)}
    methods = sorted(dict.fromkeys(k[1] for k in entries), key=lambda m: order.get(m, len(order)))
    results = [entries[(s, m)] for s in scopes for m in methods if (s, m) in entries]
    for entry in results:
        entry["runs"].sort(key=lambda r: r["seed"])
        entry["aggregate"] = aggregate(entry["runs"])
    keep = ("command", "commit", "machine", "created", "methods", "binarize", "seeds", "jobs")
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "recipe": first["recipe"],
        "methods": methods,
        "binarize": scopes,
        "seeds": sorted({s for (_, _, s) in origin}),
        "config": {k: v for k, v in first["config"].items() if all(k in p["config"] for p in parts)},
        "parts": [{"file": name, **{k: part.get(k) for k in keep}} for part, name in zip(parts, names, strict=True)],
        "wall_time_s": sum(r["wall_time_s"] for e in results for r in e["runs"]),
        "results": results,
    }
