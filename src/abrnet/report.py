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

import base64
import html
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import analysis
from .checkpoint import atomic_write
from .errors import UserError
from .run import Run, load_run
from .stats import summary

HEATMAP_UNITS = 64  # at most this many units (the most informative) in the heatmap
DESCRIBED = 8  # neurons described by name
GRIDS = 3  # neurons shown with image grids: informative ones with different profiles
GRID_IMAGES = 24  # images per grid
SECTIONS = ("summary", "curves", "dynamics", "semantics", "memory")
_BLUE, _AMBER, _RED = "#3b4cc0", "#e8a33d", "#b40426"  # 0, in between, 1 (as in the heatmap)


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


# -- figures ------------------------------------------------------------------------


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout=layout)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plain_log_ticks(ax) -> None:
    # "2" and "0.003" rather than 2x10^0 and 3x10^-3; minor labels only within a decade.
    from matplotlib.ticker import FuncFormatter, NullFormatter

    lo, hi = ax.get_ylim()
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if lo > 0 and hi / lo < 10 else NullFormatter())


def _phase_line(ax, cfg) -> None:
    if cfg.finetune_epochs and cfg.epochs:
        ax.axvline(cfg.epochs, color="0.6", ls="--", lw=0.8)


def curves_figure(metrics: list[dict], dyn: list[dict], cfg) -> str:
    fig = _figure(13, 3.4)
    ax_loss, ax_acc, ax_sched = fig.subplots(1, 3)
    if dyn:
        ax_loss.plot([r["epoch"] for r in dyn], [r["loss"] for r in dyn], color="0.7", lw=0.8, label="batch loss")
        ax_acc.plot([r["epoch"] for r in dyn], [r["acc"] for r in dyn], color="C0", lw=0.7, alpha=0.45,
                    label="training form, held-out batch")  # fmt: skip
        if any(r["acc_binary"] is not None for r in dyn):
            ax_acc.plot([r["epoch"] for r in dyn], [r["acc_binary"] for r in dyn], color=_RED, lw=0.7, alpha=0.45,
                        label="binary, held-out batch")  # fmt: skip
        ax_sched.step([r["epoch"] for r in dyn], [r["lr"] for r in dyn], where="post", color="C2", label="lr")
        ax_g = ax_sched.twinx()
        ax_g.step([r["epoch"] for r in dyn], [r["growth"] for r in dyn], where="post", color="C4", label="growth")
        ax_g.set_yscale("log")
        _plain_log_ticks(ax_g)
        ax_g.set_ylabel("growth strength", color="C4")
        ax_sched.set_ylabel("learning rate", color="C2")
    if metrics:
        ep = [m["epoch"] for m in metrics]
        mid = [e - 0.5 for e in ep]  # a mean over the epoch sits in its middle
        ax_loss.plot(mid, [m["train_loss"] for m in metrics], "o-", color="k", ms=3, label="epoch mean")
        ax_acc.plot(ep, [m.get("test_acc") for m in metrics], "o-", color="C0", ms=3, label="training form, test")
        if any(m.get("test_acc_binary") is not None for m in metrics):
            ax_acc.plot(ep, [m.get("test_acc_binary") for m in metrics], "s-", color=_RED, ms=3,
                        label="deployed binary, test")  # fmt: skip
    ax_loss.set(title="task loss", xlabel="epoch")
    ax_acc.set(title="accuracy: training form vs deployed binary", xlabel="epoch", ylim=(0, 1.02))
    ax_sched.set(title="learning rate and growth", xlabel="epoch")
    if dyn:
        ax_sched.set_yscale("log")
        _plain_log_ticks(ax_sched)
    for ax in (ax_loss, ax_acc, ax_sched):
        _phase_line(ax, cfg)
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8, loc="lower right")
    return _png(fig)


