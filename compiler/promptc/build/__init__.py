"""The build: a compiled task → a folder of files, byte-identical on every rebuild, and the one
reader of such a folder.

``build(task, out_dir)`` chains the back-end stages — select, render, grammar — one request at
a time (:mod:`promptc.build.produce`) and writes, through one writer that puts every file in
place atomically (:mod:`promptc.build.writer`):

=====================  ===================================================================
file                   content (its writer and reader)
=====================  ===================================================================
requests.jsonl         one request a line, in the target's form: promptc's chat records or
                       the OpenAI Batch API's (``--target``; :mod:`~promptc.build.targets`),
                       in shards ``requests-0001.jsonl`` … past the Batch API's limits
                       (:mod:`~promptc.build.requests`)
batches.jsonl          one request a line: its items, target item, similarities, prompt
                       hash and grammar files (:mod:`~promptc.build.batches`)
answer.lark …          the answer grammar of each request size and its exports (``.gbnf``,
                       ``.schema.json``, ``.regex``, ``.parse.regex``); ``grammars/<id>.*``,
                       a request's own, where the grammar depends on the items
                       (:mod:`~promptc.build.grammars`)
task.json              what parse, run, collect and eval read of the task, and items.jsonl,
items.jsonl            its items: no spec is needed after building
                       (:mod:`~promptc.build.task_file`)
manifest.json          the build format, promptc version; sha256 of the spec, the specs it
                       extends, each template used, the data and every file written; the
                       selection; counts and a plain statement of the cost; written last
                       (:mod:`~promptc.build.manifest`)
=====================  ===================================================================

Everything is JSON with sorted keys, UTF-8, ``\\n`` line ends and a final newline
(:mod:`~promptc.build.files`); paths are relative (to the spec's folder), and nothing depends
on time, the machine or the environment, so that a build can live in git and its diffs show
real changes only. API keys and environment values are never read, let alone written.

Reading a build back (parse, run, collect, diff, eval) goes through the readers beside each
writer: :func:`read_manifest` first (a build of another format is refused), then
:func:`read_requests`, :func:`~promptc.build.batches.batch_lines`, :func:`read_task` and
:func:`~promptc.build.grammars.grammar_text`, which take no file name from the folder that
leaves it and read no file without a bound.
"""

from __future__ import annotations

from promptc.build.batches import BATCHES_FILE, BatchLine, batch_lines, prompt_hash
from promptc.build.grammars import (
    REQUEST_GRAMMARS,
    BuildGrammars,
    ConstraintCache,
    Grammars,
    constraint,
    grammar_stem,
    grammar_text,
    grammars,
)
from promptc.build.make import BuildResult, assemble, build, ir_json, iter_lines
from promptc.build.manifest import BUILD_FORMAT, MANIFEST_FILE, read_manifest
from promptc.build.produce import iter_requests
from promptc.build.requests import REQUESTS_FILE, each_request, read_requests, request_paths
from promptc.build.targets import BuiltRequest, Constraint, Target, find_target
from promptc.build.task_file import ITEMS_FILE, TASK_FILE, read_task
from promptc.build.writer import FolderWriter, is_build_file, is_request_grammar

__all__ = [
    "BATCHES_FILE",
    "BUILD_FORMAT",
    "ITEMS_FILE",
    "MANIFEST_FILE",
    "REQUESTS_FILE",
    "REQUEST_GRAMMARS",
    "TASK_FILE",
    "BatchLine",
    "BuildGrammars",
    "BuildResult",
    "BuiltRequest",
    "Constraint",
    "ConstraintCache",
    "FolderWriter",
    "Grammars",
    "Target",
    "assemble",
    "batch_lines",
    "build",
    "constraint",
    "each_request",
    "find_target",
    "grammar_stem",
    "grammar_text",
    "grammars",
    "ir_json",
    "is_build_file",
    "is_request_grammar",
    "iter_lines",
    "iter_requests",
    "prompt_hash",
    "read_manifest",
    "read_requests",
    "read_task",
    "request_paths",
]
