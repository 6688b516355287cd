"""``abrnet report``: one self-contained HTML page for a finished run.

Sections (stable ids): ``summary`` (headline numbers), ``curves`` (loss, accuracy of the
training form against the deployed binary network, lr and growth), ``dynamics`` (per
binary layer: slopes, shares of 0 / in between / 1, flips, over steps), ``semantics``
(firing rates per class and neuron, mutual information, dead and always-on bits, images
on which a neuron fires and stays silent) and ``memory`` (activation bits per example).
Figures are matplotlib PNGs embedded as base64; the key numbers are repeated in a JSON
block, ``<script type="application/json" id="report-data">``, for tools and tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..stats import summary
from ..train.checkpoint import atomic_write
from ..train.run import Run, load_run
from . import semantics
from .figures import curves_figure, dynamics_figure, grid_figure, heatmap_figure, memory_figure, mi_figure
from .html import CSS, clean, esc, img, pct, rate_cell, table

HEATMAP_UNITS = 64  # at most this many units (the most informative) in the heatmap
DESCRIBED = 8  # neurons described by name
GRIDS = 3  # neurons shown with image grids: informative ones with different profiles
SECTIONS = ("summary", "curves", "dynamics", "semantics", "memory")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file; a missing file is empty and a torn last line (a
    killed run) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # an unfinished run has none yet
        return {}
    return data if isinstance(data, dict) else {}


def _dedupe_steps(rows: list[dict]) -> list[dict]:
    # Runs before the recorder skipped epoch-end steps hold two rows at those steps.
    seen, out = set(), []
    for r in rows:
        if r.get("step") not in seen:
            seen.add(r.get("step"))
            out.append(r)
    return out


def build_report(run_dir, layer: str | None = None, split: str = "test", limit: int | None = None,
                 neurons: list[int] | None = None) -> tuple[str, dict]:  # fmt: skip
    """The page for the run in ``run_dir`` and the numbers it embeds as ``report-data``.

    ``layer``: the step layer whose neuron semantics are shown (default: the last one);
    ``split``/``limit``: the items used for them; ``neurons``: units shown with image
    grids (default: the most informative)."""
    started = time.perf_counter()
    run = load_run(run_dir)
    cfg, names = run.config, run.class_names
    steps = semantics.step_layers(run.deployed)
    if layer is not None and layer not in steps:
        choices = ", ".join(steps) or "none"
        raise UserError(f"--layer {layer!r} is not a binary layer of this run; choose from {choices}")
    metrics = read_jsonl(run.dir / "metrics.jsonl")
    dyn = _dedupe_steps(read_jsonl(run.dir / "dynamics.jsonl"))
    acc = _read_json(run.dir / "report.json").get("accuracy") or {}
    last = metrics[-1] if metrics else {}
    train_acc, bin_acc = acc.get("train_form", last.get("test_acc")), acc.get("binary", last.get("test_acc_binary"))
    mem = summary(run.deployed, run.info.input_shape)
    data: dict = {
        "run": str(run.dir), "recipe": cfg.recipe, "dataset": cfg.dataset, "model": cfg.model, "method": cfg.method,
        "epochs": _phase_epochs(cfg), "accuracy": {"train_form": train_acc, "binary": bin_acc},
        "binary_share": last.get("binary_share"),
        "memory": {"hidden_float32_bits": mem.hidden_float_bits, "hidden_binary_bits": mem.hidden_binary_bits,
                   "ratio": mem.ratio},
    }  # fmt: skip
    dyn_layers = list(dyn[-1]["layers"]) if dyn else []
    data["dynamics_final"] = {
        n: {"step": dyn[-1]["step"], **{k: dyn[-1]["layers"][n][k] for k in ("zero", "between", "one", "flip")}}
        for n in dyn_layers
    }
    sem = {}
    if steps:
        ds = run.datasets()[0 if split == "train" else 1]
        if limit is not None:
            ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
        sem = semantics.layer_semantics(run.deployed, layer or steps[-1], ds, names,
                                       heatmap_units=HEATMAP_UNITS, described=DESCRIBED, distinct=GRIDS)  # fmt: skip
        d = sem["bits"].shape[1]
        if neurons is not None and any(not 0 <= j < d for j in neurons):
            raise UserError(f"--neurons: layer {sem['layer']} has units 0..{d - 1}, got {neurons}")
        sem["dataset"] = ds
        sem["grid_units"] = list(neurons) if neurons is not None else [s.unit for s in sem["distinct"][:GRIDS]]
        listed = [*sem["described"], *sem["distinct"]]
        shown = sorted({*map(int, sem["heatmap_units"]), *(s.unit for s in listed), *sem["grid_units"]})
        data["semantics"] = {
            "layer": sem["layer"], "split": split, "items": len(sem["labels"]), "units": d,
            "shape": next((list(r.shape) for r in mem.rows if r.name == sem["layer"]), [d]),
            "class_names": list(names), "dead": sem["dead"], "always_on": sem["always_on"],
            "mi_mean": float(sem["mi"].mean()), "label_entropy": sem["label_entropy"],
            "heatmap_units": sem["heatmap_units"], "class_order": sem["class_order"], "grid_units": sem["grid_units"],
            "mi": {j: sem["mi"][j] for j in shown}, "firing_rates": {j: sem["rates"][:, j] for j in shown},
            "neurons": [vars(s) for s in sem["described"]], "distinct": [vars(s) for s in sem["distinct"]],
        }  # fmt: skip
    body = [
        _curves_section(metrics, dyn, cfg),
        _dynamics_section(dyn, dyn_layers, cfg, data["dynamics_final"]),
        _semantics_section(sem, data.get("semantics"), names, run.info.input_shape),
        _memory_section(mem),
    ]
    data["generated_s"] = time.perf_counter() - started
    page = _page(run, data, sem, body)
    return page, clean(data)


def _page(run: Run, data: dict, sem: dict, body: list[str]) -> str:
    title = f"abrnet report: {run.dir.resolve().name}"
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    blob = json.dumps(clean(data), allow_nan=False).replace("</", "<\\/")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><header><h1>{esc(title)}</h1><nav>{nav}</nav></header>"
        + _summary_section(run, data, sem) + "".join(body)
        + f'<script type="application/json" id="report-data">{blob}</script></body></html>\n'
    )  # fmt: skip


def _phase_epochs(cfg) -> list[int]:
    # Epochs per phase, phase 3 (frozen) only when the run has one.
    return [cfg.epochs, cfg.finetune_epochs, *([cfg.frozen_epochs] if cfg.frozen_epochs else [])]


def _summary_section(run: Run, data: dict, sem: dict) -> str:
    cfg, acc, mem = run.config, data["accuracy"], data["memory"]
    items = [
        f"run <code>{esc(run.dir)}</code>: recipe {esc(cfg.recipe)}, {esc(cfg.model)} on {esc(cfg.dataset)}, "
        f"method {esc(cfg.method)}, {' + '.join(map(str, data['epochs']))} epochs",
        f"test accuracy: training form <b>{pct(acc['train_form'])}</b>, deployed binary network "
        f"<b>{pct(acc['binary'])}</b>",
    ]
    if data["binary_share"] is not None:
        items.append(f"outputs of the training form (ABR) already exactly 0 or 1 after the last epoch, on test "
                     f"batches: {pct(data['binary_share'])}")  # fmt: skip
    items.append(f"hidden representations: {mem['hidden_float32_bits']:,} bits float32 &rarr; "
                 f"{mem['hidden_binary_bits']:,} bits binary per example (<b>{mem['ratio']:.1f}x</b> smaller)")  # fmt: skip
    if sem:
        s = data["semantics"]
        items.append(f"layer <code>{esc(s['layer'])}</code>: {s['units']:,} bits over {s['items']:,} {s['split']} "
                     f"items; {s['dead']} dead, {s['always_on']} always on; mean I(bit; label) "
                     f"{s['mi_mean']:.3f} bits")  # fmt: skip
        items.append("three informative neurons that split the classes differently:<ul>"
                     + "".join(f"<li>{esc(n)}</li>" for n in sem["distinct"]) + "</ul>")  # fmt: skip
    items.append(f'<span class="note">generated in {data["generated_s"]:.1f} s</span>')
    lis = "".join(f"<li>{i}</li>" for i in items)
    return f'<section id="summary"><h2>Summary</h2><ul class="headline">{lis}</ul></section>'


def _curves_section(metrics, dyn, cfg) -> str:
    if not metrics and not dyn:
        return '<section id="curves"><h2>Training curves</h2><p class="note">no metrics.jsonl or dynamics.jsonl</p></section>'
    cap = ("Left: the task loss of each recorded batch and its mean per epoch. Middle: accuracy of the training "
           "form (ABR) and of the deployed network with every binary layer stepped, on the test set per epoch "
           "(markers) and on a fixed held-out batch every few steps (thin lines). Right: learning rate and growth "
           "strength. The dashed line starts phase 2 (fine-tuning towards binary).")  # fmt: skip
    return f'<section id="curves"><h2>Training curves</h2>{img(curves_figure(metrics, dyn, cfg), "training curves", cap)}</section>'


def _dynamics_section(dyn, layers, cfg, final) -> str:
    head = '<section id="dynamics"><h2>Binarization dynamics per layer</h2>'
    if not dyn or not layers:
        return head + '<p class="note">no binary layers recorded in dynamics.jsonl</p></section>'
    cap = ("Per binary layer, on the fixed held-out batch. Left: the spread of slopes (log scale). Middle: shares of "
           "outputs exactly 0, strictly in between, exactly 1. Right: the share of bits [x > 0] that changed since "
           "the previous record.")  # fmt: skip
    rows = []
    for n in layers:
        q = dyn[-1]["layers"][n].get("slope_quantiles")
        f = final[n]
        rows.append([n, "-" if q is None else f"{q[3]:.3g}", pct(f["zero"]), pct(f["between"]), pct(f["one"]),
                     pct(f["flip"])])  # fmt: skip
    rendered = table(["layer", "median slope", "exactly 0", "in between", "exactly 1", "flipped"], rows)
    return (head + f"<p>Last record (step {dyn[-1]['step']}):</p>" + rendered
            + img(dynamics_figure(dyn, layers, cfg), "binarization dynamics", cap) + "</section>")  # fmt: skip


def _semantics_section(sem: dict, s: dict | None, names, input_shape) -> str:
    head = '<section id="semantics"><h2>Neuron semantics</h2>'
    if not sem:
        return head + '<p class="note">the deployed network has no binary layer</p></section>'
    parts = [head, f"<p>Layer <code>{esc(s['layer'])}</code> (shape {s['shape']}, {s['units']:,} bits), over "
             f"the first {s['items']:,} {s['split']} items. Dead bits (never 1): <b>{s['dead']}</b>; always-on "
             f"bits: <b>{s['always_on']}</b>.</p>"]  # fmt: skip
    parts.append(img(heatmap_figure(sem, names, s["shape"]), "firing-rate heatmap",
                      f"Firing rate of each unit on each class (red: fires, blue: inhibited). The "
                      f"{len(sem['heatmap_units'])} units with the most mutual information with the label; units and "
                      f"classes ordered by hierarchical clustering, so that alike ones sit together."))  # fmt: skip
    rate_head = [str(n) for n in names] if len(names) <= 20 else []
    rows = []
    for nrn in sem["described"]:
        cells = [rate_cell(r) for r in nrn.rates] if rate_head else []
        rows.append([semantics.unit_name(nrn.unit, s["shape"]), f"{nrn.mi:.3f}", ", ".join(nrn.fires_on) or "-",
                     ", ".join(nrn.silent_on) or "-", *cells])  # fmt: skip
    parts.append("<h3>The most informative neurons</h3><p>Fires on: rate &ge; 0.8; inhibited on: rate &le; 0.2.</p>")
    parts.append(table(["unit", "I(bit; label)", "fires on", "inhibited on", *rate_head], rows, left=1))
    parts.append(img(mi_figure(sem), "mutual information", "Mutual information between each bit and the label "
                      "(plug-in estimate from the counts), all units, highest first."))  # fmt: skip
    if len(input_shape) == 3 and input_shape[0] in (1, 3):
        parts.append("<h3>Images on which a neuron fires, and on which it stays silent</h3><p>Informative neurons "
                     "that split the classes differently (choose others with <code>--neurons</code>).</p>")  # fmt: skip
        for j in sem["grid_units"]:
            cap = (f"Unit {semantics.unit_name(j, s['shape'])}: random {s['split']} images with the bit at 1 (left) "
                   f"and at 0 (right), titled with their class.")  # fmt: skip
            parts.append(img(grid_figure(sem, j, names, s["shape"]), f"images for unit {j}", cap))
    return "".join(parts) + "</section>"


def _memory_section(mem) -> str:
    rows = [[r.name + (" *" if r.activation else ""), r.kind, "x".join(map(str, r.shape)), f"{r.float_bits:,}",
             f"{r.deploy_bits:,}"] for r in mem.rows]  # fmt: skip
    rows.append(["hidden representations (*)", "", "", f"{mem.hidden_float_bits:,}", f"{mem.hidden_binary_bits:,}"])
    rows.append(["all layer outputs", "", "", f"{mem.all_float_bits:,}", f"{mem.all_deploy_bits:,}"])
    rendered = table(["layer", "kind", "output shape", "float32 bits", "deployed bits"], rows, left=2)
    text = (f"<p>Activation bits per example (<code>abrnet.summary</code> of the deployed network): hidden "
            f"representations take {mem.hidden_float_bits:,} bits in float32 and {mem.hidden_binary_bits:,} bits "
            f"once binary, a ratio of <b>{mem.ratio:.1f}x</b>.</p>")  # fmt: skip
    fig = img(memory_figure(mem.rows), "activation memory", "Bits per example of each hidden representation.")
    return f'<section id="memory"><h2>Memory</h2>{text}{rendered}{fig}</section>'


def write_report(run_dir, out=None, **kwargs) -> Path:
    """Build the page (see :func:`build_report`) and write it to ``out`` (default
    ``RUN_DIR/report.html``); returns the path."""
    page, _ = build_report(run_dir, **kwargs)
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    raw = page.encode("ascii", "xmlcharrefreplace")  # any class name, whatever the reader's charset
    try:
        atomic_write(out, lambda tmp: Path(tmp).write_bytes(raw))
    except OSError as err:
        raise UserError(f"could not write {out} ({err.strerror or err})") from None
    return out