def dynamics_figure(dyn: list[dict], layers: list[str], cfg) -> str:
    fig = _figure(13, 2.6 * len(layers) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(layers), 3, squeeze=False))
    x = np.array([r["epoch"] for r in dyn])
    for (ax_s, ax_b, ax_f), name in zip(axes, layers):
        stats = [r["layers"].get(name, {}) for r in dyn]
        q = [s.get("slope_quantiles") for s in stats]
        if any(v is not None for v in q):
            q = np.array([v if v is not None else [np.nan] * 7 for v in q])
            ax_s.fill_between(x, q[:, 0], q[:, 6], color="C0", alpha=0.12, label="min-max")
            ax_s.fill_between(x, q[:, 1], q[:, 5], color="C0", alpha=0.22, label="10-90%")
            ax_s.fill_between(x, q[:, 2], q[:, 4], color="C0", alpha=0.4, label="25-75%")
            ax_s.plot(x, q[:, 3], color="C0", label="median")
            ax_s.set_yscale("log")
            _plain_log_ticks(ax_s)
            ax_s.legend(fontsize=7, loc="upper left")
        else:
            ax_s.text(0.5, 0.5, "no slope in this method", ha="center", va="center", transform=ax_s.transAxes)
        shares = np.array([[s.get(k, np.nan) for k in ("zero", "between", "one")] for s in stats], dtype=float)
        ax_b.stackplot(x, shares.T, colors=[_BLUE, _AMBER, _RED], labels=["exactly 0", "in between", "exactly 1"])
        ax_b.set_ylim(0, 1)
        ax_b.legend(fontsize=7, loc="lower left")
        flips = np.array([np.nan if s.get("flip") is None else s["flip"] for s in stats], dtype=float)
        ax_f.plot(x, flips, color="k", lw=0.8)
        ax_s.set(title=f"layer {name}: slopes", ylabel="slope")
        ax_b.set(title=f"layer {name}: shares of outputs")
        ax_f.set(title=f"layer {name}: bits flipped since last record", ylim=(0, None))
        for ax in (ax_s, ax_b, ax_f):
            _phase_line(ax, cfg)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    return _png(fig)


def heatmap_figure(sem: dict, class_names, shape=()) -> str:
    rates = sem["rates"][np.ix_(sem["class_order"], sem["heatmap_units"])]
    units = sem["heatmap_units"]
    fig = _figure(min(14, 3 + 0.19 * len(units)), 1.6 + 0.32 * len(rates))
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="coolwarm", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(rates)), [class_names[c] for c in sem["class_order"]])
    ax.set_xticks(range(len(units)), [analysis.unit_name(int(u), shape) for u in units], rotation=90, fontsize=7)
    ax.set_xlabel("unit (the most informative, clustered)")
    fig.colorbar(im, ax=ax, label="firing rate P(bit = 1 | class)", shrink=0.9)
    return _png(fig)


def mi_figure(sem: dict) -> str:
    mi = np.sort(sem["mi"])[::-1]
    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    ax.plot(np.arange(1, len(mi) + 1), mi, color="C0")
    ax.axhline(min(1.0, sem["label_entropy"]), color="0.5", ls="--", lw=0.8, label="upper bound min(1, H(label))")
    ax.set(title=f"I(bit; label) per unit, sorted ({len(mi)} units)", xlabel="rank", ylabel="bits", ylim=(0, None))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _image(x: torch.Tensor, ds) -> np.ndarray:
    base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
    mean, std = getattr(base, "mean", None), getattr(base, "std", None)
    x = x.float()
    if mean is not None and std is not None:
        x = x * std + mean
    else:
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-8)
    img = x.clamp(0, 1).permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[2] == 1 else img


