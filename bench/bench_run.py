"""``promptc run --local`` on the embedded SmolLM2-135M: speed, tokens and parse rate.

The 32 items of bench/sentiment32.yaml are built three ways — ``single``, ``batch`` (8 per
request) and ``auto-demo`` (8 per request) — and run on the embedded model with GBNF, first
without repair (questions/s, tokens per question, parse rate), then with repair on the same
outputs (only the repair requests are sent: the parse rate after repair and what it cost).
``single`` is the baseline of the ratios. Each strategy starts its own embedded server.

Usage: python bench/bench_run.py [--items 32] [--repair 2] [--grammar auto|none]
                                 [--kinds single,batch,auto-demo] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--repair", type=int, default=2)
    ap.add_argument("--spec", default=str(REPO / "bench" / "sentiment32.yaml"))
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS-run-local.json"))
    ap.add_argument("--kinds", default="single,batch,auto-demo")
    ap.add_argument(
        "--grammar",
        default="auto",
        help="auto (GBNF on the embedded llama.cpp server) or none: unconstrained, where "
        "repair has something to do",
    )
    args = ap.parse_args()

    from promptc import RunOptions, run_build
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    work = Path(tempfile.mkdtemp(prefix="promptc-bench-run-"))
    os.environ["PROMPTC_CACHE_DIR"] = str(work / "cache")
    rows = []
    for kind in args.kinds.split(","):
        size = 1 if kind == "single" else 8
        task = compile_spec(
            args.spec,
            overrides={
                ("strategy", "kind"): kind,
                ("strategy", "batch_size"): size,
                ("strategy", "selection", "method"): "sequential",
            },
        )
        out = work / kind
        build(task, out)
        n_requests = args.items // size
        started = time.monotonic()
        first = run_build(
            out,
            RunOptions(
                local=True,
                grammar=args.grammar,
                parse=True,
                repair=0,
                limit=n_requests,
                concurrency=1,
                use_cache=False,
            ),
            progress=lambda line, k=kind: print(f"[{k}] {line}", file=sys.stderr),
        )
        elapsed = time.monotonic() - started
        items = first.items
        assert first.statuses is not None
        ok = first.statuses["ok"]
        started = time.monotonic()
        second = run_build(
            out,
            RunOptions(
                local=True,
                grammar=args.grammar,
                parse=True,
                repair=args.repair,
                limit=n_requests,
                concurrency=1,
                use_cache=False,
            ),
            progress=lambda line, k=kind: print(f"[{k}+repair] {line}", file=sys.stderr),
        )
        repair_s = time.monotonic() - started
        assert second.statuses is not None
        row = {
            "kind": kind,
            "grammar": args.grammar,
            "batch_size": size,
            "items": items,
            "requests": n_requests,
            "seconds": round(elapsed, 1),
            "questions_per_s": round(items / elapsed, 4),
            "prompt_tokens_per_question": round(first.prompt_tokens / items, 1),
            "completion_tokens_per_question": round(first.completion_tokens / items, 1),
            "parse_rate": round(ok / items, 4),
            "parse_rate_after_repair": round(second.statuses["ok"] / items, 4),
            "repair_requests": second.repair_requests,
            "repair_seconds": round(repair_s, 1),
            "repair_tokens": second.prompt_tokens
            + second.completion_tokens
            - first.prompt_tokens
            - first.completion_tokens,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    base = rows[0]
    for r in rows:
        r["speed_vs_single"] = round(r["questions_per_s"] / base["questions_per_s"], 2)
    Path(args.out).write_text(
        json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
