"""The report's figures: matplotlib, rendered off-screen to base64 PNGs."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch

from . import semantics

GRID_IMAGES = 24  # images per grid
_BLUE, _AMBER, _RED = "#3b4cc0", "#e8a33d", "#b40426"  # 0, in between, 1 (as in the heatmap)


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
    # dashed: fine-tuning starts; dotted: the frozen-step phase starts
    if cfg.finetune_epochs and cfg.epochs:
        ax.axvline(cfg.epochs, color="0.6", ls="--", lw=0.8)
    if getattr(cfg, "frozen_epochs", 0) and cfg.epochs + cfg.finetune_epochs:
        ax.axvline(cfg.epochs + cfg.finetune_epochs, color="0.6", ls=":", lw=0.8)


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
    ax.set_xticks(range(len(units)), [semantics.unit_name(int(u), shape) for u in units], rotation=90, fontsize=7)
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
        name = semantics.unit_name(unit, shape)
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
