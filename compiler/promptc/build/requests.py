"""``requests.jsonl``: one request a line, in the form of the build's target
(:mod:`promptc.build.targets`) — written by :class:`RequestFiles`, read by
:func:`read_requests`.

A batch target's requests are split, past the Batch API's limits per input file, into shards
``requests-0001.jsonl``, ``requests-0002.jsonl`` … each within both limits, in request order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from promptc.build.batches import BatchLine, batch_lines
from promptc.build.files import Sink, build_error, read_lines
from promptc.build.manifest import read_manifest
from promptc.build.targets import TARGETS, BuiltRequest, Target
from promptc.errors import Location, PromptcError
from promptc.limits import MAX_BATCH_SIZE
from promptc.strategies import NAMES, find_strategy
from promptc.text import describe, or_list

REQUESTS_FILE = "requests.jsonl"
SHARD_NAME = "requests-{:04d}.jsonl"


class RequestFiles:
    """The request lines of a build, written one at a time into ``requests.jsonl`` — or,
    past the target's limits per file (:attr:`Target.max_lines`, :attr:`Target.max_bytes`),
    into shards, each within both."""

    def __init__(
        self,
        chosen: Target,
        open_file: Callable[[str], Sink],
        rename: Callable[[str, str], None],
    ) -> None:
        self.target = chosen
        self.open_file = open_file
        self.rename = rename
        self.parts: list[str] = []
        self.sink: Sink | None = None
        self.lines = 0
        self.count = 0

    def write(self, line: str) -> None:
        """One request's line (without its line end)."""
        text = line + "\n"
        limits = self.target
        if self.sink is None or (
            self.lines
            and (
                self.lines >= limits.max_lines
                or self.sink.written + len(text.encode("utf-8")) > limits.max_bytes
            )
        ):
            self._next_part()
        assert self.sink is not None
        self.sink.write(text)
        self.lines += 1
        self.count += 1

    def _next_part(self) -> None:
        if len(self.parts) == 1:  # a second file: the first becomes a shard too
            self.rename(REQUESTS_FILE, SHARD_NAME.format(1))
            self.parts[0] = SHARD_NAME.format(1)
        name = REQUESTS_FILE if not self.parts else SHARD_NAME.format(len(self.parts) + 1)
        self.parts.append(name)
        self.sink = self.open_file(name)
        self.lines = 0

    def close(self) -> list[str]:
        """The names of the files written (``requests.jsonl``, empty for a build without
        requests, or the shards)."""
        if self.sink is None:
            self._next_part()
        return list(self.parts)


def request_paths(folder: Path) -> list[Path]:
    """The request files of a build: ``requests.jsonl``, or its shards in order."""
    # lexists: a link, a pipe or a device under the name is found, and refused when read.
    whole = folder / REQUESTS_FILE
    if os.path.lexists(whole):
        return [whole]
    shards = []
    k = 1
    while os.path.lexists(folder / SHARD_NAME.format(k)):
        shards.append(folder / SHARD_NAME.format(k))
        k += 1
    return shards


def read_requests(
    build_dir: str | Path, *, errors: list[PromptcError] | None = None
) -> list[BuiltRequest]:
    """The requests of a build, in file order (:func:`each_request`, all of them kept)."""
    return list(each_request(build_dir, errors=errors))


