"""faiss neighbour search at a million items: recall and time (issue 13).

    python bench/bench_ann_1m.py [--n 1000000] [--queries 2000] [--nprobe 48 16 4]

Makes ``--n`` clustered, embedding-like 384-d vectors (``bench_select.synthetic``: 2,000 unit
centres plus noise, normalised), builds the faiss ``IndexIVFFlat`` that
:func:`promptc.select.neighbors.all_neighbors` uses above its exact-search threshold (4·√n
lists, 10 k-means iterations), then for a random sample of ``--queries`` items finds the
top 8 (self excluded) with each ``nprobe`` — the candidates re-scored exactly, as promptc
does — and exactly, by brute force over all n. Reported: training and adding time, search
time per query and extrapolated to all n queries (what a ``retrieval`` or ``partition`` build
of n items runs), and recall@8 against exact search on the sample.

Exact all-vs-all search at a million items (about 10¹² dot products of 384 floats) would take
days on 2 cores; the sample's exact answers are what recall needs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

K = 8


def main() -> None:
    import faiss
    import numpy as np
    from bench_select import synthetic
    from promptc.select import neighbors as nb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[nb.ANN_NPROBE, 16, 4])
    args = ap.parse_args()
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average at start: {f.read().split()[:3]}", flush=True)

    t0 = time.perf_counter()
    v = synthetic("clustered", n=args.n)
    n, d = v.shape
    print(f"{n:,} × {d} clustered vectors made in {time.perf_counter() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(n, size=args.queries, replace=False))

    t0 = time.perf_counter()
    # All sample queries at once (tiles of BLAS products), K + 1 so that each can drop itself.
    _, found = nb.exact_search(v[sample], v, K + 1)
    exact_i = np.array([[j for j in row if j != q][:K] for q, row in zip(sample, found)])
    exact_t = time.perf_counter() - t0
    print(
        f"exact top-{K} for {len(sample):,} queries: {exact_t:.1f} s "
        f"({exact_t / len(sample) * 1e3:.2f} ms/query; all {n:,}: {exact_t / len(sample) * n / 3600:.1f} h)",
        flush=True,
    )

    nlist = max(1, round(4 * math.sqrt(n)))
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.cp.niter = 10
    index.train(v)
    index.add(v)
    build_t = time.perf_counter() - t0
    print(f"IVFFlat, {nlist} lists: train + add {build_t:.1f} s", flush=True)

    fetch = nb.ANN_OVERFETCH * K + 1
    rows = []
    for nprobe in args.nprobe:
        index.nprobe = min(nprobe, nlist)
        t0 = time.perf_counter()
        _, cand = index.search(v[sample], fetch)
        cand = cand.astype(np.int64)
        cand.sort(axis=1)
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        s = np.einsum("rd,rkd->rk", v[sample], v[safe], dtype=np.float32)
        s[~valid | (cand == sample[:, None])] = -np.inf
        _, best_i = nb.top_k(s, np.where(valid, cand, n), K)
        t = time.perf_counter() - t0
        recall = nb.recall_at_k(best_i, exact_i)
        per_query = t / len(sample)
        row = {
            "nprobe": nprobe,
            "ms_per_query": per_query * 1e3,
            "all_queries_s": per_query * n,
            "whole_search_s": build_t + per_query * n,
            "recall_at_8": recall,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    print()
    print("| nprobe | recall@8 | search ms/query | all n queries | train+add + all queries |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['nprobe']} | {r['recall_at_8']:.4f} | {r['ms_per_query']:.2f} | "
            f"{r['all_queries_s'] / 60:.1f} min | {r['whole_search_s'] / 60:.1f} min |"
        )
    print(
        f"| exact | 1.0000 | {exact_t / len(sample) * 1e3:.2f} | "
        f"{exact_t / len(sample) * n / 3600:.1f} h | — |"
    )
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average at end: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
