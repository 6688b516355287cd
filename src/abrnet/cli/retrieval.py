"""``abrnet retrieval RUN_DIR``: the standard retrieval protocol on a run's dataset.

Every test item queries the training items; an item is relevant when it has the
query's label. Three representations of one layer are ranked and scored with the same
tie-aware mAP, mAP@k and precision@k (:mod:`abrnet.retrieval`):

* ``binary``: the deployed network's step output, bit-packed, by Hamming distance;
* ``float``: the same step's input (its pre-activation, before binarization), by cosine;
* ``relu``: the ReLU baseline's activation output at the module of the same name, by
  cosine (when the run has a baseline).

It also measures bytes per item (packed against float32) and queries per second of
exact top-k search: a flat Hamming index against float32 matmul + topk at the same
dimension and number of threads. Results go to ``RUN_DIR/retrieval.json`` (for a
``--layer`` other than the default one, ``RUN_DIR/retrieval-LAYER.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ..errors import UserError

SCHEMA = "abrnet-retrieval-1"
MAP_GOAL, QPS_GOAL, MEMORY_GOAL = 0.95, 3.0, 32.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--layer", help="a Step layer of the deployed net (default: the last hidden one)")
    p.add_argument("--k", default="100,1000", metavar="K1,K2", help="cut-offs for mAP@k and P@k (default: 100,1000)")
    p.add_argument("--limit-db", type=int, metavar="N", help="use the first N training items as the database")
    p.add_argument("--limit-queries", type=int, metavar="N", help="use the first N test items as queries")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    p.add_argument("--no-baseline", action="store_true", help="skip the ReLU baseline's features")
    p.add_argument("--threads", type=int, default=1, help="threads for the speed measurement (default: 1)")
    p.add_argument("--clock", choices=("cpu", "wall"),
                   help="speed timing: this thread's CPU time (default with 1 thread) or wall clock (default otherwise)")  # fmt: skip
    p.add_argument("--speed-queries", type=int, default=1000, metavar="N",
                   help="queries timed in the speed measurement (default: 1000)")  # fmt: skip
    p.add_argument("--speed-k", type=int, default=100, help="k of the timed top-k search (default: 100)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default: 3)")
    p.add_argument("--device", default="auto", help="where the networks run (the search is timed on the CPU)")


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--k takes comma-separated positive integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k takes comma-separated positive integers, got {text!r}")
    return tuple(dict.fromkeys(ks))


def module_features(model, name: str, data, device) -> np.ndarray:
    """The output of ``model``'s module ``name`` over ``data``, flattened per item, float32."""
    import torch

    feats: list[np.ndarray] = []
    hook = model.get_submodule(name).register_forward_hook(
        lambda m, i, y: feats.append(y.detach().reshape(len(y), -1).float().cpu().numpy())
    )
    try:
        model.eval()
        with torch.no_grad():
            for x, _ in data:
                model(x.to(device))
    finally:
        hook.remove()
    return np.concatenate(feats)


def baseline_layer(baseline, layer: str) -> tuple[bool, str]:
    """Whether the baseline has a ReLU named ``layer``, and what to say about it."""
    modules = dict(baseline.named_modules())
    if layer not in modules:
        return False, f"the ReLU baseline has no module named {layer!r}: its features are skipped"
    kind = type(modules[layer]).__name__
    if kind != "ReLU":
        return False, f"the baseline's module {layer!r} is a {kind}, not a ReLU: its features are skipped"
    return True, f"output of the baseline's ReLU {layer!r}"


