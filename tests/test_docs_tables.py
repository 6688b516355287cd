"""The result tables in the docs are generated from the raw JSON committed beside them
(docs/results/render.py): a table edited by hand, or a JSON changed without rendering,
shows up here as a difference."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_rendered_table_matches_its_raw_results(tmp_path):
    for folder in ("docs", "benchmarks"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    done = subprocess.run([sys.executable, str(tmp_path / "docs/results/render.py")], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped" not in done.stderr, done.stderr  # every raw file has its block
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert (tmp_path / "docs" / page.name).read_text() == page.read_text(), f"{page.name} is not rendered"


@pytest.fixture
def render(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("render", ROOT / "docs/results/render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    return module


def _compare(path: Path, method: str, seeds: dict[int, float]) -> str:
    runs = [{"seed": s, "deployed": acc} for s, acc in seeds.items()]
    path.write_text(json.dumps({"results": [{"binarize": "all", "method": method, "runs": runs}]}))
    return path.name


def test_a_pool_pairs_each_method_with_abr_on_their_common_seeds(render, tmp_path):
    a = _compare(tmp_path / "a.json", "abr", {0: 0.90, 1: 0.80})
    b = _compare(tmp_path / "b.json", "abr", {2: 0.70})
    p = _compare(tmp_path / "p.json", "pact", {0: 0.85, 1: 0.85, 5: 0.99})
    spec = {"rows": [{"label": "net", "scope": "all", "methods": {"abr": [a, b], "pact": [p]}}]}
    rows = render.pool_table("t", spec).splitlines()[2:]
    assert rows[0].startswith("| net | abr | 3 | 80.00 ± 10.00 |  |")
    # seeds 0 and 1 in common: +5 and -5 points, ABR ahead on one
    assert rows[1].startswith("| net | pact | 3 | 89.67 ± 8.08 | +0.00 (1 of 2) |")
    twice = _compare(tmp_path / "c.json", "abr", {1: 0.81})
    spec["rows"][0]["methods"]["abr"].append(twice)
    with pytest.raises(SystemExit, match="abr seed 1 is in a.json and c.json"):
        render.pool_table("t", spec)
