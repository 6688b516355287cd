import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from abrnet.codes.packing import pack
from abrnet.codes.retrieval import (
    average_precision,
    evaluate_float_retrieval,
    evaluate_retrieval,
    hamming_histograms,
    mean_average_precision,
    precision_at_k,
    tie_aware_ap,
    tie_aware_precision,
)


def _codes(byte_rows):
    return np.array(byte_rows, dtype=np.uint8).reshape(len(byte_rows), -1)


def test_tie_aware_map_on_a_hand_computed_example():
    # Database at distances 0 (relevant), 1 (not), 1 (relevant), 2 (not) from the query.
    db = _codes([0x00, 0x80, 0x40, 0xC0])
    db_labels, q = np.array([1, 2, 1, 2]), _codes([0x00])
    # The tie at distance 1 is ordered either way with probability 1/2:
    # [1, 0, 1, 0] has AP (1/1 + 2/3) / 2 = 5/6, and [1, 1, 0, 0] has AP 1.
    assert mean_average_precision(db, db_labels, q, [1]) == pytest.approx((5 / 6 + 1) / 2)
    # AP@2: positions 1..2 hold the relevant item, then one of the tie: (1 + (1/2)(2/2)) / min(2, 2).
    assert mean_average_precision(db, db_labels, q, [1], k=2) == pytest.approx((1 + 0.5) / 2)
    assert precision_at_k(db, db_labels, q, [1], k=2) == pytest.approx((1 + 0.5) / 2)
    assert precision_at_k(db, db_labels, q, [1], k=1) == 1.0
    # Without ties the ordinary AP: distances 0, 1, 2 with relevance 1, 0, 1.
    assert mean_average_precision(_codes([0x00, 0x80, 0xC0]), [1, 2, 1], q, [1]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([[1, 0, 1, 0]]) == pytest.approx([5 / 6])


def _brute_force(dist, rel, k):
    """Mean AP, AP@k and P@k over every ordering of every tie group."""
    groups = [np.flatnonzero(dist == v) for v in np.unique(dist)]
    total = rel.sum()
    aps, apks, pks = [], [], []
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        ranked = rel[np.concatenate(perm)][None]
        aps.append(average_precision(ranked, total=total)[0])
        apks.append(average_precision(ranked, k=k, total=total)[0])
        pks.append(ranked[0, :k].sum() / k)
    return np.mean(aps), np.mean(apks), np.mean(pks)


@settings(max_examples=40, deadline=None)
@given(
    dist=st.lists(st.integers(0, 3), min_size=1, max_size=7),
    data=st.data(),
)
def test_tie_aware_metrics_equal_brute_force_enumeration(dist, data):
    dist = np.array(dist)
    rel = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(dist), max_size=len(dist))))
    k = data.draw(st.integers(1, len(dist) + 1))
    n = np.bincount(dist, minlength=4)[None]
    r = np.bincount(dist, weights=rel, minlength=4).astype(np.int64)[None]
    ap, apk, pk = _brute_force(dist, rel, k)
    assert tie_aware_ap(n, r)[0] == pytest.approx(ap, abs=1e-12)
    assert tie_aware_ap(n, r, k)[0] == pytest.approx(apk, abs=1e-12)
    assert tie_aware_precision(n, r, k)[0] == pytest.approx(pk, abs=1e-12)


def test_histograms_equal_numpy_bit_counts():
    rng = np.random.default_rng(0)
    db_bits, q_bits = rng.integers(0, 2, (300, 20)), rng.integers(0, 2, (7, 20))
    db_labels, q_labels = rng.integers(0, 3, 300), rng.integers(0, 3, 7)
    n, r = hamming_histograms(pack(db_bits), db_labels, pack(q_bits), q_labels, chunk_elems=900)
    dist = (q_bits[:, None, :] != db_bits[None]).sum(-1)
    assert n.shape == (7, 25)
    for i in range(7):
        assert np.array_equal(n[i], np.bincount(dist[i], minlength=25))
        assert np.array_equal(r[i], np.bincount(dist[i][db_labels == q_labels[i]], minlength=25))


def test_evaluate_retrieval_reports_every_metric():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    bits = (rng.random((200, 32)) < 0.1 + 0.2 * labels[:, None] * (np.arange(32) % 4 == labels[:, None])).astype(int)
    out = evaluate_retrieval(pack(bits[50:]), labels[50:], pack(bits[:50]), labels[:50], k_list=(5, 20))
    assert set(out) == {"mAP", "mAP@5", "P@5", "mAP@20", "P@20", "queries", "database"}
    assert out["queries"] == 50 and out["database"] == 150 and 0 < out["mAP"] <= 1


def test_float_retrieval_equals_ordinary_ap_of_a_cosine_ranking():
    rng = np.random.default_rng(2)
    db, q = rng.normal(size=(60, 5)), rng.normal(size=(9, 5))
    dbl, ql = rng.integers(0, 3, 60), rng.integers(0, 3, 9)
    out = evaluate_float_retrieval(db, dbl, q, ql, k_list=(4, 10), chunk_elems=130)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (db / np.linalg.norm(db, axis=1, keepdims=True)).T
    rel = dbl[np.argsort(-cos, axis=1, kind="stable")] == ql[:, None]
    total = rel.sum(1)
    assert out["mAP"] == pytest.approx(average_precision(rel, total=total).mean(), abs=1e-6)
    assert out["mAP@10"] == pytest.approx(average_precision(rel, k=10, total=total).mean(), abs=1e-6)
    assert out["P@4"] == pytest.approx(rel[:, :4].mean(), abs=1e-6)
    same = evaluate_float_retrieval(torch.tensor(db), dbl, torch.tensor(q), ql, k_list=(4, 10))
    assert same["mAP"] == pytest.approx(out["mAP"])


def test_float_retrieval_treats_equal_scores_as_a_tie():
    # Cosine scores 1, 0, 0, -1 with relevance 1, 0, 1, 0: the hand example above.
    db = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    out = evaluate_float_retrieval(db, [1, 2, 1, 2], np.array([[1.0, 0.0]]), [1], k_list=(2,))
    assert out["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert out["mAP@2"] == pytest.approx(0.75) and out["P@2"] == pytest.approx(0.75)
    # -0.0 and +0.0 are one score, and the same tie.
    flipped = evaluate_float_retrieval(db * [1, -1], [1, 2, 1, 2], np.array([[1.0, 0.0]]), [1], k_list=(2,))
    assert flipped["mAP"] == pytest.approx(out["mAP"])


def test_float_and_hamming_metrics_agree_on_the_same_ranking():
    # For +-1 vectors the inner product is d - 2 * Hamming distance: the same tie blocks.
    rng = np.random.default_rng(4)
    bits, labels = rng.integers(0, 2, (120, 6)), rng.integers(0, 3, 120)
    signs = 2.0 * bits - 1
    ham = evaluate_retrieval(pack(bits[20:]), labels[20:], pack(bits[:20]), labels[:20], k_list=(3, 30))
    flt = evaluate_float_retrieval(signs[20:], labels[20:], signs[:20], labels[:20], k_list=(3, 30), metric="ip")
    assert flt == pytest.approx(ham, abs=1e-12)
