"""A hand-written answer extractor: what a user would write instead of ``promptc parse``.

One regex pulls each ``A[i]: <reasoning> The answer is <answer>.`` line out of every output of
a JSON Lines file (``{"id": …, "output": …}`` a line) and one JSON line is written per item. No
grammar, no types, no diagnosis: the floor that ``bench/bench_parse.py --cli`` measures
``promptc parse`` against.

Run::

    python bench/extract_answers.py OUTPUTS.jsonl > answers.jsonl
"""

from __future__ import annotations

import json
import re
import sys

ANSWER = re.compile(r"^A\[(\d+)\]: (.*) The answer is (.*)\.$", re.MULTILINE)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.read().split("\n")
    write = sys.stdout.write
    for line in lines:
        if not line:
            continue
        record = json.loads(line)
        for m in ANSWER.finditer(record["output"]):
            item = {"request_id": record["id"], "index": int(m[1]), "reasoning": m[2]}
            item["answer"] = m[3]
            write(json.dumps(item, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
