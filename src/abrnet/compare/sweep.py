"""The sweep: plan every (scope, method, seed), reuse each finished run, train (or
resume) the others, one after another in this process or ``jobs`` at a time in
single-thread worker processes, and write ``compare.json`` and ``compare.md``."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..errors import UserError
from ..train.checkpoint import atomic_write_text
from .configs import finished_report, resumable
from .markdown import format_markdown
from .plan import Run, checked_jobs, checked_methods, checked_scopes, checked_seeds, common_config, make_plan
from .provenance import git_commit, machine_info
from .results import aggregate, describe, run_row

SCHEMA = "abrnet-compare-2"

Log = Callable[[str], None]


def run_compare(
    recipe: str,
    methods: Sequence[str],
    binarize: str | Sequence[str],
    seeds: int | Sequence[int],
    overrides: dict,
    out: str | os.PathLike,
    *,
    command: str | None = None,
    log: Log | None = print,
    jobs: int = 1,
) -> dict:
    """Train (or reuse) every run and write ``compare.json`` and ``compare.md`` to ``out``.

    Args:
        recipe: a recipe name (``abrnet.train.config.recipe_names()``).
        methods: rows to compare, from :data:`abrnet.compare.plan.ROWS` (the methods of
            :data:`abrnet.rivals.METHODS`, and ``abr-paper``: ABR under the paper schedule).
        binarize: ``"all"``, ``"last"``, or several of them (:data:`abrnet.train.config.SCOPES`).
        seeds: a count ``n`` (seeds ``0..n-1``) or the seeds themselves.
        overrides: config fields applied on top of the recipe for every run; must not
            set ``method``, ``seed`` or ``binarize``.
        out: the comparison directory.
        command: the command line, recorded in the outputs.
        log: called with one line per run as it finishes, and with the table; None for silence.
        jobs: runs trained at once. 1 trains them one after another in this process;
            more trains each in a worker process of its own with one torch thread. The
            results are the same either way (same configs, same seeds, plan order).

    Returns the ``compare.json`` dict. A run that fails (a :class:`~abrnet.errors.UserError`,
    such as :class:`~abrnet.errors.TrainingDiverged`) raises its error; with ``jobs`` > 1,
    once the runs in flight have finished.
    """
    methods = checked_methods(methods)
    scopes = checked_scopes(binarize)
    seed_list = checked_seeds(seeds)
    jobs = checked_jobs(jobs)
    out = Path(out)
    plan = make_plan(recipe, methods, scopes, seed_list, overrides, out)
    common = common_config(plan)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out {out} ({err.strerror or err})") from None

    started = time.perf_counter()
    # Every run directory is checked before anything is trained: one made with
    # another config, or an outdated report, fails at once.
    rows: dict[int, dict] = {}
    todo: list[tuple[Run, bool]] = []
    for run in plan:
        if run.same_as is not None:  # filled from the run it is, below
            continue
        report = finished_report(run.run_dir, run.config)
        if report is not None:
            rows[run.index] = run_row(report, run.seed, run.rel, True, run.run_dir)
        else:
            todo.append((run, resumable(run.run_dir, run.config)))
    if log:
        at_once = f", {min(jobs, len(todo))} at a time" if jobs > 1 and todo else ""
        same = sum(run.same_as is not None for run in plan)
        shared = f" ({same} shared between scopes: relu has no binary layer)" if same else ""
        log(f"{len(plan)} runs into {out}{shared}: {len(rows)} finished, {len(todo)} to train{at_once}")
    if jobs == 1:
        _in_process(plan, todo, rows, log)
    else:
        for run in plan:
            if run.index in rows and log:
                log(f"{run.label}: {describe(rows[run.index])}")
        _in_workers(todo, rows, jobs, log)
        for run in plan:
            if run.same_as is not None:
                rows[run.index] = rows[run.same_as]

    entries: list[dict] = []
    for run in plan:  # the rows in plan order, whatever order the runs finished in
        if not entries or (entries[-1]["binarize"], entries[-1]["method"]) != (run.scope, run.method):
            entries.append({"binarize": run.scope, "method": run.method, "runs": []})
        entries[-1]["runs"].append(rows[run.index])
    for entry in entries:
        entry["aggregate"] = aggregate(entry["runs"])
    summary = {
        "schema": SCHEMA,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "recipe": recipe,
        "methods": methods,
        "binarize": scopes,
        "seeds": seed_list,
        "jobs": jobs,
        "config": common,
        "commit": git_commit(),
        "machine": machine_info(common.get("device", "auto"), threads=1 if jobs > 1 else None),
        "wall_time_s": sum(rows[run.index]["wall_time_s"] for run in plan if run.same_as is None),
        "elapsed_s": time.perf_counter() - started,
        "results": entries,
    }
    markdown = write_summary(summary, out)
    if log:
        log(markdown)
    return summary


def write_summary(summary: dict, out: Path) -> str:
    """Write ``out/compare.json`` and ``out/compare.md`` (each atomically); returns the Markdown."""
    atomic_write_text(out / "compare.json", json.dumps(summary, indent=2) + "\n")
    markdown = format_markdown(summary)
    atomic_write_text(out / "compare.md", markdown)
    return markdown


def _train(run: Run, resume: bool) -> dict:
    """Train or resume one run; returns its report."""
    from ..train.pipeline import train_run

    return train_run(run.config, run.run_dir, resume=resume, quiet=True, device=run.config.device if resume else None)


def _in_process(plan: list[Run], todo: list[tuple[Run, bool]], rows: dict[int, dict], log: Log | None) -> None:
    resume = {run.index: r for run, r in todo}
    for run in plan:
        if run.same_as is not None:
            rows[run.index] = rows[run.same_as]
        reused = run.index in rows
        if not reused:
            if log:
                log(f"{run.label}: {'resuming' if resume[run.index] else 'training'} in {run.run_dir}")
            rows[run.index] = run_row(_train(run, resume[run.index]), run.seed, run.rel, False, run.run_dir)
        if log:
            log(f"{run.label}: {describe(rows[run.index])}")


def _init_worker() -> None:
    # One thread per run: N runs share the cores instead of fighting over them.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _in_workers(todo: list[tuple[Run, bool]], rows: dict[int, dict], jobs: int, log: Log | None) -> None:
    """Train ``todo`` ``jobs`` at a time in spawned single-thread processes, logging each
    run as it finishes. After a failure no new run starts; the runs in flight finish
    (and are kept, to be reused next time), then the first failure is raised."""
    if not todo:
        return
    failures: list[tuple[Run, BaseException]] = []
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_init_worker)
    try:
        pending = {}
        for run, resume in todo:
            pending[pool.submit(_train, run, resume)] = run
            if log:
                log(f"{run.label}: queued, {'resuming' if resume else 'training'} in {run.run_dir}")
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                if future.cancelled():
                    continue
                err = future.exception()
                if err is None:
                    rows[run.index] = run_row(future.result(), run.seed, run.rel, False, run.run_dir)
                    if log:
                        log(f"{run.label}: {describe(rows[run.index])}")
                    continue
                failures.append((run, err))
                if log:
                    log(f"{run.label}: failed: {err}")
                if len(failures) == 1:
                    for other in pending:
                        other.cancel()  # not started yet: trained by the next invocation
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        _raise_first(failures)


def _raise_first(failures: list[tuple[Run, BaseException]]) -> None:
    run, err = failures[0]
    where = run.name
    more = f" ({len(failures) - 1} more run(s) failed too)" if len(failures) > 1 else ""
    if isinstance(err, UserError):  # TrainingDiverged included: keep the class, name the run
        try:
            named = type(err)(f"{where}: {err}{more}")
        except TypeError:
            named = UserError(f"{where}: {err}{more}")
        raise named from None
    if isinstance(err, BrokenProcessPool):
        raise UserError(
            f"{where}: a worker process died ({err}); run the same command again to resume the unfinished runs"
        ) from None
    raise err