def _mosaic(images: list[np.ndarray], cols: int, pad: int, band: int) -> np.ndarray:
    """Tiles on a white canvas, ``band`` pixels above each for its title; one imshow
    instead of one axes per image (matplotlib lays out dozens of axes slowly)."""
    h, w = images[0].shape[:2]
    rows = max(1, math.ceil(len(images) / cols))
    canvas = np.ones((rows * (h + band + pad), cols * (w + pad), *images[0].shape[2:]))
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        y, x = r * (h + band + pad) + band, c * (w + pad)
        canvas[y : y + h, x : x + w] = img
    return canvas


def grid_figure(sem: dict, unit: int, class_names, shape=(), seed: int = 0) -> str:
    """Images on which ``unit`` fires, and on which it stays silent (random picks, seeded)."""
    ds, col = sem["dataset"], sem["bits"][:, unit]
    rng = np.random.default_rng(seed + unit)
    cols = 8
    rows = math.ceil(GRID_IMAGES / cols)
    fig = _figure(13, 0.45 + 1.05 * rows, layout=None)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.01, top=1 - 0.4 / fig.get_figheight(), wspace=0.03)
    for ax, value, label in zip(fig.subplots(1, 2), (1, 0), ("fires (bit = 1)", "silent (bit = 0)")):
        ax.set_axis_off()
        where = np.flatnonzero(col == value)
        pick = np.sort(rng.choice(where, min(GRID_IMAGES, len(where)), replace=False)) if len(where) else []
        name = analysis.unit_name(unit, shape)
        ax.set_title(f"unit {name}: {label} on {len(where)} of {len(col)} items", fontsize=10)
        if not len(pick):
            continue
        items = [ds[int(i)] for i in pick]
        images = [_image(x, ds) for x, _ in items]
        h, w = images[0].shape[:2]
        pad, band = max(1, w // 10), max(2, round(0.3 * h))
        canvas = _mosaic(images, cols, pad, band)
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
        ax.set_xlim(-0.5, cols * (w + pad) - 0.5)
        ax.set_ylim(rows * (h + band + pad) - 0.5, -0.5)
        for k, (_, y) in enumerate(items):
            r, c = divmod(k, cols)
            ax.text(c * (w + pad) + w / 2, r * (h + band + pad) + band * 0.55, class_names[int(y)],
                    ha="center", va="center", fontsize=8)  # fmt: skip
    return _png(fig)


def memory_figure(rows) -> str:
    acts = [r for r in rows if r.activation]
    fig = _figure(6.5, 0.8 + 0.32 * max(len(acts), 1))
    ax = fig.subplots()
    y = np.arange(len(acts))
    ax.barh(y - 0.2, [r.float_bits for r in acts], 0.4, color="0.6", label="float32")
    ax.barh(y + 0.2, [r.deploy_bits for r in acts], 0.4, color=_RED, label="deployed")
    ax.set_yticks(y, [r.name for r in acts])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set(xlabel="bits per example", title="hidden representations")
    ax.legend(fontsize=8)
    return _png(fig)


# -- page ---------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1320px;margin:0 auto;padding:0 24px 48px}
header{border-bottom:1px solid #ddd;margin-bottom:8px}h1{font-size:22px;margin:18px 0 4px}
nav a{margin-right:14px;color:#3b4cc0;text-decoration:none}h2{margin-top:34px;border-bottom:1px solid #eee}
figure{margin:14px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:10px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}ul.headline li{margin:3px 0}.note{color:#666}
code{background:#f4f4f4;padding:0 3px}.rate{font-size:11px;min-width:30px}
"""


def _esc(v) -> str:
    return html.escape(str(v))


def _img(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")  # fmt: skip


def _table(head: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(c if isinstance(c, _Raw) else f'<td class="{"l" if i < left else ""}">{_esc(c)}</td>'
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table><tr>{th}</tr>{body}</table>"


class _Raw(str):
    """A table cell already rendered as HTML."""


def _rate_cell(rate: float) -> _Raw:
    from matplotlib import colormaps, colors

    if rate != rate:  # NaN: a class with no items
        return _Raw('<td class="rate">-</td>')
    bg = colors.to_hex(colormaps["coolwarm"](rate))
    fg = "#fff" if abs(rate - 0.5) > 0.3 else "#000"
    return _Raw(f'<td class="rate" style="background:{bg};color:{fg}">{rate:.2f}</td>')


def _clean(v):
    """JSON-safe: numpy scalars and arrays to Python, NaN and inf to None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def build_report(run_dir, layer: str | None = None, split: str = "test", limit: int | None = None,
                 neurons: list[int] | None = None) -> tuple[str, dict]:  # fmt: skip
    """The page for the run in ``run_dir`` and the numbers it embeds as ``report-data``.

    ``layer``: the step layer whose neuron semantics are shown (default: the last one);
    ``split``/``limit``: the items used for them; ``neurons``: units shown with image
    grids (default: the most informative)."""
    started = time.perf_counter()
    run = load_run(run_dir)
    cfg, names = run.config, run.class_names
    steps = analysis.step_layers(run.deployed)
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
        "epochs": [cfg.epochs, cfg.finetune_epochs], "accuracy": {"train_form": train_acc, "binary": bin_acc},
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
        sem = analysis.layer_semantics(run.deployed, layer or steps[-1], ds, names,
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
    return page, _clean(data)


def _page(run: Run, data: dict, sem: dict, body: list[str]) -> str:
    title = f"abrnet report: {run.dir.resolve().name}"
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    blob = json.dumps(_clean(data), allow_nan=False).replace("</", "<\\/")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style></head><body><header><h1>{_esc(title)}</h1><nav>{nav}</nav></header>"
        + _summary_section(run, data, sem) + "".join(body)
        + f'<script type="application/json" id="report-data">{blob}</script></body></html>\n'
    )  # fmt: skip


def _summary_section(run: Run, data: dict, sem: dict) -> str:
    cfg, acc, mem = run.config, data["accuracy"], data["memory"]
    items = [
        f"run <code>{_esc(run.dir)}</code>: recipe {_esc(cfg.recipe)}, {_esc(cfg.model)} on {_esc(cfg.dataset)}, "
        f"method {_esc(cfg.method)}, {cfg.epochs} + {cfg.finetune_epochs} epochs",
        f"test accuracy: training form <b>{_pct(acc['train_form'])}</b>, deployed binary network "
        f"<b>{_pct(acc['binary'])}</b>",
    ]
    if data["binary_share"] is not None:
        items.append(f"outputs of the training form (ABR) already exactly 0 or 1 after the last epoch, on test "
                     f"batches: {_pct(data['binary_share'])}")  # fmt: skip
    items.append(f"hidden representations: {mem['hidden_float32_bits']:,} bits float32 &rarr; "
                 f"{mem['hidden_binary_bits']:,} bits binary per example (<b>{mem['ratio']:.1f}x</b> smaller)")  # fmt: skip
    if sem:
        s = data["semantics"]
        items.append(f"layer <code>{_esc(s['layer'])}</code>: {s['units']:,} bits over {s['items']:,} {s['split']} "
                     f"items; {s['dead']} dead, {s['always_on']} always on; mean I(bit; label) "
                     f"{s['mi_mean']:.3f} bits")  # fmt: skip
        items.append("three informative neurons that split the classes differently:<ul>"
                     + "".join(f"<li>{_esc(n)}</li>" for n in sem["distinct"]) + "</ul>")  # fmt: skip
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
    return f'<section id="curves"><h2>Training curves</h2>{_img(curves_figure(metrics, dyn, cfg), "training curves", cap)}</section>'


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
        rows.append([n, "-" if q is None else f"{q[3]:.3g}", _pct(f["zero"]), _pct(f["between"]), _pct(f["one"]),
                     _pct(f["flip"])])  # fmt: skip
    table = _table(["layer", "median slope", "exactly 0", "in between", "exactly 1", "flipped"], rows)
    return (head + f"<p>Last record (step {dyn[-1]['step']}):</p>" + table
            + _img(dynamics_figure(dyn, layers, cfg), "binarization dynamics", cap) + "</section>")  # fmt: skip


def _semantics_section(sem: dict, s: dict | None, names, input_shape) -> str:
    head = '<section id="semantics"><h2>Neuron semantics</h2>'
    if not sem:
        return head + '<p class="note">the deployed network has no binary layer</p></section>'
    parts = [head, f"<p>Layer <code>{_esc(s['layer'])}</code> (shape {s['shape']}, {s['units']:,} bits), over "
             f"the first {s['items']:,} {s['split']} items. Dead bits (never 1): <b>{s['dead']}</b>; always-on "
             f"bits: <b>{s['always_on']}</b>.</p>"]  # fmt: skip
    parts.append(_img(heatmap_figure(sem, names, s["shape"]), "firing-rate heatmap",
                      f"Firing rate of each unit on each class (red: fires, blue: inhibited). The "
                      f"{len(sem['heatmap_units'])} units with the most mutual information with the label; units and "
                      f"classes ordered by hierarchical clustering, so that alike ones sit together."))  # fmt: skip
    rate_head = [str(n) for n in names] if len(names) <= 20 else []
    rows = []
    for nrn in sem["described"]:
        cells = [_rate_cell(r) for r in nrn.rates] if rate_head else []
        rows.append([analysis.unit_name(nrn.unit, s["shape"]), f"{nrn.mi:.3f}", ", ".join(nrn.fires_on) or "-",
                     ", ".join(nrn.silent_on) or "-", *cells])  # fmt: skip
    parts.append("<h3>The most informative neurons</h3><p>Fires on: rate &ge; 0.8; inhibited on: rate &le; 0.2.</p>")
    parts.append(_table(["unit", "I(bit; label)", "fires on", "inhibited on", *rate_head], rows, left=1))
    parts.append(_img(mi_figure(sem), "mutual information", "Mutual information between each bit and the label "
                      "(plug-in estimate from the counts), all units, highest first."))  # fmt: skip
    if len(input_shape) == 3 and input_shape[0] in (1, 3):
        parts.append("<h3>Images on which a neuron fires, and on which it stays silent</h3><p>Informative neurons "
                     "that split the classes differently (choose others with <code>--neurons</code>).</p>")  # fmt: skip
        for j in sem["grid_units"]:
            cap = (f"Unit {analysis.unit_name(j, s['shape'])}: random {s['split']} images with the bit at 1 (left) "
                   f"and at 0 (right), titled with their class.")  # fmt: skip
            parts.append(_img(grid_figure(sem, j, names, s["shape"]), f"images for unit {j}", cap))
    return "".join(parts) + "</section>"


def _memory_section(mem) -> str:
    rows = [[r.name + (" *" if r.activation else ""), r.kind, "x".join(map(str, r.shape)), f"{r.float_bits:,}",
             f"{r.deploy_bits:,}"] for r in mem.rows]  # fmt: skip
    rows.append(["hidden representations (*)", "", "", f"{mem.hidden_float_bits:,}", f"{mem.hidden_binary_bits:,}"])
    rows.append(["all layer outputs", "", "", f"{mem.all_float_bits:,}", f"{mem.all_deploy_bits:,}"])
    table = _table(["layer", "kind", "output shape", "float32 bits", "deployed bits"], rows, left=2)
    text = (f"<p>Activation bits per example (<code>abrnet.summary</code> of the deployed network): hidden "
            f"representations take {mem.hidden_float_bits:,} bits in float32 and {mem.hidden_binary_bits:,} bits "
            f"once binary, a ratio of <b>{mem.ratio:.1f}x</b>.</p>")  # fmt: skip
    fig = _img(memory_figure(mem.rows), "activation memory", "Bits per example of each hidden representation.")
    return f'<section id="memory"><h2>Memory</h2>{text}{table}{fig}</section>'


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
