"""Exact k-NN throughput: faiss binary flat (Hamming) against float32 torch matmul + topk.

    python benchmarks/bench_search.py                    # 64/256/4096 bits x 1e5 and 1e6 items
    python benchmarks/bench_search.py --quick            # 64/256 bits x 1e5 items

Both searches use the same number of threads (``--threads``, default 1; faiss through
``omp_set_num_threads``, torch through ``set_num_threads``) and the same dimension: d
bits against d float32 values, pre-normalised so the float search is cosine (``"ip"``
in ``abrnet.codes.search.float_search``). Queries are searched in one call; queries per second
are medians over ``--repeats`` calls, timed by default in this thread's CPU time, which
leaves out time preempted by other processes (one thread does all the work; use
``--clock wall`` with more threads). Float databases larger than ``--float-gb`` are
skipped (1e6 x 4096 float32 is 16 GB): the binary one is 32x smaller.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import time

import faiss
import numpy as np
import torch

from abrnet.codes.search import HammingIndex, float_search
from abrnet.compare.provenance import cpu_model


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", default="64,256,4096")
    p.add_argument("--items", default="100000,1000000")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--float-gb", type=float, default=2.0, help="largest float32 database to build")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="cpu: this thread's CPU time (1 thread)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    if args.quick:
        args.bits, args.items = "64,256", "100000"
    if args.threads > 1 and args.clock == "cpu":
        p.error("--clock cpu counts this thread only: use --clock wall with --threads > 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for d in (int(b) for b in args.bits.split(",")):
        for n in (int(float(i)) for i in args.items.split(",")):
            codes = rng.integers(0, 256, (n, d // 8), dtype=np.uint8)
            queries = rng.integers(0, 256, (args.queries, d // 8), dtype=np.uint8)
            index = HammingIndex(d)
            index.add(codes)
            del codes
            row = {"bits": d, "items": n, "binary_mb": n * d / 8 / 2**20, "float_mb": n * d * 4 / 2**20}
            search = functools.partial(index.search, queries, args.k)
            warm_up = functools.partial(index.search, queries[:4], args.k)
            row["binary_qps"] = qps(search, warm_up, args.queries, args.repeats, clock)
            del index, search, warm_up
            if n * d * 4 <= args.float_gb * 2**30:
                db = torch.nn.functional.normalize(torch.randn(n, d), dim=1)
                q = torch.nn.functional.normalize(torch.randn(args.queries, d), dim=1)
                search = functools.partial(float_search, db, q, args.k, metric="ip")
                warm_up = functools.partial(float_search, db, q[:4], args.k, metric="ip")
                row["float_qps"] = qps(search, warm_up, args.queries, args.repeats, clock)
                del db, search, warm_up
            else:
                row["float_qps"] = None
            rows.append(row)
            print(row, flush=True)
    print(
        f"\n# Exact top-{args.k} search, {args.queries} queries per call, {args.threads} thread(s), "
        f"{args.clock} clock; "
        f"{machine()}; {datetime.date.today()}\n"
    )
    print("| bits | items | binary MiB | float32 MiB | binary q/s | float32 q/s | binary / float |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f = r["float_qps"]
        ratio = f"{r['binary_qps'] / f:.1f}x" if f else "float skipped (memory)"
        fq = f"{f:,.0f}" if f else "-"
        print(
            f"| {r['bits']} | {r['items']:,} | {r['binary_mb']:,.0f} | {r['float_mb']:,.0f} | "
            f"{r['binary_qps']:,.0f} | {fq} | {ratio} |"
        )
    if args.json:
        info = {"machine": machine(), "date": str(datetime.date.today()), "threads": args.threads, "clock": args.clock}
        with open(args.json, "w") as f:
            json.dump({**info, "k": args.k, "queries": args.queries, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
