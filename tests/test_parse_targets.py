"""Retrieval selection: every item is in N requests and the target of one. The target is marked
in requests.jsonl (``target_item``) and read back into each request's shape; parsing a build
keeps, by default, exactly one result per item: its own request's."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from promptc.build import BatchLine, build, read_requests
from promptc.cli.parse import run_parse
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _retrieval_build(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    """A batch build of specs/gsm8k.yaml rewritten as retrieval would write it: one request
    per item, the item last, after its (here: preceding) neighbour."""
    task = compile_spec(SPECS / "gsm8k.yaml")
    out = tmp_path / "build"
    build(task, out)
    lines = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    ids = [i.id for i in task.items]
    batches = [[ids[k - 1], ids[k]] if k else [ids[1], ids[0]] for k in range(len(ids))]
    template = lines[0]
    rewritten = []
    for k, batch in enumerate(batches):
        rec = dict(template, id=f"r{k + 1:04d}", item_ids=batch, target_item=batch[-1])
        rewritten.append(json.dumps(rec))
    (out / "requests.jsonl").write_text("\n".join(rewritten) + "\n")
    lines_of_batches = [
        BatchLine(k, f"r{k + 1:04d}", tuple(b), len(b) - 1, None, "", "answer").text()
        for k, b in enumerate(batches)
    ]
    (out / "batches.jsonl").write_text("\n".join(lines_of_batches) + "\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["batches.jsonl"] = hashlib.sha256(
        (out / "batches.jsonl").read_bytes()
    ).hexdigest()  # as a build lists it
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, batches


def test_target_item_is_read_back(tmp_path: Path) -> None:
    out, batches = _retrieval_build(tmp_path)
    assert [r.target_item for r in read_requests(out)] == [b[-1] for b in batches]


def _parse(out: Path, outputs: Path, per_item: str) -> list[dict[str, object]]:
    buf, err = io.StringIO(), io.StringIO()
    run_parse(str(out), str(outputs), None, "recover", "jsonl", buf, err, per_item)
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def test_one_result_per_item_the_targets(tmp_path: Path) -> None:
    out, batches = _retrieval_build(tmp_path)
    outputs = tmp_path / "outputs.jsonl"
    with outputs.open("w") as f:
        for k, batch in enumerate(batches):
            # Each request answers its neighbour 0 and its target k + 100.
            text = f"A[1]: So. The answer is 0.\nA[2]: So. The answer is {k + 100}."
            f.write(json.dumps({"request_id": f"r{k + 1:04d}", "output": text}) + "\n")
    results = _parse(out, outputs, "target")
    assert [(r["item_id"], r["values"]["answer"]) for r in results] == [  # type: ignore[index]
        (b[-1], k + 100) for k, b in enumerate(batches)
    ]
    assert len({r["item_id"] for r in results}) == len(batches)
    assert len(_parse(out, outputs, "all")) == 2 * len(batches)
