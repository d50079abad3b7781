"""Benchmark of ``promptc build`` (issue 2): figures for bench/RESULTS-build.md.

    python bench/bench_build.py [--items 10000] [--runs 5]

Measures, on a synthetic 10,000-item dataset generated in a temporary folder:

1. the whole ``promptc build`` command (a fresh process: start-up, YAML, validation, data,
   selection, rendering, grammar, writing) at batch size 8 with ``auto-demo``: wall time
   (median of ``--runs``) and per request;
2. ``promptc --help`` start-up time (median of 15 runs);
3. in the same run, LangChain's ``FewShotPromptTemplate`` (langchain-core, installed for this
   benchmark only: ``pip install langchain-core``) formatting the same 10,000 items one prompt
   each, against promptc's ``few-shot`` build of them — both in-process (select + render vs.
   ``format`` calls) and as whole commands — as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
promptc: 1
name: bench
instruction: Solve the math word problem. Think step by step, then state the final answer.
inputs:
  question: {type: text}
outputs:
  reasoning: {type: text}
  answer: {type: number}
answer_format: "{reasoning} The answer is {answer}."
demos:
  - question: A baker fills 6 trays with 12 rolls each and sells 50 rolls. How many rolls are left?
    reasoning: 6 * 12 = 72 rolls; 72 - 50 = 22.
    answer: 22
  - question: Mia reads 15 pages a day. How many days does she need for a 105-page book?
    reasoning: 105 / 15 = 7.
    answer: 7
data: {path: data.jsonl, id: qid}
strategy: {kind: auto-demo, batch_size: 8}
model: {name: gpt-4o-mini, temperature: 0, max_tokens: 2048}
"""

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emi", "Farid", "Gus", "Hana", "Ivan", "Jo"]
THINGS = ["apples", "stamps", "marbles", "books", "shells", "cards", "pencils", "coins"]