def measure_speed(db_packed, q_packed, db_float, q_float, dim: int, k: int, threads: int, clock: str, repeats: int):
    """Queries per second of exact top-``k``: flat Hamming index against float32
    ``float_search`` on pre-normalised features (cosine as ``"ip"``), same threads."""
    import faiss
    import torch

    from ..search import HammingIndex, float_search

    tick = time.thread_time if clock == "cpu" else time.perf_counter
    old_torch = torch.get_num_threads()
    old_faiss = faiss.omp_get_max_threads()
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    try:
        index = HammingIndex(dim)
        index.add(db_packed)
        db = torch.nn.functional.normalize(torch.from_numpy(db_float), dim=1)
        q = torch.nn.functional.normalize(torch.from_numpy(q_float), dim=1)
        k = min(k, len(db))

        def timed(fn) -> float:
            fn(4)  # warm up: page the database in, start the thread pools
            times = []
            for _ in range(repeats):
                t = tick()
                fn(None)
                times.append(tick() - t)
            return len(q_packed) / max(statistics.median(times), 1e-9)

        binary = timed(lambda n: index.search(q_packed[:n], k))
        stored = index.index.d // 8  # HammingIndex pads codes to 64-bit words
        floats = timed(lambda n: float_search(db, q[:n], k, metric="ip"))
    finally:
        torch.set_num_threads(old_torch)
        faiss.omp_set_num_threads(old_faiss)
    return {
        "k": k, "queries": len(q_packed), "threads": threads, "clock": clock, "repeats": repeats,
        "binary_qps": binary, "float_qps": floats, "ratio": binary / floats,
        "code_bytes": db_packed.shape[1], "stored_bytes": stored,
    }  # fmt: skip


def _row(name: str, res: dict | None, ks, note: str = "") -> str:
    if res is None:
        return f"  {name:<40} {note}"
    cells = [f"{res['mAP']:.4f}"] + [f"{res[f'{m}@{k}']:.4f}" for k in ks for m in ("mAP", "P")]
    return f"  {name:<40} " + "  ".join(f"{c:>8}" for c in cells)


