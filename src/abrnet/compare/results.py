"""What compare keeps of each run's ``report.json`` (one row per run), and the
statistics over seeds."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..errors import UserError


def run_row(report: dict, seed: int, rel: str, reused: bool, run_dir: Path) -> dict:
    """One entry of ``compare.json``'s ``runs``, from the run's report.

    A report whose ``deployed_binary`` check counted fewer layers than the run has
    binary layers (written by an older abrnet, which skipped ThresholdStep layers)
    cannot say the deployed network is exactly binary: a one-line :class:`UserError`
    says to retrain that run.
    """
    acc = report["accuracy"]
    layers = report.get("layers", {})
    row = {
        "seed": seed,
        "run_dir": rel,
        "reused": reused,
        "train_form": acc["train_form"],
        "deployed": acc.get("binary"),
        "binary_layers": len(layers),
        "binary_share": None,
        "deployed_binary_share": None,
        "non_binary_outputs": None,
        "outputs_checked": None,
        "wall_time_s": report["wall_time_s"],
    }
    if layers:
        numel = sum(s["numel"] for s in layers.values())
        row["binary_share"] = sum((s["zero"] + s["one"]) * s["numel"] for s in layers.values()) / max(numel, 1)
        check = report.get("deployed_binary") or {}
        counted = check.get("layers", 0)
        if counted < len(layers):
            raise UserError(
                f"{run_dir / 'report.json'} counts the deployed outputs of {counted} of its {len(layers)} binary "
                f"layers (written by an older abrnet); delete that run directory to retrain it"
            )
        row["non_binary_outputs"] = check["non_binary_outputs"]
        row["outputs_checked"] = check["outputs_checked"]
        row["deployed_binary_share"] = 1.0 - check["non_binary_outputs"] / max(check["outputs_checked"], 1)
    return row


def describe(row: dict) -> str:
    """A run's log line, after its label."""
    text = f"train form {row['train_form']:.4f}"
    if row["deployed"] is not None:
        text += f", deployed {row['deployed']:.4f} ({row['non_binary_outputs']} non-binary outputs)"
    return text + f", {row['wall_time_s']:.1f} s" + (" (reused)" if row["reused"] else "")


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
