"""Head-to-head comparison of the ways to get binary hidden representations.

:func:`run_compare` trains every (scope, method, seed) with one recipe and one budget,
through the same :func:`abrnet.pipeline.train_run` as ``abrnet train``; only ``method``,
``seed`` and ``binarize`` differ between runs. Accuracy is always the deployed
network's (every chosen activation replaced by its step, exactly 0/1), next to the
training form's.

Layout of ``OUT``::

    compare.json                  results, schema below
    compare.md                    the same as Markdown tables, one per scope
    <scope>/<method>-seed<N>/     one run directory each (see abrnet.run)

The comparison is resumable: a run whose ``report.json`` exists is reused, not
retrained; a run with a ``config.json`` but no report (the job was killed) resumes
from its last checkpoint. Either must have been made with the same config, else a
:class:`~abrnet.errors.UserError` says so.

``compare.json`` (schema ``abrnet-compare-1``)::

    schema, created (ISO 8601 local time), command (the command line, or null)
    recipe, methods [..], binarize [..], seeds [..]
    config        the resolved config shared by all runs; method, seed and binarize
                  are left out (they vary)
    commit        {"id": git HEAD or null, "dirty": bool or null}
    machine       {"platform", "python", "torch", "cpu", "cpu_count", "torch_threads",
                   "cuda": [device names], "device"}
    wall_time_s   total wall time of the runs, from their reports (a reused run counts
                  its own; a resumed run only the part after the resume)
    elapsed_s     wall time of this invocation (small when every run was reused)
    results       one entry per (binarize, method), in command order:
      binarize, method
      runs        one per seed:
        seed, run_dir (relative to OUT), reused (bool: report.json already existed)
        train_form            test accuracy of the training form
        deployed              test accuracy of the deployed network; null for relu
                              (no binary layer: there is nothing to deploy)
        binary_layers         number of binary activations (0 for relu)
        binary_share          share of the training form's outputs, over the binary
                              layers and the test set, that are exactly 0 or 1
                              (sum of zero + one, weighted by each layer's count);
                              null for relu
        deployed_binary_share share of the deployed network's outputs at those layers
                              that are exactly 0/1: 1.0 by construction (each is a
                              step); measured on the test set, not assumed
        non_binary_outputs, outputs_checked   the counts behind it
        binary_check          who counted: "report" (report.json's deployed_binary)
                              or "compare" (report.json's check missed a layer, as
                              it does for a ThresholdStep: counted again here, over
                              the same test set, cached in <run>/deployed_check.json)
        wall_time_s           the run's wall time
      aggregate   over seeds: n, and for train_form, deployed, binary_share,
                  deployed_binary_share: {"mean", "std", "min", "max"} (std is the
                  sample std, ddof = 1; null when n = 1; the whole entry null when
                  the value is null, as for relu's deployed accuracy);
                  wall_time_s: {"total", "mean"}; all_binary: every run's deployed
                  network had 0 non-binary outputs (null for relu)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .checkpoint import atomic_write_text
from .config import CHOICES, METHODS, TrainConfig, resolve
from .errors import UserError

SCHEMA = "abrnet-compare-1"
VARYING = ("method", "seed", "binarize")
# Fields that say where or how often things are logged, not what is computed: a
# finished run may be reused under a different value.
_NOT_MATHS = ("device", "workers", "log_every", "channels_last")


def run_compare(
    recipe: str,
    methods: Sequence[str],
    binarize: str | Sequence[str],
    seeds: int | Sequence[int],
    overrides: dict,
    out: str | os.PathLike,
    *,
    command: str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train (or reuse) every run and write ``compare.json`` and ``compare.md`` to ``out``.

    Args:
        recipe: a recipe name (``abrnet.config.recipe_names()``).
        methods: activations to compare, from ``abrnet.config.METHODS``.
        binarize: ``"all"``, ``"last"``, or several of them.
        seeds: a count ``n`` (seeds ``0..n-1``) or the seeds themselves.
        overrides: config fields applied on top of the recipe for every run; must not
            set ``method``, ``seed`` or ``binarize``.
        out: the comparison directory.
        command: the command line, recorded in the outputs.
        log: called with one line per run; None for silence.

    Returns the ``compare.json`` dict.
    """
    methods = _checked_list("method", [methods] if isinstance(methods, str) else methods, METHODS)
    scopes = _checked_list("binarize", [binarize] if isinstance(binarize, str) else binarize, CHOICES["binarize"])
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise UserError("need at least one seed")
    if len(set(seed_list)) != len(seed_list):
        raise UserError(f"seeds repeat: {seed_list}")
    fixed = sorted(set(VARYING) & {k for k, v in overrides.items() if v is not None})
    if fixed:
        raise UserError(f"compare sets {', '.join(fixed)} per run; do not pass it as an override")
    if overrides.get("baseline"):
        raise UserError("compare trains ReLU as a method of its own: use --methods relu,... instead of --baseline")
    out = Path(out)
    # Resolve every config before training anything: a bad flag fails at once.
    plan = [
        (scope, method, seed, resolve(recipe, {**overrides, "method": method, "seed": seed, "binarize": scope}))
        for scope in scopes
        for method in methods
        for seed in seed_list
    ]
    common = json.loads(plan[0][3].to_json())
    for key in VARYING:
        common.pop(key)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out {out} ({err.strerror or err})") from None

    from .pipeline import train_run

    started = time.perf_counter()
    results: dict[tuple[str, str], list[dict]] = {}
    for i, (scope, method, seed, cfg) in enumerate(plan, 1):
        run_dir = out / scope / f"{method}-seed{seed}"
        label = f"[{i}/{len(plan)}] binarize {scope}, {method}, seed {seed}"
        report, reused = _existing_report(run_dir, cfg), True
        if report is None:
            reused = False
            resume = (run_dir / "config.json").exists()
            if resume:
                _check_same_config(run_dir / "config.json", cfg)
            if log:
                log(f"{label}: {'resuming' if resume else 'training'} in {run_dir}")
            report = train_run(cfg, run_dir, resume=resume, quiet=True, device=cfg.device if resume else None)
        row = _run_result(report, seed, run_dir.relative_to(out).as_posix(), reused, run_dir)
        results.setdefault((scope, method), []).append(row)
        if log:
            log(f"{label}: {_describe(row)}")

    entries = [
        {"binarize": scope, "method": method, "runs": rows, "aggregate": aggregate(rows)}
        for (scope, method), rows in results.items()
    ]
    summary = {
        "schema": SCHEMA,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "recipe": recipe,
        "methods": methods,
        "binarize": scopes,
        "seeds": seed_list,
        "config": common,
        "commit": git_commit(),
        "machine": machine_info(common.get("device", "auto")),
        "wall_time_s": sum(r["wall_time_s"] for e in entries for r in e["runs"]),
        "elapsed_s": time.perf_counter() - started,
        "results": entries,
    }
    atomic_write_text(out / "compare.json", json.dumps(summary, indent=2) + "\n")
    markdown = format_markdown(summary)
    atomic_write_text(out / "compare.md", markdown)
    if log:
        log(markdown)
    return summary


