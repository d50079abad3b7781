"""``batches.jsonl``: one line per request, in request order — what the build says of it.

Each line is one JSON object (:func:`promptc.build.files.dumps`)::

    {"grammar": "answer", "grammar_files": {}, "index": 0, "item_ids": ["q1", "q2"],
     "prompt_sha256": "…", "request": "r0001", "similarities": null, "target": null}

``index`` is the batch's place (0-based), ``request`` its request id, ``item_ids`` its items in
prompt order, ``target`` the index in ``item_ids`` of the item the batch is *for* (a
``retrieval`` batch) or ``null``, ``similarities`` each item's similarity when a similarity
method made the batch, ``prompt_sha256`` the sha256 of the request's messages
(:func:`prompt_hash`), ``grammar`` the stem of its grammar files and ``grammar_files`` its own
grammar files (``grammars/<id>.*``) with their sha256; a build with voting rounds
(``strategy.vote``) adds ``round``, the request's round from 1. The file is the build's record of every
request, streamed one line at a time, so that ``manifest.json`` stays small for a build of a
million items; its sha256 is in the manifest's ``files``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from promptc.build.files import build_error, dumps, read_lines
from promptc.build.manifest import check_hashes, read_manifest
from promptc.errors import Location, UsageError
from promptc.text import canonical_json, sha256_text

BATCHES_FILE = "batches.jsonl"


def prompt_hash(messages: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the canonical JSON of a request's messages (``role``, ``content``): equal
    prompts, equal hashes."""
    return sha256_text(canonical_json(list(messages)))


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One line of ``batches.jsonl`` (see the module's docstring)."""

    index: int
    request: str
    item_ids: tuple[str, ...]
    target: int | None
    similarities: tuple[float, ...] | None
    prompt_sha256: str
    grammar: str
    grammar_files: Mapping[str, str] = field(default_factory=dict)
    #: The voting round of the request (``strategy.vote``); ``None`` (and no key in the
    #: line) for a build without votes, whose lines stay as they were.
    round: int | None = None

    @property
    def target_item(self) -> str | None:
        """The id of the item the batch is for, or ``None``."""
        return self.item_ids[self.target] if self.target is not None else None

    def text(self) -> str:
        """The line, without its line end: the one writer of ``batches.jsonl``, whose keys
        are the fields' names."""
        line = {name: getattr(self, name) for name in KEYS}
        if self.round is None:
            del line["round"]
        return dumps(line)

    @classmethod
    def read(cls, text: str, where: Location) -> BatchLine:
        """A line read back.

        Raises:
            UsageError: ``bad-batches-line``: not JSON, or not the object the writer writes.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise _bad(where, f"not JSON: {e}") from None
        if not isinstance(data, dict):
            raise _bad(where, "expected a JSON object")
        index, request, ids = data.get("index"), data.get("request"), data.get("item_ids")
        target, sims = data.get("target"), data.get("similarities")
        sha, grammar, files = (
            data.get("prompt_sha256"),
            data.get("grammar"),
            data.get("grammar_files"),
        )
        if not (
            type(index) is int
            and isinstance(request, str)
            and isinstance(ids, list)
            and all(isinstance(i, str) for i in ids)
            and (target is None or (type(target) is int and 0 <= target < len(ids)))
            and (sims is None or isinstance(sims, list))
            and isinstance(sha, str)
            and isinstance(grammar, str)
            and isinstance(files, dict)
            and all(isinstance(v, str) for v in files.values())
            and (data.get("round") is None or type(data.get("round")) is int)
        ):
            raise _bad(
                where,
                "expected index, request, item_ids, target, similarities, prompt_sha256, "
                "grammar and grammar_files, as promptc build writes them",
            )
        return cls(
            index=index,
            request=request,
            item_ids=tuple(ids),
            target=target,
            similarities=None if sims is None else tuple(sims),
            prompt_sha256=sha,
            grammar=grammar,
            grammar_files=files,
            round=data.get("round"),
        )


#: The keys of a line: the fields of :class:`BatchLine`, in order.
KEYS = tuple(f.name for f in fields(BatchLine))


def _bad(where: Location, problem: str) -> UsageError:
    return build_error("bad-batches-line", where, problem=problem)


def batch_lines(folder: Path) -> Generator[BatchLine, None, None]:
    """The lines of a build's ``batches.jsonl``, in order, the file checked first against the
    sha256 the manifest lists for it: its item ids say which items a batch target's answers
    are credited to, as ``items.jsonl``'s say what those items are.

    Raises:
        UsageError: Not a build of this format (see
            :func:`promptc.build.manifest.read_manifest`), no such file (``not-a-build``), a
            file changed after building (``build-modified``), or a malformed line
            (``bad-batches-line``).
    """
    path = folder / BATCHES_FILE
    check_hashes(folder, read_manifest(folder), (BATCHES_FILE,))
    try:
        for lineno, text in read_lines(path):
            yield BatchLine.read(text, Location(str(path), lineno, 1))
    except FileNotFoundError:
        raise build_error(
            "not-a-build", Location(str(path)), folder=str(folder), name=BATCHES_FILE
        ) from None
    except OSError as e:
        raise build_error(
            "unreadable", Location(str(path)), name=BATCHES_FILE, problem=e.strerror or e
        ) from None
