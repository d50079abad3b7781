"""Benchmark of similarity-based batch selection: embedding cache, batch similarity, neighbours.

Prints a Markdown report (the figures of bench/RESULTS-select.md):

1. Embedding GSM8K test (1,319 questions) and SVAMP (1,000; Body + Question) with the bundled
   all-MiniLM-L6-v2 into an empty cache (cold) and again from the warm cache, each in a fresh
   process, so that "warm" includes everything a rebuild does: fingerprinting the model files
   and reading SQLite, without importing torch.
2. Mean within-batch cosine similarity at batch size 8 of ``partition``, ``retrieval`` and
   ``diverse`` batches against ``sequential`` and ``random`` ones (random: mean of 5 seeds).
3. All-vs-all nearest-neighbour search (k = 8) on 100,000 synthetic 384-d vectors, exact
   (blocked) and approximate (faiss IVF-Flat), each in a fresh process: wall time, peak
   traced memory (tracemalloc, exact only: faiss allocates outside Python) and peak RSS, and
   the approximate search's recall@8 against exact search. Two kinds of vectors: clustered
   (2,000 clusters, like sentence embeddings) and isotropic Gaussian (the worst case for an
   inverted-file index: neighbours barely nearer than anything else).

The data are read where they lie (``../shared/data`` next to the repository, or
``--data-dir``); nothing is copied into the project. Run from the repository root::

    python bench/bench_select.py             # everything (15-30 minutes on 2 busy cores)
    python bench/bench_select.py --skip-ann  # embeddings and batch similarity only
    python bench/bench_select.py --only-ann  # the 100,000-vector neighbour search only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BATCH = 8
K = 8
N_SYNTH = int(os.environ.get("PROMPTC_BENCH_N", "100000"))
DIM = 384


def load_texts(name: str, data_dir: Path) -> list[str]:
    """The questions of a dataset, in file order."""
    if name == "gsm8k":
        path = data_dir / "gsm8k" / "test.jsonl"
        return [json.loads(line)["question"] for line in path.read_text("utf-8").splitlines()]
    if name == "svamp":
        rows = json.loads((data_dir / "svamp" / "SVAMP.json").read_text("utf-8"))
        return [f"{r['Body'].strip()} {r['Question'].strip()}" for r in rows]
    raise ValueError(name)


def child(args: list[str]) -> dict[str, object]:
    """Runs this script's phase in a fresh interpreter; returns its JSON and the wall time."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


# --- phases (run in child processes) -----------------------------------------------------


def phase_embed(dataset: str, cache: str, data_dir: Path) -> None:
    texts = load_texts(dataset, data_dir)
    t0 = time.perf_counter()
    from promptc.select.embed import SentenceTransformerEmbedder, embed_texts

    emb = embed_texts(texts, cache_dir=cache)
    seconds = time.perf_counter() - t0
    heavy = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "texts": len(texts),
                "computed": emb.computed,
                "cached": emb.cached,
                "model_loads": SentenceTransformerEmbedder.loads,
                "heavy_modules": heavy,
            }
        )
    )


def synthetic(kind: str, n: int = N_SYNTH, d: int = DIM, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np
    from promptc.select.neighbors import normalize

    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((2000, d), dtype=np.float32))
    out = np.empty((n, d), np.float32)
    # Made in chunks, so that generating the data does not set the process's peak memory.
    for r0 in range(0, n, 10_000):
        r1 = min(n, r0 + 10_000)
        noise = rng.standard_normal((r1 - r0, d), dtype=np.float32)
        if kind == "gaussian":
            out[r0:r1] = normalize(noise)
        else:
            labels = rng.integers(0, len(centres), size=r1 - r0)
            out[r0:r1] = normalize(centres[labels] + noise / np.sqrt(d))
    return out


