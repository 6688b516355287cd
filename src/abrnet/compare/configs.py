"""Config matching, for reuse and resume: a run directory left by an earlier
invocation counts only if it was trained with the same maths as the run planned now."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..train.config import TrainConfig

# Fields that say where or how often things are logged, not what is computed: a
# finished run may be reused under a different value.
NOT_MATHS = ("device", "workers", "log_every", "channels_last")
# Fields that only abrnet.BinarizationSchedule reads. It drives ABRs under the adaptive
# schedule and nothing else, so a rival's (or the paper schedule's) finished run stays
# valid when they change, as they do when the schedule's defaults move.
ADAPTIVE_ONLY = ("binarize_at", "freeze_at", "saturate", "surrogate", "window_share", "learn_window", "rounded")


def maths(cfg: dict) -> dict:
    """``cfg`` without the fields that do not change what is computed."""
    adaptive = cfg.get("method") == "abr" and cfg.get("schedule") == "adaptive"
    skip = NOT_MATHS if adaptive else NOT_MATHS + ADAPTIVE_ONLY
    return {k: v for k, v in cfg.items() if k not in skip}


def check_same_config(saved: dict, cfg: TrainConfig, run_dir: Path) -> None:
    """A one-line :class:`UserError` unless ``saved`` (a run's config as JSON) has the maths of ``cfg``."""
    want = maths(json.loads(cfg.to_json()))
    have = maths(saved) if isinstance(saved, dict) else {}
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        raise UserError(
            f"{run_dir} was trained with another config ({', '.join(diff)} differ); "
            f"use another --out, or delete that run directory to retrain it"
        )


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is unreadable ({err}); delete its run directory to retrain it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object; delete its run directory to retrain it")
    return data


def finished_report(run_dir: Path, cfg: TrainConfig) -> dict | None:
    """The run's ``report.json`` if it has one (made with ``cfg``'s maths, else a
    :class:`UserError`); None when the run has not finished."""
    path = run_dir / "report.json"
    if not path.exists():
        return None
    report = read_json(path)
    check_same_config(report.get("config", {}), cfg, run_dir)
    return report


def resumable(run_dir: Path, cfg: TrainConfig) -> bool:
    """Whether an unfinished run was started in ``run_dir`` (it has a ``config.json``,
    which must hold ``cfg``'s maths), so that it resumes rather than starts over."""
    path = run_dir / "config.json"
    if not path.exists():
        return False
    check_same_config(read_json(path), cfg, run_dir)
    return True
