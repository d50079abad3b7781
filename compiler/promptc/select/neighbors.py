"""Nearest neighbours of embedding vectors: exact blocked search, and faiss above a size.

Similarity-based batch selection needs, for every item, its most similar items. Vectors are
L2-normalised, so cosine similarity is a dot product.

**Exact search** (the default) multiplies the normalised matrix with itself *in tiles*: a block
of at most :data:`BLOCK_ROWS` query rows against a block of at most :data:`BLOCK_COLS` corpus
rows at a time, keeping a running top-k per query. Memory stays bounded by one tile
(``BLOCK_ROWS × BLOCK_COLS`` float32 scores, 16 MiB) plus the top-k lists, however many items
there are: a ``|D|×|D|`` matrix is never built.

**Ties** are broken by item index (the lower index first), so that results do not depend on
the order in which a partial sort happens to return equal scores. The arithmetic is fixed for
a given data size (float32 products in fixed tile shapes, stable sorts), so two runs on the
same vectors give the same neighbours.

**Approximate search** (faiss ``IndexIVFFlat``, inner product) is used when there are more than
:data:`ANN_THRESHOLD` vectors and faiss-cpu is installed (``pip install 'promptc-compiler[ann]'``);
without faiss, exact search runs anyway and :attr:`Neighbors.note` says so. faiss only proposes
candidates: they are re-scored exactly and sorted with the same index tie-break, so the
similarities reported are exact and only the recall is approximate (measured against exact
search in ``bench/bench_select.py``).

This module needs numpy; it is imported only when a spec asks for a similarity method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Query rows per tile of the exact search.
BLOCK_ROWS = 1024
#: Corpus rows per tile of the exact search.
BLOCK_COLS = 4096
#: Above this many vectors, faiss (if installed) replaces exact search.
ANN_THRESHOLD = 50_000
#: Inverted lists are probed per query by the faiss index; with ``nlist = 4·√n`` lists this
#: scans about 4% of a 100,000-vector corpus per query.
ANN_NPROBE = 48
#: faiss is asked for this many times more candidates than needed, before exact re-scoring.
ANN_OVERFETCH = 2

FloatMatrix = NDArray[np.float32]
IndexMatrix = NDArray[np.int64]


@dataclass(frozen=True)
class Neighbors:
    """The ``k`` nearest neighbours of every query, best first.

    Attributes:
        indices: ``(queries, k)`` corpus indices, by decreasing similarity, ties by index.
        scores: ``(queries, k)`` cosine similarities (float32), aligned with ``indices``.
        search: ``"exact"`` or ``"faiss-ivf-flat"``.
        params: The search's parameters, for a build manifest (JSON-ready, deterministic).
        note: Why the search is what it is, when that is worth telling (e.g. faiss missing).
    """

    indices: IndexMatrix
    scores: FloatMatrix
    search: str
    params: dict[str, object] = field(default_factory=dict)
    note: str | None = None

    def describe(self) -> dict[str, object]:
        """The search, its parameters and its note, for a build manifest."""
        info: dict[str, object] = {"search": self.search, **self.params}
        if self.note:
            info["note"] = self.note
        return info


def normalize(vectors: NDArray[np.floating]) -> FloatMatrix:
    """Rows scaled to unit L2 norm, as C-contiguous float32. All-zero rows stay zero."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-d matrix of vectors, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


def _sort_rows(scores: FloatMatrix, indices: IndexMatrix) -> tuple[FloatMatrix, IndexMatrix]:
    """Sorts each row by decreasing score, then increasing index."""
    order = np.lexsort((indices, -scores), axis=-1)
    return (
        np.take_along_axis(scores, order, axis=1),
        np.take_along_axis(indices, order, axis=1),
    )


