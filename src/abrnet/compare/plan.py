"""What a comparison runs: the inputs checked, then one resolved config per
(scope, method, seed), in the order of the results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..rivals import METHODS
from ..train.config import SCOPES, TrainConfig, resolve

# The fields compare sets per run; the other fields are the same for every run.
VARYING = ("method", "seed", "binarize")

# The rows a comparison can hold: every method of the registry, and ABR under the
# paper's fixed two-phase schedule next to ABR under the adaptive default.
ROWS: dict[str, dict] = {m: {"method": m} for m in METHODS if m != "abr"}
ROWS["abr-paper"] = {"method": "abr", "schedule": "paper"}
ROWS["abr"] = {"method": "abr", "schedule": "adaptive"}
# Rows whose network does not depend on the scope (no binary layer).
SCOPE_FREE = ("relu",)


@dataclass(frozen=True)
class Run:
    index: int  # 1-based, in plan order
    total: int
    scope: str
    method: str
    seed: int
    config: TrainConfig
    run_dir: Path
    rel: str  # run_dir relative to the comparison directory
    same_as: int | None = None  # index of the run this one is (relu in a later scope)

    @property
    def name(self) -> str:
        return f"binarize {self.scope}, {self.method}, seed {self.seed}"

    @property
    def label(self) -> str:
        """The run's name after its place in the plan, for log lines."""
        return f"[{self.index}/{self.total}] {self.name}"


def checked_names(flag: str, values: str | Sequence[str], options: Sequence[str]) -> list[str]:
    """``values`` (one name or several) stripped, each one of ``options``, none twice."""
    values = [values] if isinstance(values, str) else list(values)
    values = [v.strip() for v in values if v and v.strip()]
    if not values:
        raise UserError(f"{flag} is (empty): choose at least one of {', '.join(options)}")
    unknown = [v for v in values if v not in options]
    if unknown:
        raise UserError(f"{flag}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(options)}")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise UserError(f"{flag} lists {', '.join(map(repr, twice))} twice: {','.join(values)}")
    return values


def checked_methods(methods: str | Sequence[str]) -> list[str]:
    """Rows from :data:`ROWS`: the methods of :data:`abrnet.rivals.METHODS`, and ``abr-paper``."""
    return checked_names("--methods", methods, tuple(ROWS))


def checked_scopes(binarize: str | Sequence[str]) -> list[str]:
    """Scopes from :data:`abrnet.train.config.SCOPES`."""
    return checked_names("--binarize", binarize, SCOPES)


def checked_seeds(seeds: int | Sequence[int]) -> list[int]:
    """A count ``n`` (seeds ``0..n-1``) or the seeds themselves, as a list."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise UserError("--seeds is (empty): give at least one seed")
    if len(set(seed_list)) != len(seed_list):
        raise UserError(f"--seeds repeat: {seed_list}")
    return seed_list


def checked_jobs(jobs: int) -> int:
    if not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    return jobs


def make_plan(
    recipe: str, methods: Sequence[str], scopes: Sequence[str], seeds: Sequence[int], overrides: dict, out: Path
) -> list[Run]:
    """Every run's resolved config, before anything is trained: a bad flag fails at once."""
    fixed = sorted(set(VARYING) & {k for k, v in overrides.items() if v is not None})
    if fixed:
        raise UserError(f"compare sets {', '.join(fixed)} per run; do not pass it as an override")
    if overrides.get("baseline"):
        raise UserError("compare trains ReLU as a method of its own: use --methods relu,... instead of --baseline")
    keys = [(scope, method, seed) for scope in scopes for method in methods for seed in seeds]
    plan: list[Run] = []
    first: dict[tuple[str, int], int] = {}
    for i, (scope, method, seed) in enumerate(keys, 1):
        # ReLU has no binary layer, so its network is the same in every scope: trained
        # once, in the first scope, and that run stands for it in the others.
        home = scopes[0] if method in SCOPE_FREE else scope
        cfg = resolve(recipe, {**overrides, **ROWS[method], "seed": seed, "binarize": home})
        rel = f"{home}/{method}-seed{seed}"
        if home == scope:
            first[(method, seed)] = i
        same_as = None if home == scope else first[(method, seed)]
        plan.append(Run(i, len(keys), scope, method, seed, cfg, out / rel, rel, same_as))
    return plan


def common_config(plan: list[Run]) -> dict:
    """The resolved config shared by all runs: the fields on which every run agrees."""
    configs = [json.loads(run.config.to_json()) for run in plan]
    return {k: v for k, v in configs[0].items() if k not in VARYING and all(c[k] == v for c in configs)}
