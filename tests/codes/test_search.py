import numpy as np
import pytest
import torch

from abrnet.codes.packing import pack
from abrnet.codes.search import HammingIndex, float_search
from abrnet.errors import UserError


def _check_against_brute_force(dist_true, distances, ids, k):
    """faiss may order equal distances differently from a stable sort, so compare
    distances rank by rank, and ids as sets: every id closer than the k-th distance
    must be returned, and the rest must come from the tie at the k-th distance."""
    for i in range(len(dist_true)):
        expected = np.sort(dist_true[i])[:k]
        assert np.array_equal(distances[i], expected)
        assert np.array_equal(dist_true[i][ids[i]], distances[i])  # each id has its distance
        assert len(set(ids[i].tolist())) == k
        kth = expected[-1]
        closer = set(np.flatnonzero(dist_true[i] < kth).tolist())
        assert closer <= set(ids[i].tolist())
        assert set(ids[i].tolist()) - closer <= set(np.flatnonzero(dist_true[i] == kth).tolist())


@pytest.mark.parametrize("dim", [16, 13, 64])
def test_flat_search_equals_numpy_hamming_search_with_ties(dim):
    rng = np.random.default_rng(dim)
    db_bits, q_bits = rng.integers(0, 2, (400, dim)), rng.integers(0, 2, (20, dim))
    q_bits[0] = db_bits[5]  # an exact match
    index = HammingIndex(dim)
    index.add(pack(db_bits[:150]))
    index.add(pack(db_bits[150:]))
    assert index.ntotal == 400
    distances, ids = index.search(pack(q_bits), 25)
    assert distances.dtype == np.int32 and ids.dtype == np.int64
    true = (q_bits[:, None, :] != db_bits[None]).sum(-1)
    _check_against_brute_force(true, distances, ids, 25)
    assert distances[0, 0] == 0


def test_save_load_round_trip_and_hnsw(tmp_path):
    rng = np.random.default_rng(0)
    db, q = pack(rng.integers(0, 2, (500, 32))), pack(rng.integers(0, 2, (10, 32)))
    flat = HammingIndex(32)
    flat.add(db)
    flat.save(tmp_path / "flat.faiss")
    again = HammingIndex.load(tmp_path / "flat.faiss")
    assert again.ntotal == 500 and again.kind == "flat" and again.dim == 32
    d0, i0 = flat.search(q, 10)
    d1, i1 = again.search(q, 10)
    assert np.array_equal(d0, d1) and np.array_equal(i0, i1)
    hnsw = HammingIndex(32, kind="hnsw", hnsw_m=16, ef_search=500)
    hnsw.add(db)
    hnsw.save(tmp_path / "hnsw.faiss")
    loaded = HammingIndex.load(tmp_path / "hnsw.faiss")
    assert loaded.kind == "hnsw" and loaded.ntotal == 500
    d2, _ = loaded.search(q, 10)
    assert (d2 == d0).mean() > 0.9  # approximate, but close on a small database


def test_bad_inputs_are_explained(tmp_path):
    index = HammingIndex(16)
    with pytest.raises(ValueError, match=r"\(n, 2\) uint8"):
        index.add(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="kind"):
        HammingIndex(16, kind="ivf")
    (tmp_path / "bad.faiss").write_bytes(b"nope")
    with pytest.raises(UserError, match="not a faiss binary index"):
        HammingIndex.load(tmp_path / "bad.faiss")


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_float_search_equals_numpy_exact_search(metric):
    rng = np.random.default_rng(3)
    db, q = rng.normal(size=(200, 8)).astype(np.float32), rng.normal(size=(7, 8)).astype(np.float32)
    scores, ids = float_search(db, torch.from_numpy(q), 5, metric=metric, chunk_elems=600)
    if metric == "cosine":
        s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (db / np.linalg.norm(db, axis=1, keepdims=True)).T
    elif metric == "ip":
        s = q @ db.T
    else:
        s = -((q[:, None] - db[None]) ** 2).sum(-1)
    order = np.argsort(-s, axis=1)[:, :5]
    assert np.array_equal(ids.numpy(), order)
    expected = np.take_along_axis(s, order, 1)
    assert np.allclose(scores.numpy(), -expected if metric == "l2" else expected, atol=1e-4)


def test_odd_widths_are_padded_to_words_without_changing_distances(tmp_path):
    # 500-bit codes (63 bytes) are stored in 64: same distances as a plain numpy count,
    # and a saved index takes the 63-byte codes back.
    rng = np.random.default_rng(0)
    db, q = rng.integers(0, 2, (300, 500)), rng.integers(0, 2, (5, 500))
    index = HammingIndex(500)
    assert index.dim == 504 and index._stored == 512
    index.add(np.packbits(db[:0], axis=1))  # an empty add chooses the kind (flat)
    assert index.kind == "flat" and index.index.d == 512
    index.add(np.packbits(db, axis=1))
    dist, ids = index.search(np.packbits(q, axis=1), 300)
    expected = (q[:, None, :] != db[None]).sum(-1)
    assert np.array_equal(np.take_along_axis(expected, ids, 1), dist)
    index.save(tmp_path / "i.faiss")
    loaded = HammingIndex.load(tmp_path / "i.faiss")
    assert loaded.accepts(63) and not loaded.accepts(65)
    assert np.array_equal(loaded.search(np.packbits(q, axis=1), 300)[0], dist)
    with pytest.raises(ValueError, match=r"\(n, 63\) uint8"):
        index.add(np.zeros((1, 64), np.uint8))


def test_auto_kind_is_chosen_by_the_first_add_from_the_database_size(monkeypatch):
    import abrnet.codes.search as search

    monkeypatch.setattr(search, "AUTO_HNSW_BITS", 64 * 1000)  # 1,000 codes of 64 bits
    rng = np.random.default_rng(0)
    small, large = HammingIndex(64), HammingIndex(64)
    assert small.kind == "auto" and small.ntotal == 0
    small.add(pack(rng.integers(0, 2, (999, 64))))
    large.add(pack(rng.integers(0, 2, (1000, 64))))
    assert small.kind == "flat" and large.kind == "hnsw"
    small.add(pack(rng.integers(0, 2, (5000, 64))))  # later adds keep the first choice
    assert small.kind == "flat" and small.ntotal == 5999
    empty = HammingIndex(64)  # searching before any add: an empty exact index
    d, i = empty.search(pack(rng.integers(0, 2, (2, 64))), 3)
    assert empty.kind == "flat" and (i == -1).all()