def top_k(scores: FloatMatrix, indices: IndexMatrix, k: int) -> tuple[FloatMatrix, IndexMatrix]:
    """The ``k`` best ``(score, index)`` pairs of every row, sorted, ties by lower index.

    ``argpartition`` finds each row's k-th best score in linear time; everything above it is
    kept, and of the entries *equal* to it only the leftmost ones, which are the lowest
    indices because callers lay out columns so that equal scores appear in index order.

    Args:
        scores: ``(rows, m)`` candidate scores.
        indices: ``(rows, m)`` their corpus indices, increasing along each row among equal
            scores.
        k: How many to keep, ``0 <= k``; if ``k >= m`` all are kept.
    """
    rows, m = scores.shape
    if k >= m:
        return _sort_rows(scores, indices)
    if k <= 0:
        return (np.empty((rows, 0), np.float32), np.empty((rows, 0), np.int64))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)[:, None]
    above = scores > kth
    equal = scores == kth
    need = k - above.sum(axis=1)
    if bool((equal.sum(axis=1) > need).any()):
        # More entries tie with the k-th score than there are places left: keep the leftmost.
        equal &= np.cumsum(equal, axis=1) <= need[:, None]
    cols = np.nonzero(above | equal)[1].reshape(rows, k)
    return _sort_rows(
        np.take_along_axis(scores, cols, axis=1), np.take_along_axis(indices, cols, axis=1)
    )


def exact_search(
    queries: FloatMatrix,
    corpus: FloatMatrix,
    k: int,
    *,
    self_offset: int | None = None,
    block_rows: int = BLOCK_ROWS,
    block_cols: int = BLOCK_COLS,
) -> tuple[FloatMatrix, IndexMatrix]:
    """Exact top-k by dot product, in memory-bounded tiles.

    Args:
        queries: ``(q, d)`` normalised float32 vectors.
        corpus: ``(n, d)`` normalised float32 vectors.
        k: Neighbours per query (clamped to what the corpus holds).
        self_offset: If the queries are corpus rows ``self_offset ..``, each query's own row
            is excluded from its neighbours.
        block_rows: Query rows per tile.
        block_cols: Corpus rows per tile.

    Returns:
        ``(scores, indices)``, each ``(q, k)``, best first, ties by lower index.
    """
    q, n = queries.shape[0], corpus.shape[0]
    k = max(0, min(k, n - (1 if self_offset is not None else 0)))
    out_s = np.empty((q, k), np.float32)
    out_i = np.empty((q, k), np.int64)
    if k == 0:
        return out_s, out_i
    for r0 in range(0, q, block_rows):
        r1 = min(q, r0 + block_rows)
        best_s = np.empty((r1 - r0, 0), np.float32)
        best_i = np.empty((r1 - r0, 0), np.int64)
        for c0 in range(0, n, block_cols):
            c1 = min(n, c0 + block_cols)
            tile = queries[r0:r1] @ corpus[c0:c1].T
            if self_offset is not None:
                rows = np.arange(r0, r1) + self_offset
                inside = (rows >= c0) & (rows < c1)
                tile[np.nonzero(inside)[0], rows[inside] - c0] = -np.inf
            best_s, best_i = _merge(best_s, best_i, tile, c0, k)
        out_s[r0:r1] = best_s
        out_i[r0:r1] = best_i
    return out_s, out_i


def _merge(
    best_s: FloatMatrix, best_i: IndexMatrix, tile: FloatMatrix, c0: int, k: int
) -> tuple[FloatMatrix, IndexMatrix]:
    """Merges a tile of scores (columns are indices ``c0 ..``) into the running top-k.

    The running best hold only indices below ``c0`` and win ties, so a tile entry can only
    enter if it beats a row's current k-th score *strictly*. Once the lists are full, few
    entries do: they are gathered sparsely instead of partitioning the whole tile again.
    """
    rows = tile.shape[0]
    tile_i = np.broadcast_to(np.arange(c0, c0 + tile.shape[1], dtype=np.int64), tile.shape)
    if best_s.shape[1] == 0:
        return top_k(tile, tile_i, k)
    if best_s.shape[1] < k:
        # The running best (sorted, ties by index) come first, so among equal scores the
        # columns are in index order, as top_k needs.
        return top_k(
            np.concatenate([best_s, tile], axis=1),
            np.concatenate([best_i, tile_i], axis=1),
            k,
        )
    r, c = np.nonzero(tile > best_s[:, -1:])
    if r.size == 0:
        return best_s, best_i
    counts = np.bincount(r, minlength=rows)
    width = int(counts.max())
    # Each candidate's place among its row's candidates (nonzero is row-major, so the
    # candidates of a row come in column order, i.e. index order).
    starts = np.cumsum(counts) - counts
    place = np.arange(r.size) - starts[r]
    cand_s = np.full((rows, width), -np.inf, np.float32)
    cand_i = np.full((rows, width), np.iinfo(np.int64).max, np.int64)
    cand_s[r, place] = tile[r, c]
    cand_i[r, place] = c + c0
    return top_k(
        np.concatenate([best_s, cand_s], axis=1), np.concatenate([best_i, cand_i], axis=1), k
    )


