"""abrnet.compare.markdown: one table per scope, a row per method in the order of the
results (the registry's, by default)."""

from abrnet.compare import format_markdown
from abrnet.compare.results import aggregate
from abrnet.rivals import METHODS

MACHINE = {"platform": "Linux", "python": "3.11", "torch": "2.4", "cpu": "Some CPU", "cpu_count": 8,
           "torch_threads": 1, "cuda": [], "device": "cpu"}  # fmt: skip


def _row(method: str, seed: int) -> dict:
    binary = method != "relu"
    return {
        "seed": seed, "train_form": 0.9 + seed / 100, "deployed": 0.8 + seed / 100 if binary else None,
        "binary_share": 0.5 if binary else None, "deployed_binary_share": 1.0 if binary else None,
        "non_binary_outputs": 0 if binary else None, "wall_time_s": 2.0,
    }  # fmt: skip


def _summary(scopes=("all",)) -> dict:
    results = [
        {"binarize": s, "method": m, "runs": rows, "aggregate": aggregate(rows)}
        for s in scopes
        for m in METHODS
        for rows in [[_row(m, 0), _row(m, 1)]]
    ]
    return {"recipe": "digits", "command": "abrnet compare --recipe digits", "commit": {"id": "0123456789abcdef",
            "dirty": True}, "machine": MACHINE, "created": "2026-01-01T00:00:00+00:00", "seeds": [0, 1],
            "wall_time_s": 24.0, "binarize": list(scopes), "results": results}  # fmt: skip


def _rows(table: str) -> list[list[str]]:
    lines = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith(("| method", "| ---"))]
    return [[c.strip() for c in ln.split("|")[1:-1]] for ln in lines]


def test_a_row_per_method_in_registry_order():
    table = format_markdown(_summary())
    rows = _rows(table)
    assert [r[0] for r in rows] == list(METHODS)
    for r in rows:
        if r[0] == "relu":
            assert r[1] == "90.50 ± 0.71" and r[2] == r[3] == r[4] == r[5] == "n/a"
        else:
            assert r[2] == "80.50 ± 0.71" and r[3] == "-10.00" and r[4] == "50.00%" and r[5] == "100%"
        assert r[6] == "4 / 2"
    assert "0123456789ab with uncommitted changes" in table and "Some CPU, 8 cores" in table
    assert "`abrnet compare --recipe digits`" in table and "(n = 2)" in table


def test_a_table_per_scope():
    table = format_markdown(_summary(("all", "last")))
    assert table.index("## binarize all") < table.index("## binarize last")
    assert [r[0] for r in _rows(table)] == list(METHODS) * 2


def test_a_scope_without_relu_measures_against_another_scopes_relu():
    # A merged comparison may hold relu in one scope only; ReLU has no binary layer, so
    # its runs stand for every scope.
    summary = _summary(("all", "last"))
    summary["results"] = [e for e in summary["results"] if not (e["binarize"] == "last" and e["method"] == "relu")]
    last = format_markdown(summary).split("## binarize last")[1]
    assert all(r[3] == "-10.00" for r in _rows(last))
    # Rows with fewer seeds than the comparison say how many they have.
    summary["results"][1]["runs"] = summary["results"][1]["runs"][:1]
    summary["results"][1]["aggregate"] = aggregate(summary["results"][1]["runs"])
    assert f"| {summary['results'][1]['method']} (n = 1) | 90.00 |" in format_markdown(summary)
