"""``abrnet report`` on a tiny digits run: the page parses, holds its sections and real
images, and its numbers equal those computed here straight from the weights and data."""

import base64
import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from abrnet.analysis.report import SECTIONS, build_report
from abrnet.train.checkpoint import read_checkpoint
from abrnet.train.run import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")


def abrnet(*args, check=True):
    run = subprocess.run([sys.executable, "-m", "abrnet", *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    abrnet("train", "--out", out, "--epochs", "1", "--finetune-epochs", "1", "--limit", "600", "--quiet")
    return out


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.tags, self.data, self._in_data = [], [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self._in_data = tag == "script" and attrs.get("id") == "report-data"

    def handle_data(self, data):
        if self._in_data:
            self.data = json.loads(data)

    def handle_endtag(self, tag):
        self._in_data = False


@pytest.fixture(scope="session")
def page(run_dir):
    out = run_dir.parent / "report.html"
    run = abrnet("report", run_dir, "--out", out)
    assert str(out) in run.stdout
    parser = _Page()
    parser.feed(out.read_text())
    parser.close()
    return out, parser


def test_page_has_its_sections_and_real_images(page):
    _, p = page
    assert p.tags[0] == "html" and "body" in p.tags
    assert p.ids == list(SECTIONS)
    # curves, dynamics, heatmap, mutual information, memory, and an image grid per chosen neuron
    assert len(p.data["semantics"]["grid_units"]) == 3
    assert len(p.images) == 5 + 3
    for src in p.images:
        head, _, b64 = src.partition(",")
        assert head == "data:image/png;base64"
        png = base64.b64decode(b64, validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 2000


def _direct_codes(run, x):
    """The digits MLP by hand: Flatten - Linear - [> t] - Linear - [> t], from the weights
    and each ABR's threshold (the middle of its linear region: the schedule rounds)."""
    w = dict(run.model.named_parameters())
    t = dict(run.model.named_buffers())
    assert t["2.threshold"] > 0 and t["4.threshold"] > 0
    with torch.no_grad():
        h1 = torch.nn.functional.linear(x.flatten(1), w["1.weight"], w["1.bias"]) - t["2.threshold"]
        h2 = torch.nn.functional.linear((h1 > 0).float(), w["3.weight"], w["3.bias"]) - t["4.threshold"]
    return h1, h2  # the steps' inputs less their thresholds: a unit fires where > 0


def test_semantics_numbers_equal_a_direct_computation(run_dir, page):
    data = page[1].data["semantics"]
    run = load_run(run_dir)
    test = run.datasets()[1]
    x, y = map(torch.stack, zip(*[test[i] for i in range(len(test))]))
    bits = (_direct_codes(run, x)[1] > 0).numpy().astype(int)
    y = y.numpy()
    assert data["layer"] == "4" and data["items"] == len(y) == 360 and data["units"] == 128
    rates = np.array([[bits[y == c, j].mean() for j in range(128)] for c in range(10)])
    mi = np.zeros(128)  # sum over (bit, class) of p(b, y) log2 p(b, y) / (p(b) p(y))
    for j in range(128):
        for b in (0, 1):
            for c in range(10):
                p_by = np.mean((bits[:, j] == b) & (y == c))
                if p_by > 0:
                    mi[j] += p_by * math.log2(p_by / (np.mean(bits[:, j] == b) * np.mean(y == c)))
    assert data["firing_rates"] and data["mi"]
    for j, r in data["firing_rates"].items():
        np.testing.assert_allclose(r, rates[:, int(j)], atol=1e-12)
    for j, v in data["mi"].items():
        assert v == pytest.approx(mi[int(j)], abs=1e-9)
    described = [n["unit"] for n in data["neurons"]]
    np.testing.assert_allclose([n["mi"] for n in data["neurons"]], np.sort(mi)[::-1][: len(described)], atol=1e-9)
    for n in data["neurons"]:
        names = data["class_names"]
        assert n["fires_on"] == sorted(n["fires_on"], key=lambda c: -rates[names.index(c), n["unit"]])
        assert {names.index(c) for c in n["fires_on"]} == set(np.flatnonzero(rates[:, n["unit"]] >= 0.8))
        assert {names.index(c) for c in n["silent_on"]} == set(np.flatnonzero(rates[:, n["unit"]] <= 0.2))
    assert data["dead"] == int((bits.sum(0) == 0).sum())
    assert data["always_on"] == int((bits.sum(0) == len(y)).sum())


def test_binary_shares_equal_the_final_model_on_the_held_out_batch(run_dir, page):
    data = page[1].data
    rows = [json.loads(ln) for ln in (run_dir / "dynamics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps))  # one row per step, even at epoch ends
    assert rows[-1]["kind"] == "epoch"
    run = load_run(run_dir)
    test = run.datasets()[1]
    x = torch.stack([test[i][0] for i in range(256)])  # the recorder's fixed batch
    h1, h2 = _direct_codes(run, x)
    slopes = {n: run.model.get_submodule(n).slope.detach().clamp_min(run.config.min_slope) for n in ("2", "4")}
    w = dict(run.model.named_parameters())
    # The adaptive schedule ends with its first `frozen` layers computing their steps.
    frozen = read_checkpoint(run_dir / "model.safetensors")[1]["frozen"]

    def act(i: int, name: str, h: torch.Tensor) -> torch.Tensor:  # h: the input less the threshold
        # a frozen layer's step; before, the rounded ABR, its linear region about the threshold
        return (h > 0).float() if i < frozen else torch.clamp(h * slopes[name] + 0.5, 0, 1)

    with torch.no_grad():
        a1 = act(0, "2", h1)
        t4 = run.model.get_submodule("4").threshold
        a2 = act(1, "4", torch.nn.functional.linear(a1, w["3.weight"], w["3.bias"]) - t4)
    for name, out in (("2", a1), ("4", a2)):
        final = data["dynamics_final"][name]
        assert final["zero"] == pytest.approx((out == 0).float().mean().item(), abs=1e-9)
        assert final["one"] == pytest.approx((out == 1).float().mean().item(), abs=1e-9)
        assert final["between"] == pytest.approx(((out > 0) & (out < 1)).float().mean().item(), abs=1e-9)
        assert final == {k: rows[-1]["layers"][name][k] for k in final if k != "step"} | {"step": rows[-1]["step"]}


def test_memory_numbers(page):
    mem = page[1].data["memory"]
    assert mem["hidden_float32_bits"] == 32 * (256 + 128)
    assert mem["hidden_binary_bits"] == 256 + 128
    assert mem["ratio"] == pytest.approx(32.0)


def test_options_pick_the_layer_items_and_neurons(run_dir):
    page, data = build_report(run_dir, layer="2", split="train", limit=100, neurons=[0, 5])
    sem = data["semantics"]
    assert sem["layer"] == "2" and sem["split"] == "train" and sem["items"] == 100 and sem["units"] == 256
    assert sem["grid_units"] == [0, 5]
    assert page.count("<img ") == 7  # two grids instead of three


def test_bad_layer_and_bad_run_dir_are_one_line_errors(run_dir, tmp_path, capsys):
    from abrnet.cli import main

    assert main(["report", str(run_dir), "--layer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "choose from 2, 4" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (see .ci/install-system)")
def test_headless_chromium_renders_the_page(page, tmp_path):
    html_path, _ = page
    shot = tmp_path / "report.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,4000",
           html_path.resolve().as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.read_bytes().startswith(PNG_MAGIC)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (4000, 1400)
    # The figures drew: plenty of pixels are neither white nor near-white.
    assert (img.min(axis=2) < 200).mean() > 0.05
    if os.environ.get("ABRNET_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["ABRNET_SCREENSHOT"])


def test_epoch_count_includes_the_frozen_phase(tmp_path):
    from abrnet.analysis.report import build_report

    out = tmp_path / "frozen"
    abrnet("train", "--out", out, "--epochs", "1", "--finetune-epochs", "1", "--frozen-epochs", "2", "--limit", "200",
           "--quiet")  # fmt: skip
    html, data = build_report(out)
    assert data["epochs"] == [1, 1, 2]
    assert "1 + 1 + 2 epochs" in html
