"""The retrieval protocol on a run's dataset: what ``abrnet retrieval`` computes.

Every test item queries the training items; an item is relevant when it has the
query's label. Three representations of one layer are ranked and scored with the same
tie-aware mAP, mAP@k and precision@k (:mod:`abrnet.codes.retrieval`):

* ``binary``: the deployed network's step output, bit-packed, by Hamming distance;
* ``float``: the same step's input (its pre-activation, before binarization), by cosine;
* ``relu``: the ReLU baseline's activation output at the module of the same name, by
  cosine (when the run has a baseline).

:func:`run_retrieval` also measures bytes per item (packed against float32) and, with
:func:`measure_speed`, queries per second of exact top-k search: a flat Hamming index
against float32 matmul + topk at the same dimension and number of threads.
"""

from __future__ import annotations

import datetime
import os
import statistics
import time

import numpy as np

from ..errors import UserError
from .encode import as_run, check_layer, check_limit, data_loader, encode, resolve, split_dataset
from .packing import pack, packed_bytes

SCHEMA = "abrnet-retrieval-2"
CLOCKS = ("cpu", "wall")


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
    ``float_search`` on pre-normalised features (cosine as ``"ip"``), same threads.
    ``clock``: ``"cpu"``, this thread's CPU time, or ``"wall"``; the median of
    ``repeats`` timed calls is reported."""
    import faiss
    import torch

    from .search import HammingIndex, float_search

    tick = time.thread_time if clock == "cpu" else time.perf_counter
    old_torch = torch.get_num_threads()
    old_faiss = faiss.omp_get_max_threads()
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    try:
        index = HammingIndex(dim, kind="flat")  # exact: the metrics need every true neighbour
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


def check_ks(ks) -> tuple[int, ...]:
    """The cut-offs ``ks`` as a tuple of distinct positive ints, in the order given."""
    ks = tuple(dict.fromkeys(int(k) for k in ks))
    if not ks or min(ks) < 1:
        raise UserError(f"ks must be positive integers, got {ks}")
    return ks


def check_clock(clock: str | None, threads: int) -> str:
    """``clock``, by default ``"cpu"`` for one thread and ``"wall"`` otherwise."""
    clock = clock or ("cpu" if threads == 1 else "wall")
    if clock not in CLOCKS:
        raise UserError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and threads > 1:
        raise UserError("the cpu clock counts this thread only: use the wall clock with more than one thread")
    return clock


def run_retrieval(
    run,
    layer: str | None = None,
    ks=(100, 1000),
    *,
    limit_db: int | None = None,
    limit_queries: int | None = None,
    baseline: bool = True,
    threads: int = 1,
    clock: str | None = None,
    speed_queries: int = 1000,
    speed_k: int = 100,
    repeats: int = 3,
    device="cpu",
) -> dict:
    """The retrieval protocol on ``run`` (an :class:`abrnet.Run` or a run directory) at the step ``layer``
    (default: the last one): the first ``limit_queries`` test items query the first
    ``limit_db`` training items (default: all).

    ``baseline=False`` skips the ReLU baseline's features. The speed is measured with
    ``threads`` threads on the ``clock`` (:func:`check_clock`) over the first
    ``speed_queries`` queries, top-``speed_k``, median of ``repeats``. ``device`` is
    where the networks run (a name such as ``"auto"`` or a ``torch.device``).

    Returns a JSON-able dict: ``schema``, the run, ``layer``, ``bits``, ``queries``,
    ``database``, ``k``; ``binary``, ``float`` and ``relu`` (None when skipped) with
    the metrics of :func:`abrnet.codes.retrieval.evaluate_retrieval`; ``relu_note``;
    ``ratio`` (binary mAP over float and over ReLU mAP, None where undefined);
    ``bytes_per_item``; ``speed`` (:func:`measure_speed`); ``seconds``, ``date`` and
    ``load_average``.
    """
    from .retrieval import evaluate_float_retrieval, evaluate_retrieval

    ks = check_ks(ks)
    check_limit(limit_db, "limit_db")
    check_limit(limit_queries, "limit_queries")
    for name, value in (("threads", threads), ("speed_queries", speed_queries), ("speed_k", speed_k),
                        ("repeats", repeats)):  # fmt: skip
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    clock = check_clock(clock, threads)
    run = as_run(run)
    layer = check_layer(run.deployed, layer)
    device = resolve(device)
    db_ds, q_ds = split_dataset(run, "train", limit_db), split_dataset(run, "test", limit_queries)
    t0 = time.perf_counter()
    db_bits, db_labels, db_float, float_bytes = encode(run, layer, db_ds, device, with_float=True)
    q_bits, q_labels, q_float, _ = encode(run, layer, q_ds, device, with_float=True)
    dim = db_bits.shape[1]
    db_packed, q_packed = pack(db_bits), pack(q_bits)
    del db_bits, q_bits
    relu_ok, relu_note = (False, "the run has no ReLU baseline") if run.baseline is None else (
        baseline_layer(run.baseline, layer))  # fmt: skip
    if not baseline:
        relu_ok, relu_note = False, "skipped (not requested)"
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
    n_speed = min(speed_queries, len(q_packed))
    speed = measure_speed(db_packed, q_packed[:n_speed], db_float, q_float[:n_speed], dim, speed_k,
                          threads, clock, repeats)  # fmt: skip

    def ratio(other):
        return results["binary"]["mAP"] / other["mAP"] if other and other["mAP"] > 0 else None

    packed_per_item = db_packed.nbytes / len(db_packed)
    return {
        "schema": SCHEMA,
        "run_dir": str(run.dir), "model": run.config.model, "dataset": run.config.dataset, "layer": layer,
        "bits": dim, "queries": len(q_packed), "database": len(db_packed), "k": list(ks),
        "protocol": "test items query the training items; relevant = same label; tie-aware AP (abrnet.codes.retrieval)",
        "binary": {**results["binary"], "metric": "hamming", "features": "deployed step output, packed"},
        "float": {**results["float"], "metric": "cosine", "features": "the step's input (before binarization)"},
        "relu": None if results["relu"] is None else {**results["relu"], "metric": "cosine", "features": relu_note},
        "relu_note": relu_note,
        "ratio": {"binary_vs_float": ratio(results["float"]), "binary_vs_relu": ratio(results["relu"])},
        "bytes_per_item": {"packed": packed_per_item, "float32": float_bytes, "ratio": float_bytes / packed_per_item,
                           "padding_bits": 8 * packed_bytes(dim) - dim},
        "speed": speed,
        "seconds": {"extract": extract_s, "metrics": metrics_s},
        "date": str(datetime.date.today()),
        "load_average": os.getloadavg()[0],
    }  # fmt: skip
