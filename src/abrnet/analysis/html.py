"""HTML building blocks of the report page: escaping, figures, tables, coloured cells
and JSON-safe values. No numbers are computed here."""

from __future__ import annotations

import html
import math

import numpy as np

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1320px;margin:0 auto;padding:0 24px 48px}
header{border-bottom:1px solid #ddd;margin-bottom:8px}h1{font-size:22px;margin:18px 0 4px}
nav a{margin-right:14px;color:#3b4cc0;text-decoration:none}h2{margin-top:34px;border-bottom:1px solid #eee}
figure{margin:14px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:10px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}ul.headline li{margin:3px 0}.note{color:#666}
code{background:#f4f4f4;padding:0 3px}.rate{font-size:11px;min-width:30px}
"""


def esc(v) -> str:
    return html.escape(str(v))


def img(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")  # fmt: skip


def table(head: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(c if isinstance(c, Raw) else f'<td class="{"l" if i < left else ""}">{esc(c)}</td>'
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table><tr>{th}</tr>{body}</table>"


class Raw(str):
    """A table cell already rendered as HTML."""


def rate_cell(rate: float) -> Raw:
    from matplotlib import colormaps, colors

    if rate != rate:  # NaN: a class with no items
        return Raw('<td class="rate">-</td>')
    bg = colors.to_hex(colormaps["coolwarm"](rate))
    fg = "#fff" if abs(rate - 0.5) > 0.3 else "#000"
    return Raw(f'<td class="rate" style="background:{bg};color:{fg}">{rate:.2f}</td>')


def clean(v):
    """JSON-safe: numpy scalars and arrays to Python, NaN and inf to None."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [clean(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
