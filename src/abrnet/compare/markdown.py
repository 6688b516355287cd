"""``compare.md``: the results of ``compare.json`` as Markdown, one table per scope."""

from __future__ import annotations


def _pct(stats: dict | None) -> str:
    if stats is None:
        return "n/a"
    text = f"{100 * stats['mean']:.2f}"
    return text + (f" ± {100 * stats['std']:.2f}" if stats["std"] is not None else "")


def _commit_text(commit: dict) -> str:
    if not commit.get("id"):
        return "unknown (not a git checkout)"
    return commit["id"][:12] + (" with uncommitted changes" if commit.get("dirty") else "")


def _machine_text(m: dict) -> str:
    gpu = ", ".join(m["cuda"]) if m["cuda"] else "no GPU"
    return (f"{m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} threads, {gpu}; "
            f"{m['platform']}, Python {m['python']}")  # fmt: skip


def _provenance(summary: dict, sep: str) -> str:
    return sep.join([
        f"command: `{summary['command']}`" if summary["command"] else "command: (API call)",
        f"commit: {_commit_text(summary['commit'])}",
        f"machine: {_machine_text(summary['machine'])}",
        f"date: {summary['created']}",
    ])  # fmt: skip


def format_markdown(summary: dict) -> str:
    """``compare.md``: one table per scope, a row per method in the order of
    ``summary["results"]``; accuracies in percent, mean ± sample std over seeds."""
    seeds = summary["seeds"]
    lines = [f"# abrnet compare: recipe {summary['recipe']}", ""]
    if "parts" in summary:  # merged (abrnet.compare.merge): each part's own provenance
        lines.append(f"- merged from {len(summary['parts'])} comparisons" +
                     (f" by `{summary['command']}`" if summary["command"] else "") + ":")  # fmt: skip
        for part in summary["parts"]:
            lines.append(f"  - `{part['file']}`: seeds {', '.join(map(str, part['seeds']))} of "
                         f"{', '.join(part['methods'])}; " + _provenance(part, "; "))  # fmt: skip
    else:
        lines += [f"- {line}" for line in _provenance(summary, "\n").split("\n")]
    lines += [
        f"- seeds: {', '.join(map(str, seeds))} (n = {len(seeds)}); total wall time {summary['wall_time_s']:.0f} s",
        "",
        "Accuracy in percent on the test set, mean ± sample std over seeds. *Deployed*: the network with "
        "every binary activation replaced by its step, exactly 0/1 (relu has none: n/a). *Binary share*: "
        "outputs of the training form's binary layers that are already exactly 0 or 1; the deployed "
        "network's are all 0/1 by construction, checked on the test set in the last column.",
    ]
    for scope in summary["binarize"]:
        entries = [e for e in summary["results"] if e["binarize"] == scope]
        # ReLU has no binary layer, so its runs are the same in every scope: a scope
        # without its own relu row (a merged comparison) measures against another's.
        relu = next((e for e in entries if e["method"] == "relu"), None) or next(
            (e for e in summary["results"] if e["method"] == "relu"), None
        )
        ref = relu["aggregate"]["train_form"]["mean"] if relu else None
        lines += [
            "",
            f"## binarize {scope}",
            "",
            "| method | train-form acc | deployed binary acc | deployed − relu (points) | binary share "
            "(train form) | deployed 0/1 | wall time s (total / per run) |",
            "| --- | ---: | ---: | ---: | ---: | :---: | ---: |",
        ]
        for e in entries:
            agg = e["aggregate"]
            dep = agg["deployed"]
            delta = "n/a" if dep is None or ref is None else f"{100 * (dep['mean'] - ref):+.2f}"
            share = "n/a" if agg["binary_share"] is None else f"{100 * agg['binary_share']['mean']:.2f}%"
            if agg["all_binary"] is None:
                exact = "n/a"
            else:
                exact = "100%" if agg["all_binary"] else f"NO ({100 * agg['deployed_binary_share']['min']:.4f}%)"
            wall = agg["wall_time_s"]
            n = "" if agg["n"] == len(seeds) else f" (n = {agg['n']})"  # a merged row with fewer seeds
            lines.append(
                f"| {e['method']}{n} | {_pct(agg['train_form'])} | {_pct(dep)} | {delta} | {share} | {exact} "
                f"| {wall['total']:.0f} / {wall['mean']:.0f} |"
            )
    return "\n".join(lines) + "\n"