def main(args: argparse.Namespace) -> int:
    from ..codes import pack, packed_bytes
    from ..engine import resolve_device
    from ..retrieval import evaluate_float_retrieval, evaluate_retrieval
    from ..run import load_run
    from .codes import check_layer, check_limit, data_loader, encode, padding_note, split_dataset

    ks = parse_ks(args.k)
    check_limit(args.limit_db, "--limit-db")
    check_limit(args.limit_queries, "--limit-queries")
    for name in ("threads", "speed_queries", "speed_k", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads > 1:
        raise UserError("--clock cpu counts this thread only: use --clock wall with --threads > 1")
    run = load_run(args.run_dir)
    layer = check_layer(run.deployed, args.layer)
    device = resolve_device(args.device)
    db_ds, q_ds = split_dataset(run, "train", args.limit_db), split_dataset(run, "test", args.limit_queries)
    t0 = time.perf_counter()
    db_bits, db_labels, db_float, float_bytes = encode(run, layer, db_ds, device, with_float=True)
    q_bits, q_labels, q_float, _ = encode(run, layer, q_ds, device, with_float=True)
    dim = db_bits.shape[1]
    db_packed, q_packed = pack(db_bits), pack(q_bits)
    del db_bits, q_bits
    relu_ok, relu_note = (False, "the run has no ReLU baseline") if run.baseline is None else (
        baseline_layer(run.baseline, layer))  # fmt: skip
    if args.no_baseline:
        relu_ok, relu_note = False, "skipped (--no-baseline)"
    if relu_ok:
        base = run.baseline.to(device)
        db_relu = module_features(base, layer, data_loader(run, db_ds, device), device)
        q_relu = module_features(base, layer, data_loader(run, q_ds, device), device)
    extract_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = {"binary": evaluate_retrieval(db_packed, db_labels, q_packed, q_labels, ks)}
    results["float"] = evaluate_float_retrieval(db_float, db_labels, q_float, q_labels, ks, metric="cosine")
    results["relu"] = (
        evaluate_float_retrieval(db_relu, db_labels, q_relu, q_labels, ks, metric="cosine") if relu_ok else None
    )
    metrics_s = time.perf_counter() - t0
    n_speed = min(args.speed_queries, len(q_packed))
    speed = measure_speed(db_packed, q_packed[:n_speed], db_float, q_float[:n_speed], dim, args.speed_k,
                          args.threads, clock, args.repeats)  # fmt: skip

    def ratio(other):
        return results["binary"]["mAP"] / other["mAP"] if other and other["mAP"] > 0 else None

    packed_per_item = db_packed.nbytes / len(db_packed)
    memory = {"packed": packed_per_item, "float32": float_bytes, "ratio": float_bytes / packed_per_item,
              "padding_bits": 8 * packed_bytes(dim) - dim}  # fmt: skip
    out = {
        "schema": SCHEMA,
        "run_dir": str(run.dir), "model": run.config.model, "dataset": run.config.dataset, "layer": layer,
        "bits": dim, "queries": len(q_packed), "database": len(db_packed), "k": list(ks),
        "protocol": "test items query the training items; relevant = same label; tie-aware AP (abrnet.retrieval)",
        "binary": {**results["binary"], "metric": "hamming", "features": "deployed step output, packed"},
        "float": {**results["float"], "metric": "cosine", "features": "the step's input (before binarization)"},
        "relu": None if results["relu"] is None else {**results["relu"], "metric": "cosine", "features": relu_note},
        "relu_note": relu_note,
        "ratio": {"binary_vs_float": ratio(results["float"]), "binary_vs_relu": ratio(results["relu"])},
        "bytes_per_item": memory,
        "speed": speed,
        "goals": {
            "map_95_of_float": None if ratio(results["float"]) is None else ratio(results["float"]) >= MAP_GOAL,
            "qps_3x_float": speed["ratio"] >= QPS_GOAL,
            "memory_32x": memory["ratio"] >= MEMORY_GOAL - 1e-9,
        },
        "seconds": {"extract": extract_s, "metrics": metrics_s},
        "date": str(datetime.date.today()),
        "load_average": os.getloadavg()[0],
    }  # fmt: skip
    default = check_layer(run.deployed, None)
    path = run.dir / ("retrieval.json" if layer == default else f"retrieval-{layer.replace('/', '_')}.json")
    text = json.dumps(out, indent=1)
    path.write_text(text + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")

    print(f"retrieval: {run.config.model} on {run.config.dataset}, layer {layer!r} ({dim} bits); "
          f"{len(q_packed):,} test queries against {len(db_packed):,} training items, relevant = same label")  # fmt: skip
    header = ["mAP"] + [f"{m}@{k}" for k in ks for m in ("mAP", "P")]
    print(f"  {'(tie-aware)':<40} " + "  ".join(f"{h:>8}" for h in header))
    print(_row("binary codes, Hamming", results["binary"], ks))
    print(_row("float, same layer before the step, cosine", results["float"], ks))
    print(_row("ReLU baseline features, cosine", results["relu"], ks, relu_note))
    r = out["ratio"]
    if r["binary_vs_float"] is not None:
        met = "met" if r["binary_vs_float"] >= MAP_GOAL else "not met"
        print(f"  binary / float mAP: {r['binary_vs_float']:.3f} (goal >= {MAP_GOAL}: {met})")
    if r["binary_vs_relu"] is not None:
        print(f"  binary / ReLU mAP:  {r['binary_vs_relu']:.3f}")
    print(f"  bytes per item: packed {memory['packed']:g}, float32 {memory['float32']:g} "
          f"({memory['ratio']:.1f}x less; {padding_note(dim)})")  # fmt: skip
    met = "met" if speed["ratio"] >= QPS_GOAL else "not met"
    print(f"  exact top-{speed['k']} search, {speed['queries']:,} queries, {args.threads} thread(s), {clock} clock: "
          f"Hamming {speed['binary_qps']:,.0f} q/s ({speed['code_bytes']}-byte codes stored in "
          f"{speed['stored_bytes']}), float32 {speed['float_qps']:,.0f} q/s "
          f"({speed['ratio']:.1f}x; goal >= {QPS_GOAL:g}x: {met})")  # fmt: skip
    print(f"  wrote {path}" + (f" and {args.json}" if args.json is not None else ""))
    return 0