def phase_search(kind: str, search: str, out: str) -> None:
    import tracemalloc

    import numpy as np
    from promptc.select import neighbors as nb

    v = synthetic(kind)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    traced = search == "exact"
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    found = nb.all_neighbors(v, K, ann_threshold=10**12 if search == "exact" else 0)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    if traced:
        tracemalloc.stop()
    result: dict[str, object] = {
        "seconds": seconds,
        "search": found.search,
        "params": found.params,
        "traced_peak_mib": None if peak is None else peak / 2**20,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if search == "exact":
        np.save(out, found.indices)
    else:
        result["recall"] = nb.recall_at_k(found.indices, np.load(out))
    print(json.dumps(result))


# --- the report --------------------------------------------------------------------------


def embedding_report(data_dir: Path, rows: list[str]) -> dict[str, str]:
    caches = {}
    rows += [
        (
            "| dataset | texts | cold: embed call | cold: process | warm: embed call (median of 3) "
            "| warm: process | speed-up (call) | speed-up (process) | warm imports torch? |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("gsm8k", "svamp"):
        cache = tempfile.mkdtemp(prefix=f"promptc-bench-{name}-")
        caches[name] = cache
        cold = child(["--phase", "embed", name, cache, "--data-dir", str(data_dir)])
        assert cold["computed"] == len(set(load_texts(name, data_dir))), cold
        warms = [
            child(["--phase", "embed", name, cache, "--data-dir", str(data_dir)]) for _ in range(3)
        ]
        assert all(w["computed"] == 0 and w["model_loads"] == 0 for w in warms), warms
        warm_call = statistics.median(float(w["seconds"]) for w in warms)  # type: ignore[arg-type]
        warm_proc = statistics.median(float(w["process_s"]) for w in warms)  # type: ignore[arg-type]
        cold_call, cold_proc = float(cold["seconds"]), float(cold["process_s"])  # type: ignore[arg-type]
        rows.append(
            f"| {name} | {cold['texts']} | {cold_call:.1f} s | {cold_proc:.1f} s | "
            f"{warm_call * 1000:.0f} ms | {warm_proc:.2f} s | {cold_call / warm_call:.0f}× | "
            f"{cold_proc / warm_proc:.0f}× | {'yes' if warms[0]['heavy_modules'] else 'no'} |"
        )
    return caches


def similarity_report(data_dir: Path, caches: dict[str, str], rows: list[str]) -> None:
    import numpy as np
    from promptc.select import similarity as sim
    from promptc.select.embed import embed_texts

    methods = ["partition", "retrieval", "diverse"]
    rows += [
        "",
        f"Mean within-batch cosine similarity, batch size {BATCH} (selection time in brackets):",
        "",
        "| dataset | partition | retrieval | diverse | sequential | random (5 seeds: mean ± sd) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, cache in caches.items():
        v = embed_texts(load_texts(name, data_dir), cache_dir=cache).vectors
        n = len(v)
        cells = []
        for m in methods:
            t0 = time.perf_counter()
            groups = sim.find_groups(v, BATCH, m).groups
            dt = time.perf_counter() - t0
            score = sim.mean_within_batch_similarity(v, [g.members for g in groups])
            cells.append(f"{score:.3f} ({dt:.2f} s, {len(groups)} batches)")
        seq = sim.mean_within_batch_similarity(
            v, [range(i, min(n, i + BATCH)) for i in range(0, n, BATCH)]
        )
        rand = []
        for seed in range(5):
            order = np.random.default_rng(seed).permutation(n).tolist()
            rand.append(
                sim.mean_within_batch_similarity(
                    v, [order[i : i + BATCH] for i in range(0, n, BATCH)]
                )
            )
        rows.append(
            f"| {name} | {' | '.join(cells)} | {seq:.3f} | "
            f"{statistics.mean(rand):.3f} ± {statistics.stdev(rand):.3f} |"
        )


def search_report(rows: list[str]) -> None:
    rows += [
        "",
        (
            f"All-vs-all neighbour search, {N_SYNTH:,} × {DIM}-d float32 vectors, k = {K} "
            f"(each in a fresh process; the vectors alone take {N_SYNTH * DIM * 4 / 2**20:.0f} MiB):"
        ),
        "",
        (
            "| vectors | search | time | peak traced (tracemalloc) | RSS with the vectors loaded "
            "| peak RSS | recall@8 vs exact | parameters |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind in ("clustered", "gaussian"):
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "exact.npy")
            exact = child(["--phase", "search", kind, "exact", out])
            ann = child(["--phase", "search", kind, "ann", out])
        for r in (exact, ann):
            traced = r["traced_peak_mib"]
            traced_cell = "—" if traced is None else f"{float(traced):.0f} MiB"  # type: ignore[arg-type]
            recall_cell = "1 (reference)" if r is exact else f"{float(r['recall']):.4f}"  # type: ignore[arg-type]
            seconds = float(r["seconds"])  # type: ignore[arg-type]
            rss = float(r["rss_peak_mib"])  # type: ignore[arg-type]
            before = float(r["rss_before_mib"])  # type: ignore[arg-type]
            params = json.dumps(r["params"], sort_keys=True)
            rows.append(
                f"| {kind} | {r['search']} | {seconds:.1f} s | {traced_cell} | {before:.0f} MiB | "
                f"{rss:.0f} MiB | "
                f"{recall_cell} | `{params}` |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--skip-ann", action="store_true", help="skip the 100,000-vector search")
    parser.add_argument("--only-ann", action="store_true", help="only the 100,000-vector search")
    args = parser.parse_args()
    if args.phase:
        if args.phase[0] == "embed":
            phase_embed(args.phase[1], args.phase[2], args.data_dir)
        else:
            phase_search(args.phase[1], args.phase[2], args.phase[3])
        return
    rows = [
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; load average at start "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        ),
        "",
    ]
    if not args.only_ann:
        caches = embedding_report(args.data_dir, rows)
        similarity_report(args.data_dir, caches, rows)
    if not args.skip_ann:
        search_report(rows)
    rows += ["", f"Load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
