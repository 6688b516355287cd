"""BinaryInputLinear (table lookup) against F.linear on the same 0/1 inputs, one run.

    python benchmarks/bench_binary_linear.py                # K = N = 4096, 1 thread, g = 4 and 8
    python benchmarks/bench_binary_linear.py --quick        # batches 1, 8, 64 only

All methods are timed in turn, in a fresh random order, inside each repeat, so a noisy
neighbour slows them alike. Each method cycles through its own random inputs, as a
layer in a network sees a new input every call: a repeated input would find its table
rows still in the CPU's cache and flatter the table.
Columns: ``dense`` is ``F.linear(x, W, b)`` on 0/1 float32; ``table`` forces the lookup
at every batch (float input, grouped inside the call; ``packed``: uint8 input packed
beforehand); ``layer`` is the layer as shipped, falling back to dense from its default
``dense_batch`` (float input; ``layer packed`` unpacks inside the call). Ratios are dense
time over method time within one round, the median over rounds (pairing the times cancels
load that changes between rounds): above 1 is faster than F.linear. Times are medians.

With one thread all the work runs on the calling thread, so the default clock is that
thread's CPU time (``time.thread_time``): on a shared machine, time spent preempted by
other processes is not counted. ``--clock wall`` times elapsed seconds instead.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import os
import platform
import random
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from abrnet.codes.deploy import BinaryInputLinear
from abrnet.codes.packing import pack
from abrnet.compare.provenance import cpu_model


def machine() -> str:
    return f"{cpu_model()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, {platform.system()}, load average {os.getloadavg()[0]:.1f}"


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def timed(fn) -> float:
    t = clock()
    fn()
    return clock() - t


def measure(methods: dict, budget_s: float, min_repeats: int, max_repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each method, timed in interleaved rounds."""
    for fn in methods.values():  # warm up: first touches of the table, allocator
        fn()
    first = sum(timed(fn) for fn in methods.values())
    repeats = max(min_repeats, min(max_repeats, int(budget_s / max(first, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in methods}
    order = list(methods)
    for _ in range(repeats):
        random.shuffle(order)  # no method always runs first, after another has evicted the cache
        for name in order:
            times[name].append(timed(methods[name]))
    return times


def random_inputs(pool: int, batch: int, k: int, packed: bool = False) -> list[torch.Tensor]:
    xs = [(torch.rand(batch, k) > 0.5).float() for _ in range(pool)]
    return [torch.from_numpy(pack(x)) for x in xs] if packed else xs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batches", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--groups", default="4,8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timing per batch size")
    p.add_argument("--min-repeats", type=int, default=7)
    p.add_argument("--clock", choices=CLOCKS, default="cpu", help="cpu: this thread's CPU time; wall: elapsed")
    p.add_argument("--quick", action="store_true", help="batches 1, 8, 64 and a smaller budget")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.threads > 1 and args.clock == "cpu":
        p.error("--clock cpu counts this thread only: use --clock wall with --threads > 1")
    if args.quick:
        args.batches, args.budget = "1,8,64", 1.0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    groups = [int(g) for g in args.groups.split(",")]
    linear = torch.nn.Linear(args.k, args.n)
    w, b = linear.weight.detach(), linear.bias.detach()
    layers = {g: BinaryInputLinear.from_linear(linear, group_bits=g) for g in groups}
    shipped = {g: layer.dense_batch for g, layer in layers.items()}

    def call(fn, inputs, *args):
        cycle = itertools.cycle(inputs)

        def run():
            return fn(next(cycle), *args)

        return run

    def lookup(layer, dense_batch):
        def fn(x):
            layer.dense_batch = dense_batch
            return layer(x)

        return fn

    rows = []
    with torch.inference_mode():
        for bs in batches:
            pool = max(4, 64 // bs)
            inputs = functools.partial(random_inputs, pool, bs, args.k)
            methods = {"dense": call(F.linear, inputs(), w, b)}
            x = inputs()[0]
            for g, layer in layers.items():
                err = (lookup(layer, 10**9)(x) - F.linear(x, w, b)).abs().max().item()
                assert err < 1e-3, f"g={g}: max error {err}"
                methods[f"table g{g}"] = call(lookup(layer, 10**9), inputs())
                methods[f"table packed g{g}"] = call(lookup(layer, 10**9), inputs(True))
                methods[f"layer g{g}"] = call(lookup(layer, shipped[g]), inputs())
                methods[f"layer packed g{g}"] = call(lookup(layer, shipped[g]), inputs(True))
            times = measure(methods, args.budget, args.min_repeats, 400)
            row = {"batch": bs, "repeats": len(times["dense"])}
            row.update({k: statistics.median(v) * 1e3 for k, v in times.items()})
            # Speed-up: median over rounds of dense time / method time in the same round.
            row.update({f"x {k}": statistics.median(np.divide(times["dense"], v)) for k, v in times.items()})
            rows.append(row)
    for layer, g in zip(layers.values(), groups):
        layer.dense_batch = shipped[g]

    cross = {}
    for g in groups:
        for key in (f"table g{g}", f"table packed g{g}"):
            slower = [r["batch"] for r in rows if r[f"x {key}"] <= 1]
            cross[key] = min(slower) if slower else None
    what = f"fresh inputs in turn, {args.clock} clock"
    print(f"# BinaryInputLinear vs F.linear, K={args.k}, N={args.n}, {what}; {machine()}; {datetime.date.today()}\n")
    for g, layer in layers.items():
        print(
            f"g={g}: table {layer.table_bytes / 2**20:.0f} MiB = {layer.table_ratio:.1f}x W "
            f"({layer.weight_bytes / 2**20:.0f} MiB); shipped dense_batch={shipped[g]}; "
            f"table slower than dense from batch {cross[f'table g{g}']} (float input), "
            f"{cross[f'table packed g{g}']} (packed input)"
        )
    print()
    head = ["batch", "F.linear ms"]
    for g in groups:
        head += [f"g{g} table ms", f"g{g} table x", f"g{g} packed x", f"g{g} layer x", f"g{g} layer packed x"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [str(r["batch"]), f"{r['dense']:.3f}"]
        for g in groups:
            cells.append(f"{r[f'table g{g}']:.3f}")
            cells += [f"{r[f'x {name} g{g}']:.2f}" for name in ("table", "table packed", "layer", "layer packed")]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        info = {
            "machine": machine(),
            "date": str(datetime.date.today()),
            "k": args.k,
            "clock": args.clock,
            "n": args.n,
            "dense_batch": shipped,
            "table_ratio": {g: layer.table_ratio for g, layer in layers.items()},
            "crossover": cross,
            "rows_ms": rows,
        }
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
