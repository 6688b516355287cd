"""Retrieval quality of codes and features: mAP, mAP@k and precision@k.

Protocol: every test item queries the training items; an item is relevant when it has
the query's label. AP over the whole ranking is ``(1/R) sum_i rel_i P@i`` with ``R``
the relevant items in the database; AP@k is ``(1/min(R, k)) sum_{i<=k} rel_i P@i``, so a
perfect top k scores 1 (HashNet-style code divides by the relevant items *retrieved*
instead, which gives higher numbers when few are retrieved). A query with ``R = 0``
scores 0.

Ties. A d-bit Hamming distance takes only d + 1 values, so whole blocks of the database
tie, and any fixed order inside a block (faiss's, a stable sort's) would move mAP by
chance. Hamming metrics here are the *expected* value over uniformly random orders
within each block of equal distance, the tie-aware AP of McFee & Lanckriet (2009) and
He, Cakir, Bargal & Sclaroff, "Hashing as Tie-Aware Learning to Rank" (CVPR 2018). For
a block of ``n`` items holding ``r`` relevant ones, after ``N`` items of which ``R`` are
relevant, position ``p`` of the block is relevant with probability ``r/n`` and then has
``1 + (p-1)(r-1)/(n-1)`` relevant items among the block's first ``p``, so the block adds

    sum_{p=1..m} (r/n) (R + 1 + (p-1)(r-1)/(n-1)) / (N + p)
      = (r/n) [ (R+1) dH + (r-1)/(n-1) (m - (N+1) dH) ],   dH = H(N+m) - H(N)

to the AP sum, with ``H`` the harmonic numbers and ``m`` the block's positions that
count (all ``n``, or those up to rank k). Expected precision@k is likewise
``(1/k) sum over blocks of r m / n``. Only per-query counts of items and relevant items
at each distance are needed, which ``np.bincount`` gives directly.

Float features (cosine) get the same treatment of equal float32 scores: duplicates,
all-zero features, and plain collisions, which most rows of a 60k database have at
float32 resolution. Without ties it is the ordinary AP.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from .packing import as_numpy

# Query x database pairs per chunk. Small enough that the temporaries (int64, 32 MiB
# at most) are reused by the allocator instead of being mapped afresh, page by page.
CHUNK_ELEMS = 2**22


def _label_ids(db_labels, q_labels) -> tuple[np.ndarray, np.ndarray, int]:
    db_labels, q_labels = as_numpy(db_labels).reshape(-1), as_numpy(q_labels).reshape(-1)
    classes, inv = np.unique(np.concatenate([db_labels, q_labels]), return_inverse=True)
    return inv[: len(db_labels)], inv[len(db_labels) :], len(classes)


def hamming_histograms(db_codes, db_labels, q_codes, q_labels, chunk_elems: int = CHUNK_ELEMS):
    """Per query and Hamming distance: database items ``n`` and relevant ones ``r``.

    Returns two ``(n_queries, bits + 1)`` int64 arrays. Distances come from faiss
    (``faiss.hammings``) on packed codes; ``bits`` is the packed width.
    """
    db, q = np.ascontiguousarray(as_numpy(db_codes)), np.ascontiguousarray(as_numpy(q_codes))
    if db.dtype != np.uint8 or q.dtype != np.uint8 or db.ndim != 2 or q.shape[1:] != db.shape[1:]:
        raise ValueError(f"expected packed uint8 codes of one width, got {db.dtype} {db.shape}, {q.dtype} {q.shape}")
    dbl, ql, c = _label_ids(db_labels, q_labels)
    nbytes, bins = db.shape[1], 8 * db.shape[1] + 1
    n, r = np.zeros((len(q), bins), np.int64), np.zeros((len(q), bins), np.int64)
    step = max(1, chunk_elems // max(len(db), 1))
    dis = np.empty((min(step, len(q)), len(db)), np.int32)
    for s in range(0, len(q), step):
        qc = q[s : s + step]
        m = len(qc)
        faiss.hammings(faiss.swig_ptr(qc), faiss.swig_ptr(db), m, len(db), nbytes, faiss.swig_ptr(dis))
        # One bincount over (query, distance, class) counts items and relevant ones at once.
        key = (np.arange(m)[:, None] * bins + dis[:m]) * c + dbl
        h = np.bincount(key.ravel(), minlength=m * bins * c).reshape(m, bins, c)
        n[s : s + m] = h.sum(2)
        r[s : s + m] = h[np.arange(m), :, ql[s : s + m]]
    return n, r


def _harmonic(n: int) -> np.ndarray:
    """H[0..n], H[i] = 1 + 1/2 + ... + 1/i."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def _block_terms(n, r, before, rel_before, k: int | None, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per tie block: its expected share of the AP sum, and its expected relevant items
    among the positions that count (the module docstring's formula)."""
    m = n if k is None else np.clip(k - before, 0, n)
    dh = h[before + m] - h[before]
    nf, rf = n.astype(float), r.astype(float)
    c = np.where(n > 1, (rf - 1) / np.maximum(nf - 1, 1), 0.0)
    share = rf / np.maximum(nf, 1)
    return share * ((rel_before + 1) * dh + c * (m - (before + 1) * dh)), share * m


def _ap(ap_sum: np.ndarray, total: np.ndarray, k: int | None) -> np.ndarray:
    denom = total if k is None else np.minimum(total, k)
    return np.where(denom > 0, ap_sum / np.maximum(denom, 1), 0.0)


def tie_aware_ap(n: np.ndarray, r: np.ndarray, k: int | None = None) -> np.ndarray:
    """Expected AP (or AP@k) per query over random orders within ties, from histograms."""
    n, r = np.atleast_2d(n).astype(np.int64), np.atleast_2d(r).astype(np.int64)
    before, rel_before = np.cumsum(n, axis=1) - n, np.cumsum(r, axis=1) - r
    terms, _ = _block_terms(n, r, before, rel_before, k, _harmonic(int(n.sum(1).max(initial=0))))
    return _ap(terms.sum(1), r.sum(1), k)


def tie_aware_precision(n: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """Expected precision@k per query over random orders within ties."""
    n, r = np.atleast_2d(n).astype(np.int64), np.atleast_2d(r).astype(np.int64)
    _, hits = _block_terms(n, r, np.cumsum(n, axis=1) - n, 0, k, _harmonic(int(n.sum(1).max(initial=0))))
    return hits.sum(1) / k


def mean_average_precision(db_codes, db_labels, q_codes, q_labels, k: int | None = None) -> float:
    """Tie-aware mAP (``k=None``) or mAP@k of Hamming ranking on packed codes."""
    return float(tie_aware_ap(*hamming_histograms(db_codes, db_labels, q_codes, q_labels), k).mean())


def precision_at_k(db_codes, db_labels, q_codes, q_labels, k: int) -> float:
    """Tie-aware mean precision@k of Hamming ranking on packed codes."""
    return float(tie_aware_precision(*hamming_histograms(db_codes, db_labels, q_codes, q_labels), k).mean())


def average_precision(relevance, k: int | None = None, total: int | None = None) -> np.ndarray:
    """Ordinary AP of fixed rankings: ``relevance`` is ``(n_queries, length)`` 0/1 in
    rank order; ``total`` the relevant items per query (default: those in the rows)."""
    rel = np.atleast_2d(as_numpy(relevance)).astype(float)
    total = rel.sum(1) if total is None else np.broadcast_to(total, rel.shape[:1])
    if k is not None:
        rel = rel[:, :k]
    prec = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    denom = total if k is None else np.minimum(total, k)
    return np.where(denom > 0, (prec * rel).sum(1) / np.maximum(denom, 1), 0.0)


def _report(ap: np.ndarray, ap_k: dict, p_k: dict, nq: int, ndb: int) -> dict:
    out = {"mAP": float(ap.mean())}
    for k in ap_k:
        out[f"mAP@{k}"] = float(ap_k[k].mean())
        out[f"P@{k}"] = float(p_k[k].mean())
    return {**out, "queries": nq, "database": ndb}


def evaluate_retrieval(db_codes, db_labels, q_codes, q_labels, k_list=(100, 1000)) -> dict:
    """Tie-aware Hamming retrieval metrics of packed codes: ``mAP``, ``mAP@k``, ``P@k``."""
    n, r = hamming_histograms(db_codes, db_labels, q_codes, q_labels)
    ap_k = {k: tie_aware_ap(n, r, k) for k in k_list}
    p_k = {k: tie_aware_precision(n, r, k) for k in k_list}
    return _report(tie_aware_ap(n, r), ap_k, p_k, len(n), int(n[0].sum()) if len(n) else 0)


def _descending_keys(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """int64 keys whose ascending sort is descending score, relevance in the lowest bit.

    Sorting one int64 array (numpy's SIMD sort) is several times faster than an
    argsort, and equal scores stay adjacent, so the tie blocks can be read off.
    """
    x = -scores.astype(np.float32) + np.float32(0.0)  # + 0 turns -0.0 into +0.0: one block
    i = x.view(np.int32)
    flipped = i ^ ((i >> 31) & np.int32(0x7FFFFFFF))  # IEEE order as signed-integer order
    return (flipped.astype(np.int64) << 1) | relevant


def _float_chunk(scores: np.ndarray, relevant: np.ndarray, k_list, h: np.ndarray) -> dict:
    """Tie-aware metrics of one chunk of queries from their float scores.

    Relevant items outside ties add the ordinary ``j / rank``. Equal float32 scores are
    rare but do occur (60k cosines collide at float32 resolution), and only the terms
    of a tie block itself depend on the order inside it: those blocks get the expected
    terms instead, as Hamming blocks do.
    """
    rows = len(scores)
    key = np.sort(_descending_keys(scores, relevant), axis=1)
    score, rel = key >> 1, (key & 1).astype(bool)
    eq = score[:, 1:] == score[:, :-1]
    tie = np.zeros(score.shape, bool)
    tie[:, 1:] = eq
    tie[:, :-1] |= eq
    row, col = np.nonzero(rel)
    total = np.bincount(row, minlength=rows)
    offset = np.cumsum(total) - total
    j = np.arange(1, len(row) + 1) - offset[row]  # j-th relevant of its row
    flat = row * score.shape[1] + col  # sorted: finds the relevant items before a block
    free = ~tie[row, col]
    row, col, prec = row[free], col[free], (j / (col + 1.0))[free]
    trow, tcol = np.nonzero(tie)
    first = np.flatnonzero((tcol == 0) | ~eq[trow, np.maximum(tcol - 1, 0)])  # block starts
    if len(first):
        brow, before = trow[first], tcol[first]
        n = np.diff(np.append(first, len(trow)))
        r = np.add.reduceat(rel[trow, tcol].astype(np.int64), first)
        rel_before = np.searchsorted(flat, brow * score.shape[1] + before) - offset[brow]
    else:
        brow = before = n = r = rel_before = np.zeros(0, np.int64)
    out = {}
    for k in (None, *k_list):
        top = np.ones(len(col), bool) if k is None else col < k
        terms, hits = _block_terms(n, r, before, rel_before, k, h)
        ap_sum = np.bincount(row[top], weights=prec[top], minlength=rows)
        out[("ap", k)] = _ap(ap_sum + np.bincount(brow, weights=terms, minlength=rows), total, k)
        if k is not None:
            out[("p", k)] = (
                np.bincount(row[top], minlength=rows) + np.bincount(brow, weights=hits, minlength=rows)
            ) / k
    return out


def evaluate_float_retrieval(
    db_feats, db_labels, q_feats, q_labels, k_list=(100, 1000), metric: str = "cosine", chunk_elems: int = CHUNK_ELEMS
) -> dict:
    """The same metrics for float features ranked by ``"cosine"`` or ``"ip"`` similarity.

    Tie-aware like the Hamming ones; with no equal scores this is the ordinary AP.
    """
    if metric not in ("cosine", "ip"):
        raise ValueError(f"metric must be 'cosine' or 'ip', got {metric!r}")
    db, q = torch.as_tensor(as_numpy(db_feats)).float(), torch.as_tensor(as_numpy(q_feats)).float()
    if metric == "cosine":
        db, q = torch.nn.functional.normalize(db, dim=1), torch.nn.functional.normalize(q, dim=1)
    dbl, ql, _ = _label_ids(db_labels, q_labels)
    step = max(1, chunk_elems // max(len(db), 1))
    h = _harmonic(len(db))
    parts = []
    with torch.inference_mode():
        for s in range(0, len(q), step):
            scores = (q[s : s + step] @ db.T).numpy()
            parts.append(_float_chunk(scores, dbl[None] == ql[s : s + step, None], k_list, h))
    cat = lambda key: np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)
    ap_k, p_k = {k: cat(("ap", k)) for k in k_list}, {k: cat(("p", k)) for k in k_list}
    return _report(cat(("ap", None)), ap_k, p_k, len(q), len(db))