def each_request(
    build_dir: str | Path, *, errors: list[PromptcError] | None = None
) -> Iterator[BuiltRequest]:
    """The requests of a build, one at a time in file order, in whichever target's form it
    was built; what a line's form has no room for (items, grammar stem, target item) is taken
    from its line of ``batches.jsonl``, and the strategy from the manifest. A reader that
    keeps what it needs of each (its items, its prompt's hash) holds no prompt.

    Args:
        build_dir: The build's folder.
        errors: Collect mode: every malformed line's error is appended here and the line is
            skipped. Without it the first malformed line is raised.

    Raises:
        UsageError: Not a build of this format (see
            :func:`promptc.build.manifest.read_manifest`), no ``requests.jsonl``
            (``not-a-build``), or (unless ``errors`` collects them) a malformed line
            (``bad-requests-line``, at its file:line:col; ``bad-batches-line``).
    """
    folder = Path(build_dir)
    manifest = read_manifest(folder)
    paths = request_paths(folder)
    if not paths:
        raise build_error(
            "not-a-build",
            Location(str(folder / REQUESTS_FILE)),
            folder=str(folder),
            name=REQUESTS_FILE,
        )
    chosen = TARGETS[manifest["target"]]
    strategy = manifest.get("strategy")
    kind = strategy.get("kind") if isinstance(strategy, Mapping) else None
    seen: set[str] = set()

    def bad(message: str, where: Location) -> None:
        error = build_error("bad-requests-line", where, problem=message)
        if errors is None:
            raise error
        errors.append(error)

    with closing(batch_lines(folder)) as batches:
        for path in paths:
            for lineno, text in read_lines(path):
                where = Location(str(path), lineno, 1)
                batch = next(batches, None)
                request = _request(chosen, kind, text, batch, where, bad)
                if request is None:
                    continue
                if request.id in seen:
                    bad(f"request id {request.id!r} appears twice", where)
                    continue
                seen.add(request.id)
                yield request


def _request(
    chosen: Target,
    kind: object,
    text: str,
    batch: BatchLine | None,
    where: Location,
    bad: Callable[[str, Location], None],
) -> BuiltRequest | None:
    """One line read (``None``, said to ``bad``, when it is malformed)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        bad(f"not JSON: {e.msg}", Location(where.file, where.line, e.colno))
        return None
    except (ValueError, RecursionError):  # too many digits, or nested too deeply
        bad("not JSON that can be read (too many digits, or nested too deeply)", where)
        return None
    if not isinstance(data, dict):
        bad("expected a JSON object", where)
        return None
    said: dict[str, Any] = chosen.fields(data)
    rid = said.get("id")
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        bad("a request needs an 'id' (or 'custom_id')", where)
        return None
    rid = str(rid)
    messages = said.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        bad(f"request {rid} has no list of chat 'messages'", where)
        return None
    if batch is None or batch.request != rid:
        found = "none" if batch is None else f"one for request {batch.request}"
        bad(f"request {rid} has no line of its own in batches.jsonl (found {found})", where)
        return None
    line_kind = find_strategy(said.get("kind") or kind)
    if line_kind is None:
        bad(f"request {rid} names no strategy kind; expected " + or_list(NAMES), where)
        return None
    item_ids, stem, target_item = (
        said.get("item_ids"),
        said.get("grammar"),
        said.get("target_item"),
    )
    ids = tuple(str(i) for i in item_ids) if isinstance(item_ids, list) else batch.item_ids
    if len(ids) > MAX_BATCH_SIZE:  # no build makes one: parsing it would take minutes
        bad(
            f"request {rid} lists {len(ids)} items; a request holds at most {MAX_BATCH_SIZE}", where
        )
        return None
    if len(set(ids)) != len(ids):
        twice = next(i for k, i in enumerate(ids) if i in ids[:k])
        bad(f"request {rid} lists item {twice!r} twice", where)
        return None
    params = said.get("params", {})
    if not isinstance(params, dict):
        # Sent as they are, the request would go without its model and token budget.
        bad(
            f"request {rid} has 'params' that are {describe(params, show=False)}, not an object; "
            "expected its sampling parameters (model, max_tokens …) as promptc build "
            "writes them",
            where,
        )
        return None
    return BuiltRequest(
        id=rid,
        kind=line_kind,
        item_ids=ids,
        messages=tuple(messages),
        params=params,
        grammar=stem if isinstance(stem, str) else batch.grammar,
        location=where,
        target_item=target_item if isinstance(target_item, str) else batch.target_item,
        grammar_files=batch.grammar_files,
    )
