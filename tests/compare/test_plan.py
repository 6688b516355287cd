"""abrnet.compare.plan: the inputs are checked against the registries, one line each;
the plan has one resolved config per (scope, method, seed), in that order."""

from pathlib import Path

import pytest

from abrnet.compare import plan as P
from abrnet.errors import UserError
from abrnet.rivals import METHODS
from abrnet.train.config import SCOPES


def test_methods_and_scopes_come_from_the_registries():
    assert P.checked_methods(list(METHODS)) == list(METHODS)
    assert P.checked_methods(" abr ") == ["abr"]
    assert P.checked_scopes(list(SCOPES)) == list(SCOPES)
    with pytest.raises(UserError, match=f"unknown 'sign'; choose from {', '.join(P.ROWS)}$"):
        P.checked_methods(["relu", "sign"])
    with pytest.raises(UserError, match=r"--binarize is \(empty\)"):
        P.checked_scopes([])
    with pytest.raises(UserError, match="lists 'abr' twice"):
        P.checked_methods(["abr", "relu", "abr"])


def test_seeds_and_jobs():
    assert P.checked_seeds(3) == [0, 1, 2] and P.checked_seeds([5, 2]) == [5, 2]
    for bad, words in ((0, ">= 1"), ([], "(empty)"), ([1, 1], "repeat")):
        with pytest.raises(UserError) as err:
            P.checked_seeds(bad)
        assert words in str(err.value) and "--seeds" in str(err.value)
    assert P.checked_jobs(4) == 4
    with pytest.raises(UserError, match="--jobs must be >= 1"):
        P.checked_jobs(0)


def test_plan_order_dirs_and_common_config():
    out = Path("cmp")
    plan = P.make_plan("digits", ["relu", "abr"], ["all", "last"], [0, 1], {"epochs": 1}, out)
    assert [(r.scope, r.method, r.seed) for r in plan] == [
        (s, m, seed) for s in ("all", "last") for m in ("relu", "abr") for seed in (0, 1)
    ]
    assert [r.index for r in plan] == list(range(1, 9)) and {r.total for r in plan} == {8}
    assert plan[3].label == "[4/8] binarize all, abr, seed 1" and plan[3].name == "binarize all, abr, seed 1"
    assert plan[3].rel == "all/abr-seed1" and plan[3].run_dir == out / "all" / "abr-seed1"
    assert all(r.config.epochs == 1 for r in plan)
    assert (plan[7].config.method, plan[7].config.seed, plan[7].config.binarize) == ("abr", 1, "last")
    # relu in the last scope is relu in the first: the same config, folder and run.
    assert (plan[5].config.method, plan[5].config.seed, plan[5].config.binarize) == ("relu", 1, "all")
    assert plan[5].rel == "all/relu-seed1" and plan[5].same_as == 2 and plan[5].scope == "last"
    assert [r.index for r in plan if r.same_as is None] == [1, 2, 3, 4, 7, 8]
    common = P.common_config(plan)
    assert common["epochs"] == 1 and not set(P.VARYING) & set(common)


@pytest.mark.parametrize(
    "overrides, words", [({"seed": 3}, "sets seed per run"), ({"baseline": True}, "--methods relu")]
)
def test_per_run_fields_are_not_overrides(overrides, words):
    with pytest.raises(UserError, match=words):
        P.make_plan("digits", ["abr"], ["all"], [0], overrides, Path("cmp"))


def test_the_paper_schedule_is_a_row_of_its_own(tmp_path):
    assert list(P.ROWS)[-2:] == ["abr-paper", "abr"]  # next to abr, which stays last
    plan = P.make_plan("digits", ["ste", "abr-paper", "abr"], ["all"], [0], {}, tmp_path)
    assert [(r.method, r.config.method, r.config.schedule) for r in plan] == [
        ("ste", "ste", "adaptive"), ("abr-paper", "abr", "paper"), ("abr", "abr", "adaptive")]  # fmt: skip
    assert plan[1].run_dir == tmp_path / "all" / "abr-paper-seed0"
    assert "schedule" not in P.common_config(plan)  # it differs between the rows