def _checked_list(name: str, values: Sequence[str], options: Sequence[str]) -> list[str]:
    values = [v.strip() for v in values if v and v.strip()]
    if not values:
        raise UserError(f"no {name} given: choose from {', '.join(options)}")
    unknown = [v for v in values if v not in options]
    if unknown:
        raise UserError(f"unknown {name} {', '.join(map(repr, unknown))}: choose from {', '.join(options)}")
    if len(set(values)) != len(values):
        raise UserError(f"{name} listed twice: {','.join(values)}")
    return values


def _maths(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _NOT_MATHS}


def _check_same_config(path: Path, cfg: TrainConfig) -> None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is unreadable ({err}); delete its run directory to retrain it") from None
    _compare_configs(saved, cfg, path.parent)


def _compare_configs(saved: dict, cfg: TrainConfig, run_dir: Path) -> None:
    want = _maths(json.loads(cfg.to_json()))
    have = _maths(saved) if isinstance(saved, dict) else {}
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        raise UserError(
            f"{run_dir} was trained with another config ({', '.join(diff)} differ); "
            f"use another --out, or delete that run directory to retrain it"
        )


def _existing_report(run_dir: Path, cfg: TrainConfig) -> dict | None:
    path = run_dir / "report.json"
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is unreadable ({err}); delete its run directory to retrain it") from None
    _compare_configs(report.get("config", {}), cfg, run_dir)
    return report


def _run_result(report: dict, seed: int, run_dir: str, reused: bool, path: Path) -> dict:
    acc = report["accuracy"]
    layers = report.get("layers", {})
    row = {
        "seed": seed,
        "run_dir": run_dir,
        "reused": reused,
        "train_form": acc["train_form"],
        "deployed": acc.get("binary"),
        "binary_layers": len(layers),
        "binary_share": None,
        "deployed_binary_share": None,
        "non_binary_outputs": None,
        "outputs_checked": None,
        "binary_check": None,
        "wall_time_s": report["wall_time_s"],
    }
    if layers:
        numel = sum(s["numel"] for s in layers.values())
        row["binary_share"] = sum((s["zero"] + s["one"]) * s["numel"] for s in layers.values()) / max(numel, 1)
        check, row["binary_check"] = report["deployed_binary"], "report"
        if check["layers"] < len(layers):
            # A report.json written before binarization_stats counted ThresholdStep
            # outputs (dorefa, pact) skipped those layers: count them here instead.
            check, row["binary_check"] = deployed_check(path, list(layers)), "compare"
        row["non_binary_outputs"] = check["non_binary_outputs"]
        row["outputs_checked"] = check["outputs_checked"]
        row["deployed_binary_share"] = 1.0 - check["non_binary_outputs"] / max(check["outputs_checked"], 1)
    return row


