"""Nearest-neighbour search: Hamming distance on packed codes (faiss), and an exact float
baseline (torch matmul + topk) to compare it with.

Codes are packed as :func:`abrnet.codes.packing.pack` does. faiss's binary indexes need a width
that is a multiple of 8 bits; the zero padding bits of a packed code add no distance.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from ..errors import UserError
from .packing import as_numpy, packed_bytes

KINDS = ("auto", "flat", "hnsw")
# kind="auto": HNSW once a database holds this many bits (items x width) or more, flat
# below. Flat search costs items x width per query and HNSW about log(items) x width, so
# the crossover is a database size in bits; measured in docs/deploy.md (search sweep).
AUTO_HNSW_BITS = 256 * 10**6
# faiss has unrolled Hamming kernels for 4, 8, 16, 20, 32 and 64-byte codes, and reads
# other widths 8 bytes at a time plus a byte-by-byte tail: a 63-byte code searched 2x
# slower than the same code padded to 64 bytes (docs/deploy.md).
_FAST_BYTES = (4, 20)


def _stored_bytes(nbytes: int) -> int:
    """The width, in bytes, that the index stores a ``nbytes`` code in."""
    return nbytes if nbytes in _FAST_BYTES else -(-nbytes // 8) * 8


class HammingIndex:
    """Hamming k-NN over packed binary codes, on faiss's binary indexes.

    Args:
        dim: code length in bits (padded up to a multiple of 8).
        kind: ``"flat"``, exact search (``faiss.IndexBinaryFlat``); ``"hnsw"``,
            approximate graph search for large databases (``faiss.IndexBinaryHNSW``);
            ``"auto"`` (default), chosen by the first :meth:`add`: HNSW when it brings
            ``AUTO_HNSW_BITS`` bits of codes or more (items x width), flat below, where
            exact search is as fast (docs/deploy.md measures the crossover).
        hnsw_m: HNSW graph degree; more is more accurate, slower to build and larger.
        ef_search: HNSW candidate list size at query time, at least ``k``.

    Ids are row numbers in the order of :meth:`add`, so labels saved next to the codes
    (:func:`abrnet.codes.packing.save_codes`) index directly with them. Codes are stored zero
    padded to a multiple of 64 bits (zero bits add no distance), which costs up to 7
    bytes per item and buys faiss's word-wide kernels.
    """

    def __init__(self, dim: int, kind: str = "auto", hnsw_m: int = 32, ef_search: int = 64) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.dim = 8 * packed_bytes(dim)
        self.kind, self.hnsw_m, self.ef_search = kind, hnsw_m, ef_search
        self._stored = 8 * _stored_bytes(self.dim // 8)
        self.index = None if kind == "auto" else self._make(kind)

    def _make(self, kind: str):
        self.kind = kind
        if kind == "flat":
            return faiss.IndexBinaryFlat(self._stored)
        return faiss.IndexBinaryHNSW(self._stored, self.hnsw_m)

    def _ready(self, n: int):
        """The faiss index, made now when ``kind`` is still "auto" (``n`` items coming)."""
        if self.index is None:
            self.index = self._make("hnsw" if n * self.dim >= AUTO_HNSW_BITS else "flat")
        return self.index

    @classmethod
    def _wrap(cls, index) -> HammingIndex:
        # A saved index keeps only the stored width; codes of any width that pads to
        # it are accepted (see _codes).
        self = cls.__new__(cls)
        self.index, self.dim, self._stored = index, index.d, index.d
        self.kind = "hnsw" if isinstance(index, faiss.IndexBinaryHNSW) else "flat"
        self.ef_search = index.hnsw.efSearch if self.kind == "hnsw" else 64
        self.hnsw_m = index.hnsw.nb_neighbors(1) if self.kind == "hnsw" else 32
        return self

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else self.index.ntotal

    def accepts(self, nbytes: int) -> bool:
        """Whether packed codes ``nbytes`` wide fit this index (a loaded index knows only
        its stored width, so it takes any width that pads to it)."""
        if self.dim != self._stored:
            return nbytes == self.dim // 8
        return _stored_bytes(nbytes) == self._stored // 8

    def _codes(self, packed) -> np.ndarray:
        p = np.ascontiguousarray(as_numpy(packed))
        stored = self._stored // 8
        if p.dtype != np.uint8 or p.ndim != 2 or not self.accepts(p.shape[1]):
            raise ValueError(f"expected (n, {self.dim // 8}) uint8 packed codes, got {p.dtype} {p.shape}")
        if p.shape[1] < stored:
            p = np.pad(p, ((0, 0), (0, stored - p.shape[1])))
        return p

    def add(self, packed) -> None:
        """Append ``(n, dim/8)`` uint8 codes; they get ids ``ntotal .. ntotal + n - 1``."""
        codes = self._codes(packed)
        self._ready(len(codes)).add(codes)

    def search(self, packed_queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest codes per query: ``(distances int32, ids int64)``, each ``(nq, k)``,
        nearest first. Slots beyond ``ntotal`` hold id -1. Among equal distances faiss
        chooses the order; tie-aware metrics (:mod:`abrnet.codes.retrieval`) do not depend on it.
        """
        index = self._ready(0)
        if self.kind == "hnsw":
            index.hnsw.efSearch = max(self.ef_search, k)
        return index.search(self._codes(packed_queries), k)

    def save(self, path) -> None:
        """Write the index in faiss's own format (readable by ``faiss.read_index_binary``)."""
        faiss.write_index_binary(self._ready(0), str(path))

    @classmethod
    def load(cls, path) -> HammingIndex:
        try:
            index = faiss.read_index_binary(str(path))
        except RuntimeError:  # faiss's message is a C++ assertion, not for users
            raise UserError(f"{path}: not a faiss binary index (write one with HammingIndex.save)") from None
        return cls._wrap(index)

    def __repr__(self) -> str:
        return f"HammingIndex(dim={self.dim}, kind={self.kind!r}, ntotal={self.ntotal})"