def make_dataset(folder: Path, n: int) -> None:
    with open(folder / "data.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            a, b, c = 3 + i % 17, 2 + i % 9, 1 + i % 5
            name, thing = NAMES[i % len(NAMES)], THINGS[i % len(THINGS)]
            q = (
                f"{name} has {a} boxes with {b} {thing} in each box and gives away {c} {thing}. "
                f"How many {thing} does {name} have left?"
            )
            f.write(json.dumps({"qid": f"q{i:05d}", "question": q}) + "\n")
    (folder / "bench.yaml").write_text(SPEC, encoding="utf-8")


def promptc_command() -> list[str]:
    exe = shutil.which("promptc")
    return [exe] if exe else [sys.executable, "-m", "promptc"]


def timed(cmd: list[str], runs: int, cwd: Path) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed:\n{proc.stderr}")
    return times


def langchain_render(folder: Path) -> tuple[float, float, int]:
    """(import seconds, render seconds, prompts) for LangChain's FewShotPromptTemplate."""
    t0 = time.perf_counter()
    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

    t_import = time.perf_counter() - t0

    demos = [
        {
            "question": "A baker fills 6 trays with 12 rolls each and sells 50 rolls. How many rolls are left?",
            "answer": "6 * 12 = 72 rolls; 72 - 50 = 22. The answer is 22.",
        },
        {
            "question": "Mia reads 15 pages a day. How many days does she need for a 105-page book?",
            "answer": "105 / 15 = 7. The answer is 7.",
        },
    ]
    rows = [json.loads(l) for l in (folder / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    t0 = time.perf_counter()
    prompt = FewShotPromptTemplate(
        examples=demos,
        example_prompt=PromptTemplate.from_template("{question}\nAnswer: {answer}"),
        prefix="Solve the math word problem. Think step by step, then state the final answer.",
        suffix="{question}",
        input_variables=["question"],
    )
    out = [prompt.format(question=r["question"]) for r in rows]
    return t_import, time.perf_counter() - t0, len(out)


def promptc_render(folder: Path) -> tuple[float, int]:
    """In-process select + render of the few-shot build (the spec compiled beforehand): the
    timed part compiles the template and renders every request, as LangChain's timed part
    builds its FewShotPromptTemplate and formats every prompt."""
    from promptc.render.renderer import render
    from promptc.select.methods import select
    from promptc.spec.lower import compile_spec

    task = compile_spec(folder / "bench.yaml", overrides={("strategy", "kind"): "few-shot"})
    import jinja2.sandbox  # noqa: F401  (imports are timed apart, as LangChain's are)

    t0 = time.perf_counter()
    requests = render(task, select(task))
    return time.perf_counter() - t0, len(requests)


def phases(folder: Path) -> dict[str, float]:
    """Seconds per stage of the auto-demo build, in this process (one run, warm imports)."""
    import gc

    import jinja2.sandbox  # noqa: F401
    from promptc.build import build, grammars
    from promptc.render.checks import check_templates
    from promptc.render.renderer import render
    from promptc.select.methods import select
    from promptc.spec.lower import compile_spec
    from promptc.text import gc_paused

    compile_spec(folder / "bench.yaml")  # warm the imports
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    with gc_paused():
        task = compile_spec(folder / "bench.yaml")
    gc.freeze()
    out["compile_spec (load, validate, read data, lower)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    check_templates(task)
    out["check_templates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    selection = select(task)
    out["select"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    requests = render(task, selection)
    out["render"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grammars(task, sorted({len(r.batch.item_ids) for r in requests}))
    out["grammar"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build(task, folder / "phases")
    out["build() = select + render + grammar + manifest + write"] = time.perf_counter() - t0
    gc.unfreeze()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cmd = promptc_command()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, promptc command: {' '.join(cmd)}"
    )
    print("load average at start (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_dataset(folder, args.items)

        t = timed([*cmd, "build", "bench.yaml", "-o", "out"], args.runs, folder)
        n_req = len((folder / "out" / "requests.jsonl").read_text(encoding="utf-8").splitlines())
        build_s = statistics.median(t)
        print(
            f"auto-demo build, {args.items} items, batch 8: {n_req} requests; wall "
            f"{build_s:.3f} s median of {args.runs} (min {min(t):.3f}, max {max(t):.3f}); "
            f"{build_s / n_req * 1e3:.3f} ms per request"
        )

        for name, seconds in phases(folder).items():
            print(f"  in-process {name}: {seconds:.3f} s")

        h = timed([*cmd, "--help"], 15, folder)
        print(
            f"promptc --help: median {statistics.median(h) * 1e3:.1f} ms of 15 runs "
            f"(min {min(h) * 1e3:.1f}, max {max(h) * 1e3:.1f})"
        )
        py = timed([sys.executable, "-c", "pass"], 15, folder)
        print(f"  (bare python -c pass: median {statistics.median(py) * 1e3:.1f} ms)")

        f = timed(
            [*cmd, "build", "bench.yaml", "--strategy", "few-shot", "-o", "fs"], args.runs, folder
        )
        fs_cmd = statistics.median(f)
        n_fs = len((folder / "fs" / "requests.jsonl").read_text(encoding="utf-8").splitlines())
        print(f"few-shot build command: {n_fs} requests, wall {fs_cmd:.3f} s median of {args.runs}")

        renders = [promptc_render(folder) for _ in range(args.runs)]
        pc_render = statistics.median(r[0] for r in renders)
        print(
            f"promptc few-shot select+render in-process: {pc_render:.3f} s for {renders[0][1]} "
            f"prompts ({pc_render / renders[0][1] * 1e6:.1f} µs per prompt)"
        )
        try:
            lc = [langchain_render(folder) for _ in range(args.runs)]
        except ImportError:
            print("langchain-core is not installed: pip install langchain-core")
            return
        import langchain_core

        lc_render = statistics.median(r[1] for r in lc)
        lc_import = lc[0][0]
        print(
            f"langchain-core {langchain_core.__version__} FewShotPromptTemplate: {lc_render:.3f} s "
            f"for {lc[0][2]} prompts ({lc_render / lc[0][2] * 1e6:.1f} µs per prompt); "
            f"import {lc_import:.3f} s"
        )
        print(
            f"ratio, rendering in-process: LangChain / promptc = {lc_render / pc_render:.2f} "
            "(above 1: promptc is faster)"
        )
        print(
            f"ratio, LangChain import+render vs the whole promptc few-shot build command "
            f"(which also validates, reads data, writes files and grammars): "
            f"{(lc_import + lc_render) / fs_cmd:.2f}"
        )
    print("load average at end (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
