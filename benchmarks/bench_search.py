"""How k-NN search cost grows with the database: faiss binary flat (exact Hamming) and
HNSW (approximate), against float32 torch matmul + topk.

    python benchmarks/bench_search.py                    # 64/256/1024 bits x 1e4..1e7 items
    python benchmarks/bench_search.py --quick            # 64/256 bits x 1e4, 1e5 items
    python benchmarks/bench_search.py --json docs/results/search-sweep.json

For each width and database size it builds each index (build time, memory as faiss
serialises it), then searches the same queries: queries per second (median over
``--repeats`` calls) and, for HNSW, recall@k against the exact flat search, counted
with ties (an HNSW hit counts when its distance is within the flat k-th distance, since
many codes share a Hamming distance). The float32 search runs on d float values per
item, pre-normalised (cosine as inner product), up to ``--float-gb``; HNSW is built up
to ``--hnsw-items`` (its build is the slow part: minutes per million on one core).

The codes are clustered, not uniform: ``--clusters`` random centres, each item a centre
with each bit flipped with probability ``--flip``, and the queries drawn the same way.
Uniform random codes have no neighbours to find (every distance is near d/2), which no
real code set looks like. All timing runs in ``--threads`` threads (default 1), on this
thread's CPU clock by default, which leaves out time other processes take.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import sys
import time

import faiss
import numpy as np
import torch

from abrnet.codes.search import HammingIndex, float_search
from abrnet.compare.provenance import cpu_model

SCHEMA = "abrnet-search-sweep-1"


def machine() -> str:
    return f"{cpu_model()}, torch {torch.__version__}, faiss {faiss.__version__}, load average {os.getloadavg()[0]:.1f}"


def qps(fn, warm_up, queries: int, repeats: int, clock) -> float:
    warm_up()  # a few queries: page in the database, start the thread pools
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return queries / statistics.median(times)


def clustered_codes(rng, centres: np.ndarray, n: int, flip: float, chunk: int = 1 << 18) -> np.ndarray:
    """``n`` packed codes: a random centre each, every bit flipped with probability ``flip``."""
    bits = centres.shape[1] * 8
    out = np.empty((n, centres.shape[1]), dtype=np.uint8)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        noise = np.packbits(rng.random((m, bits), dtype=np.float32) < flip, axis=1)
        out[start : start + m] = centres[rng.integers(0, len(centres), m)] ^ noise
    return out


def recall_at_k(flat_d: np.ndarray, approx_d: np.ndarray, approx_i: np.ndarray) -> float:
    """Share of the approximate top-k within the exact k-th distance (ties count as hits)."""
    kth = flat_d[:, -1:]
    hits = (approx_d <= kth) & (approx_i >= 0)
    return float(hits.sum(1).clip(max=flat_d.shape[1]).mean() / flat_d.shape[1])


def serialized_mb(index: HammingIndex) -> float:
    return faiss.serialize_index_binary(index.index).nbytes / 2**20


def timed(fn, clock) -> float:
    t = clock()
    fn()
    return clock() - t


def one_size(args, rng, d: int, n: int, clock) -> dict:
    centres = rng.integers(0, 256, (args.clusters, d // 8), dtype=np.uint8)
    codes = clustered_codes(rng, centres, n, args.flip)
    queries = clustered_codes(rng, centres, args.queries, args.flip)
    row = {"bits": d, "items": n, "codes_mb": n * d / 8 / 2**20}
    kinds = (
        {"flat": {}}
        if n > args.hnsw_items
        else {"flat": {}, "hnsw": {"hnsw_m": args.hnsw_m, "ef_search": args.ef_search}}
    )
    found = {}
    for kind, kw in kinds.items():
        index = HammingIndex(d, kind=kind, **kw)
        row[f"{kind}_build_s"] = timed(functools.partial(index.add, codes), clock)
        row[f"{kind}_mb"] = serialized_mb(index)
        search = functools.partial(index.search, queries, args.k)
        row[f"{kind}_qps"] = qps(
            search, functools.partial(index.search, queries[:4], args.k), args.queries, args.repeats, clock
        )
        found[kind] = index.search(queries, args.k)
        del index, search
    if "hnsw" in found:
        row["hnsw_recall"] = recall_at_k(found["flat"][0], *found["hnsw"])
    del codes
    row["float_mb"] = n * d * 4 / 2**20
    if n * d * 4 <= args.float_gb * 2**30:
        # matmul + topk costs the same whatever the values: random unit vectors
        db = torch.nn.functional.normalize(torch.randn(n, d), dim=1)
        q = torch.nn.functional.normalize(torch.randn(args.queries, d), dim=1)
        search = functools.partial(float_search, db, q, args.k, metric="ip")
        row["float_qps"] = qps(search, functools.partial(float_search, db, q[:4], args.k, metric="ip"),
                               args.queries, args.repeats, clock)  # fmt: skip
        del db, search
    return row


def plot(sweep: dict, path) -> None:
    """Queries per second against database size, one panel per code width: flat, HNSW
    (its recall@k written at each point) and float32."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["bits"] for r in sweep["rows"]})
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.6), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], widths):
        rows = sorted((r for r in sweep["rows"] if r["bits"] == d), key=lambda r: r["items"])
        for key, label, style in (
            ("flat", "flat (exact)", "o-"),
            ("hnsw", "HNSW", "s-"),
            ("float", "float32 (exact)", "^--"),
        ):
            pts = [(r["items"], r[f"{key}_qps"]) for r in rows if r.get(f"{key}_qps")]
            if pts:
                ax.plot(*zip(*pts), style, label=label)
        for r in rows:
            if r.get("hnsw_recall") is not None:
                ax.annotate(f"{r['hnsw_recall']:.2f}", (r["items"], r["hnsw_qps"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="database items", title=f"{d}-bit codes")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("queries / s (1 thread)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"top-{sweep['k']} search; HNSW recall@{sweep['k']} against flat at each point", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    def num(v, fmt="{:,.0f}"):
        return "-" if v is None else fmt.format(v)

    lines = [
        "| bits | items | flat q/s | HNSW q/s | HNSW recall@k | float32 q/s | flat build s | HNSW build s "
        "| flat MiB | HNSW MiB | float32 MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bits']} | {r['items']:,} | {num(r['flat_qps'])} | {num(r.get('hnsw_qps'))} | "
            f"{num(r.get('hnsw_recall'), '{:.3f}')} | {num(r.get('float_qps'))} | {num(r['flat_build_s'], '{:.2f}')} | "
            f"{num(r.get('hnsw_build_s'), '{:.1f}')} | {num(r['flat_mb'], '{:,.1f}')} | "
            f"{num(r.get('hnsw_mb'), '{:,.1f}')} | {num(r['float_mb'], '{:,.0f}')} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", default="64,256,1024")
    p.add_argument("--items", default="1e4,1e5,1e6,1e7")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--float-gb", type=float, default=2.0, help="largest float32 database to build")
    p.add_argument("--hnsw-items", type=float, default=1e6, help="largest database to build HNSW for")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-search", type=int, default=64)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--flip", type=float, default=0.1, help="bit flip probability around a centre")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="cpu: this thread's CPU time (1 thread)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH")
    p.add_argument(
        "--plot", metavar="PNG", help="also draw the curves (docs/results/render.py redraws them from the JSON)"
    )
    args = p.parse_args()
    if args.quick:
        args.bits, args.items = "64,256", "1e4,1e5"
    if args.threads > 1 and args.clock == "cpu":
        p.error("--clock cpu counts this thread only: use --clock wall with --threads > 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    info = {"schema": SCHEMA, "command": "python benchmarks/bench_search.py " + " ".join(sys.argv[1:]), "machine": machine(), "date": str(datetime.date.today()), "threads": args.threads, "clock": args.clock,
            "k": args.k, "queries": args.queries, "clusters": args.clusters, "flip": args.flip,
            "hnsw_m": args.hnsw_m, "ef_search": args.ef_search}  # fmt: skip
    for d in (int(b) for b in args.bits.split(",")):
        for n in (int(float(i)) for i in args.items.split(",")):
            rows.append(one_size(args, rng, d, n, clock))
            print(rows[-1], flush=True)
            if args.json:  # after every row: a long sweep keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({**info, "rows": rows}, f, indent=1)
    print(f"\n# top-{args.k}, {args.queries} queries, {args.threads} thread(s), {args.clock} clock; {machine()}\n")
    print(table(rows))
    if args.plot:
        plot({**info, "rows": rows}, args.plot)


if __name__ == "__main__":
    main()
