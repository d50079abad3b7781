"""Exact blocked nearest-neighbour search against brute force, tie-breaking, memory, faiss."""

from __future__ import annotations

import sys
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")

from promptc.select import neighbors as nb


def brute_force(queries, corpus, k, self_offset=None):
    """Every score, then a full stable sort by (score desc, index asc)."""
    scores = queries @ corpus.T
    if self_offset is not None:
        for r in range(queries.shape[0]):
            scores[r, r + self_offset] = -np.inf
    idx = np.broadcast_to(np.arange(corpus.shape[0]), scores.shape)
    order = np.lexsort((idx, -scores), axis=-1)
    k = min(k, corpus.shape[0] - (1 if self_offset is not None else 0))
    return np.take_along_axis(scores, order, 1)[:, :k], order[:, :k]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 120),
    d=st.integers(1, 6),
    k=st.integers(0, 12),
    block_rows=st.integers(1, 40),
    block_cols=st.integers(1, 40),
    levels=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_exact_search_equals_brute_force_with_ties(n, d, k, block_rows, block_cols, levels, seed):
    # Small integer components: float32 products and sums are exact, so scores compare equal
    # whatever the tiling, and ties are frequent: the index tie-break is what is tested.
    rng = np.random.default_rng(seed)
    v = rng.integers(0, levels, size=(n, d)).astype(np.float32)
    s, i = nb.exact_search(v, v, k, self_offset=0, block_rows=block_rows, block_cols=block_cols)
    bs, bi = brute_force(v, v, k, self_offset=0)
    assert i.tolist() == bi.tolist()
    assert s.tolist() == bs.tolist()


def test_exact_search_on_random_normalised_vectors():
    rng = np.random.default_rng(7)
    v = nb.normalize(rng.normal(size=(3000, 24)))
    s, i = nb.exact_search(v, v, 9, self_offset=0, block_rows=256, block_cols=700)
    bs, bi = brute_force(v, v, 9, self_offset=0)
    assert (i == bi).mean() > 0.999  # float32 tiles may differ from one big product by an ulp
    np.testing.assert_allclose(s, bs, atol=1e-6)


def test_queries_other_than_the_corpus():
    rng = np.random.default_rng(3)
    corpus = rng.integers(0, 3, size=(50, 4)).astype(np.float32)
    queries = rng.integers(0, 3, size=(7, 4)).astype(np.float32)
    _s, i = nb.exact_search(queries, corpus, 5, block_rows=3, block_cols=11)
    _bs, bi = brute_force(queries, corpus, 5)
    assert i.tolist() == bi.tolist()


def test_ties_go_to_the_lowest_index():
    v = np.ones((10, 3), np.float32)
    _s, i = nb.exact_search(v, v, 3, self_offset=0, block_rows=4, block_cols=3)
    assert i.tolist()[0] == [1, 2, 3]
    assert i.tolist()[1] == [0, 2, 3]
    assert i.tolist()[9] == [0, 1, 2]


def test_top_k_keeps_the_leftmost_of_tied_scores():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], np.float32)
    idx = np.arange(5, dtype=np.int64)[None, :]
    s, i = nb.top_k(scores, idx, 3)
    assert i.tolist() == [[1, 0, 2]]
    assert s[0].tolist() == pytest.approx([0.9, 0.5, 0.5])


def test_k_is_clamped_to_the_other_items():
    v = np.eye(3, dtype=np.float32)
    _s, i = nb.exact_search(v, v, 10, self_offset=0)
    assert i.shape == (3, 2)
    assert sorted(i[0].tolist()) == [1, 2]


def test_normalize_keeps_zero_rows_zero():
    v = nb.normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert v.dtype == np.float32
    assert v.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]


def peak_bytes(n):
    v = nb.normalize(np.random.default_rng(0).normal(size=(n, 16)))
    tracemalloc.start()
    try:
        nb.exact_search(v, v, 8, self_offset=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_a_tile_not_the_full_matrix():
    small, large = peak_bytes(6_000), peak_bytes(12_000)
    # A full 12,000² float32 matrix takes 549 MiB; one 1024×4096 tile and its work arrays
    # take a fixed amount, whatever n is.
    assert large < 100 * 2**20, f"peak {large / 2**20:.0f} MiB"
    assert large < 1.25 * small, (small, large)


def clustered(n, d, clusters, seed, noise=0.35):
    rng = np.random.default_rng(seed)
    centres = nb.normalize(rng.normal(size=(clusters, d)))
    labels = rng.integers(0, clusters, size=n)
    return nb.normalize(centres[labels] + noise * rng.normal(size=(n, d)) / np.sqrt(d))


def test_faiss_above_the_threshold_recalls_and_rescores_exactly():
    pytest.importorskip("faiss")
    v = clustered(6000, 32, 60, seed=1)
    approx = nb.all_neighbors(v, 8, ann_threshold=1000)
    exact = nb.all_neighbors(v, 8, ann_threshold=10**9)
    assert approx.search == "faiss-ivf-flat"
    assert exact.search == "exact"
    assert nb.recall_at_k(approx.indices, exact.indices) > 0.95
    # Scores are exact dot products of the returned pairs, sorted, never the item itself.
    rows = np.arange(len(v))[:, None]
    np.testing.assert_allclose(
        approx.scores, np.einsum("rd,rkd->rk", v, v[approx.indices]), atol=1e-6
    )
    assert (np.diff(approx.scores, axis=1) <= 0).all()
    assert not (approx.indices == rows).any()
    again = nb.all_neighbors(v, 8, ann_threshold=1000)
    assert again.indices.tolist() == approx.indices.tolist()


def test_without_faiss_exact_search_runs_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    v = clustered(300, 8, 5, seed=2)
    found = nb.all_neighbors(v, 4, ann_threshold=100)
    assert found.search == "exact"
    assert found.note == (
        "300 items is above the approximate-search threshold of 100, but faiss-cpu is not "
        "installed (pip install 'promptc-compiler[ann]'): exact search was used"
    )


def test_recall_at_k():
    exact = np.array([[1, 2], [0, 2]])
    assert nb.recall_at_k(np.array([[2, 1], [0, 3]]), exact) == 0.75