def _faiss_search(
    vectors: FloatMatrix, k: int, *, seed: int, nprobe: int = ANN_NPROBE
) -> tuple[FloatMatrix, IndexMatrix, dict[str, object]]:
    """All-vs-all top-k (self excluded) with a faiss IVF-Flat index, re-scored exactly."""
    import faiss

    n, d = vectors.shape
    nlist = max(1, round(4 * math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # k-means initialisation: fixed, so the lists are reproducible
    index.cp.niter = 10
    index.train(vectors)
    index.add(vectors)
    index.nprobe = min(nprobe, nlist)
    fetch = min(n, ANN_OVERFETCH * k + 1)
    out_s = np.empty((n, k), np.float32)
    out_i = np.empty((n, k), np.int64)
    for r0 in range(0, n, BLOCK_ROWS):
        r1 = min(n, r0 + BLOCK_ROWS)
        _, cand = index.search(vectors[r0:r1], fetch)
        cand = cand.astype(np.int64)
        # Sort each row's candidates by index, so that equal scores are in index order.
        cand.sort(axis=1)
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        s = np.einsum("rd,rkd->rk", vectors[r0:r1], vectors[safe], dtype=np.float32)
        own = cand == np.arange(r0, r1, dtype=np.int64)[:, None]
        s[~valid | own] = -np.inf
        best_s, best_i = top_k(s, np.where(valid, cand, n), k)
        short = np.nonzero((best_i == n).any(axis=1))[0]
        if short.size:
            # Too few candidates came back for these rows: search them exactly instead.
            for r in short.tolist():
                best_s[r], best_i[r] = exact_search(
                    vectors[r0 + r][None], vectors, k, self_offset=r0 + r
                )
        out_s[r0:r1] = best_s
        out_i[r0:r1] = best_i
    params: dict[str, object] = {
        "index": "IVFFlat",
        "metric": "inner_product",
        "nlist": nlist,
        "nprobe": int(index.nprobe),
        "kmeans_iterations": 10,
        "kmeans_seed": seed,
        "candidates_per_query": fetch,
        "rescored": "exact",
        "faiss_version": str(faiss.__version__),
    }
    return out_s, out_i, params


def all_neighbors(
    vectors: FloatMatrix,
    k: int,
    *,
    ann_threshold: int = ANN_THRESHOLD,
    seed: int = 0,
) -> Neighbors:
    """Every vector's ``k`` nearest *other* vectors (itself excluded).

    Args:
        vectors: ``(n, d)`` normalised float32 vectors.
        k: Neighbours per vector (clamped to ``n - 1``).
        ann_threshold: Use faiss, if installed, when ``n`` is above this.
        seed: Seed of faiss's k-means (unused by exact search).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    k = max(0, min(k, n - 1))
    note = None
    if n > ann_threshold and k > 0:
        try:
            import faiss  # noqa: F401 - the optional `ann` extra, imported for the check
        except ImportError:
            note = (
                f"{n} items is above the approximate-search threshold of {ann_threshold}, but "
                "faiss-cpu is not installed (pip install 'promptc-compiler[ann]'): exact search was used"
            )
        else:
            s, i, params = _faiss_search(vectors, k, seed=seed)
            return Neighbors(i, s, "faiss-ivf-flat", params)
    s, i = exact_search(vectors, vectors, k, self_offset=0)
    return Neighbors(i, s, "exact", {"block_rows": BLOCK_ROWS, "block_cols": BLOCK_COLS}, note)


def recall_at_k(approx: IndexMatrix, exact: IndexMatrix) -> float:
    """Mean fraction of each row's exact neighbours that the approximate row also found."""
    if exact.size == 0:
        return 1.0
    hits = 0
    for a, e in zip(approx, exact):
        hits += len(np.intersect1d(a, e, assume_unique=True))
    return hits / exact.size