FLOAT_METRICS = ("cosine", "ip", "l2")


def _as_float(a) -> torch.Tensor:
    return (a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))).float()


def float_search(db, queries, k: int, metric: str = "cosine", chunk_elems: int = 2**25):
    """Exact float32 k-NN by torch matmul + topk, in query chunks of at most
    ``chunk_elems`` scores (128 MiB by default).

    ``metric``: ``"cosine"`` and ``"ip"`` return similarities, largest first;
    ``"l2"`` returns squared distances, smallest first. Returns ``(scores, ids int64)``
    as torch tensors. Pre-normalise ``db`` once and use ``"ip"`` to time the search
    alone: ``"cosine"`` normalises ``db`` on every call.
    """
    if metric not in FLOAT_METRICS:
        raise ValueError(f"metric must be one of {', '.join(FLOAT_METRICS)}, got {metric!r}")
    db, queries = _as_float(db), _as_float(queries)
    if metric == "cosine":
        db, queries = torch.nn.functional.normalize(db, dim=1), torch.nn.functional.normalize(queries, dim=1)
    k = min(k, len(db))
    step = max(1, chunk_elems // max(len(db), 1))
    db_sq = (db * db).sum(1) if metric == "l2" else None
    scores, ids = [], []
    with torch.inference_mode():
        for q in queries.split(step):
            s = q @ db.T
            if db_sq is not None:  # -|q - x|^2 up to the constant |q|^2, so topk stays "largest"
                s = 2 * s - db_sq
            top, idx = s.topk(k, dim=1)
            if db_sq is not None:
                top = (q * q).sum(1, keepdim=True) - top
            scores.append(top)
            ids.append(idx)
    if not scores:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(scores), torch.cat(ids)