def deployed_check(run_dir: Path, names: list[str]) -> dict:
    """Count the outputs of the deployed network's layers ``names`` (the training
    form's binary layers, each replaced by its deploy form) that are not exactly 0 or
    1, over the run's test set. Cached in ``run_dir/deployed_check.json``."""
    cache = run_dir / "deployed_check.json"
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("names") == names:
                return saved
        except json.JSONDecodeError:
            pass
    import torch

    from .engine import loader, resolve_device
    from .run import load_run

    run = load_run(run_dir)
    device = resolve_device(run.config.device)
    deployed = run.deployed.to(device).eval()
    counts = dict.fromkeys(names, (0, 0))

    def hook(name: str):
        def fn(module, inputs, y) -> None:
            n, bad = counts[name]
            counts[name] = (n + y.numel(), bad + int(((y != 0) & (y != 1)).sum()))

        return fn

    handles = [deployed.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for x, _ in loader(run.datasets()[1], run.config, device):
                deployed(x.to(device))
    finally:
        for h in handles:
            h.remove()
    result = {
        "names": names,
        "layers": len(names),
        "non_binary_outputs": sum(bad for _, bad in counts.values()),
        "outputs_checked": sum(n for n, _ in counts.values()),
    }
    atomic_write_text(cache, json.dumps(result, indent=2) + "\n")
    return result


def _stats(values: list) -> dict | None:
    if not values or any(v is None for v in values):
        return None
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def aggregate(rows: list[dict]) -> dict:
    """Mean, sample std (ddof = 1), min and max over seeds of each per-run value."""
    agg = {"n": len(rows)}
    for key in ("train_form", "deployed", "binary_share", "deployed_binary_share"):
        agg[key] = _stats([r[key] for r in rows])
    walls = [r["wall_time_s"] for r in rows]
    agg["wall_time_s"] = {"total": sum(walls), "mean": statistics.fmean(walls)}
    checked = [r["non_binary_outputs"] for r in rows]
    agg["all_binary"] = None if any(c is None for c in checked) else all(c == 0 for c in checked)
    return agg


def _describe(row: dict) -> str:
    text = f"train form {row['train_form']:.4f}"
    if row["deployed"] is not None:
        text += f", deployed {row['deployed']:.4f} ({row['non_binary_outputs']} non-binary outputs)"
    return text + f", {row['wall_time_s']:.1f} s" + (" (reused)" if row["reused"] else "")


def _pct(stats: dict | None) -> str:
    if stats is None:
        return "n/a"
    text = f"{100 * stats['mean']:.2f}"
    return text + (f" ± {100 * stats['std']:.2f}" if stats["std"] is not None else "")


def format_markdown(summary: dict) -> str:
    """``compare.md``: one table per scope; accuracies in percent, mean ± sample std over seeds."""
    seeds = summary["seeds"]
    lines = [
        f"# abrnet compare: recipe {summary['recipe']}",
        "",
        f"- command: `{summary['command']}`" if summary["command"] else "- command: (API call)",
        f"- commit: {_commit_text(summary['commit'])}",
        f"- machine: {_machine_text(summary['machine'])}",
        f"- date: {summary['created']}",
        f"- seeds: {', '.join(map(str, seeds))} (n = {len(seeds)}); total wall time {summary['wall_time_s']:.0f} s",
        "",
        "Accuracy in percent on the test set, mean ± sample std over seeds. *Deployed*: the network with "
        "every binary activation replaced by its step, exactly 0/1 (relu has none: n/a). *Binary share*: "
        "outputs of the training form's binary layers that are already exactly 0 or 1; the deployed "
        "network's are all 0/1 by construction, checked on the test set in the last column.",
    ]
    for scope in summary["binarize"]:
        entries = [e for e in summary["results"] if e["binarize"] == scope]
        relu = next((e for e in entries if e["method"] == "relu"), None)
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
            lines.append(
                f"| {e['method']} | {_pct(agg['train_form'])} | {_pct(dep)} | {delta} | {share} | {exact} "
                f"| {wall['total']:.0f} / {wall['mean']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def _commit_text(commit: dict) -> str:
    if not commit.get("id"):
        return "unknown (not a git checkout)"
    return commit["id"][:12] + (" with uncommitted changes" if commit.get("dirty") else "")


def _machine_text(m: dict) -> str:
    gpu = ", ".join(m["cuda"]) if m["cuda"] else "no GPU"
    return (f"{m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} threads, {gpu}; "
            f"{m['platform']}, Python {m['python']}")  # fmt: skip


def git_commit() -> dict:
    """The git HEAD of the abrnet source tree, and whether the tree differs from it
    (modified or untracked, not ignored, files); nulls when git or the repository is missing."""
    where = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    # Untracked (not ignored) files count: a new module the runs used may not be committed yet.
    status = git("status", "--porcelain") if head else None
    return {"id": head, "dirty": None if status is None else bool(status)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: str = "auto") -> dict:
    import torch

    cuda = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda,
        "device": device if device != "auto" else ("cuda" if cuda else "cpu"),
    }
