"""promptc on a Ray cluster: a build folder as a Ray Dataset of requests, in the form
``ray.data.llm`` processors take, and a Dataset of their answers parsed back on the cluster
into the lines of ``results.jsonl`` (which ``promptc eval --results`` reads).

::

    build folder ─requests_dataset─▶ Dataset of requests (id, messages, sampling_params,
      model, each request's own grammar: gbnf, json_schema)
      ─ray.data.llm processor (vLLM engine, or an OpenAI-compatible HTTP endpoint) or
       map_batches─▶ Dataset with the generated text
      ─parse_dataset─▶ Dataset of per-item results ─write_results─▶ BUILD/results.jsonl
      (what ``promptc parse`` writes from the same answers: an item's voting rounds combined)

The parse runs where the answers are (``map_batches`` on the cluster's workers): each worker
reads the build folder once (its task and request shapes), so the folder must be readable
from the workers (a shared file system, or the build shipped in the job's ``working_dir``).
:func:`http_payload` and :func:`vllm_request` are the ``preprocess`` functions of the two kinds
of ``ray.data.llm`` processor (docs/run.md shows both pipelines). Needs the ``ray`` extra
(``pip install 'promptc-compiler[ray]'``); ``ray`` is imported when a Dataset is made, never with
``promptc``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from promptc.build import batch_lines, prompt_hash, read_requests, read_task
from promptc.build.grammars import BuildGrammars, ConstraintCache, constraint, grammar_text
from promptc.build.targets import FORMS, BuiltRequest
from promptc.errors import BackendError, UsageError, did_you_mean
from promptc.ir import OutputField, Task
from promptc.parse.build_input import open_build
from promptc.parse.results import ItemResult, dumps
from promptc.replies import MAX_ERROR_BYTES, read_reply, urlopen
from promptc.run.bodies import as_sent, check_questions, request_items
from promptc.run.chat_api import reply_of
from promptc.run.engine import MAX_BODY_BYTES, Failure
from promptc.run.outputs import RESULTS_FILE
from promptc.run.repair import merge_answers, parse_answer, result_line
from promptc.text import public_url, write_atomic

if TYPE_CHECKING:
    import ray.data

#: How the grammar of a request is carried in the payload :func:`http_payload` makes.
Carried = Literal["gbnf", "json_schema", "none"]

INSTALL_RAY = "pip install 'promptc-compiler[ray]'"

MESSAGES = {
    "unknown-grammar-form": "unknown grammar form {form!r}: expected one of {accepted}",
    "two-answers": "the answers hold two rows for request {rid!r} of {build}; expected one "
    "answer per request (a Dataset has no first one to keep: drop the others before "
    "parse_dataset)",
    "unknown-answer": "an answer for request {rid!r}, which {build} does not hold; expected "
    "answers to the rows of requests_dataset({build}) (a repair or early-stop answer of "
    "promptc run is not one)",
    "other-prompt": "the answer for request {rid!r} was asked another prompt than {build} "
    "holds under that id (its prompt_sha256 differs): an answer to another build's requests; "
    "expected answers to the rows of requests_dataset({build})",
}


def _ray_data() -> Any:
    """``ray.data``, imported on first use: ray is a heavy optional dependency.

    Raises:
        BackendError: ray is not installed.
    """
    try:
        import ray.data  # a heavy optional dependency (see the module's docstring)
    except ImportError:
        raise BackendError(
            "promptc.ray needs Ray Data, which is not installed",
            hint=INSTALL_RAY,
            code="missing-ray",
        ) from None
    return ray.data


def request_rows(build: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The rows of :func:`requests_dataset`, one per request of the build, in order.

    Each row: ``id``, ``position`` (its order in the build), ``prompt_sha256`` (the hash of
    its messages, by which :func:`parse_dataset` refuses another build's answers), ``model``,
    ``messages``
    (``role``, ``content``), ``sampling_params`` (the build's parameters but the model,
    as JSON text: their keys differ between specs), ``json_sampling_params`` (the same as
    sent with the JSON Schema: ``max_tokens`` fitted to the JSON form when the spec gives
    the budget per item, :func:`promptc.run.bodies.as_sent`), ``gbnf`` (the request's own
    GBNF) and ``json_schema`` (its own JSON Schema, as JSON text).
    """
    if not isinstance(build, str | os.PathLike) or not os.path.isdir(build):
        raise UsageError(
            f"build is {build!r:.60}; expected a build folder (promptc build SPEC -o DIR)",
            code="not-a-build",
        )
    folder = Path(build)
    task = read_task(folder)
    cache = ConstraintCache()
    files = BuildGrammars(folder)
    for k, r in enumerate(read_requests(folder)):
        params = {key: v for key, v in r.params.items() if key != "model"}
        sent = as_sent(task, r, "json_schema").params
        yield {
            "id": r.id,
            "position": k,
            "prompt_sha256": prompt_hash(r.messages),
            "model": str(r.params.get("model", "")),
            "messages": [
                {"role": str(m["role"]), "content": str(m["content"])} for m in r.messages
            ],
            "sampling_params": json.dumps(params, sort_keys=True),
            "json_sampling_params": json.dumps(
                {key: v for key, v in sent.items() if key != "model"}, sort_keys=True
            ),
            **_grammars(folder, task, r, cache, files),
        }


def _grammars(
    folder: Path, task: Task, request: BuiltRequest, cache: ConstraintCache, files: BuildGrammars
) -> dict[str, str]:
    """A request's own ``gbnf`` and ``json_schema`` (JSON text), as ``promptc run`` sends
    them: an Auto-Demo request's questions pinned, else the build's files of it."""
    if request.kind.repeats_questions:
        check_questions(task, request, folder)
        items = request_items(task, request, folder)
        made = [constraint(task, request.kind, items, f, cache) for f in FORMS]
        gbnf, schema = (c.value for c in made)
        return {"gbnf": str(gbnf), "json_schema": json.dumps(schema)}
    return {
        "gbnf": grammar_text(folder, request, ".gbnf", files),
        "json_schema": grammar_text(folder, request, ".schema.json", files),
    }


def requests_dataset(build: str | os.PathLike[str]) -> ray.data.Dataset:
    """A build's requests as a Ray Dataset (rows of :func:`request_rows`).

    Raises:
        BackendError: ray is not installed.
        PromptcError: Not a build.
    """
    dataset: ray.data.Dataset = _ray_data().from_items(list(request_rows(build)))
    return dataset


def http_payload(row: Mapping[str, Any], grammar: Carried = "gbnf") -> dict[str, Any]:
    """The ``preprocess`` of an OpenAI-compatible HTTP processor
    (``ray.data.llm.HttpRequestProcessorConfig``): ``{"payload": <a chat completion body>}``,
    with the request's grammar as llama.cpp takes it (``grammar``: GBNF) or as OpenAI and vLLM
    take it (``json_schema``: a strict ``response_format``), or none.

    Raises:
        UsageError: ``grammar`` is none of :data:`Carried`'s forms.
    """
    _check_form(grammar)
    params = row["json_sampling_params" if grammar == "json_schema" else "sampling_params"]
    body: dict[str, Any] = {
        "model": row["model"],
        "messages": [dict(m) for m in row["messages"]],
        **json.loads(params),
    }
    if grammar == "gbnf":
        body["grammar"] = row["gbnf"]
    elif grammar == "json_schema":
        schema = json.loads(row["json_schema"])
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    return {"id": row["id"], "position": row["position"], "payload": body}


def _check_form(grammar: str) -> None:
    """Refuses a grammar form :func:`http_payload` does not know: it would send no grammar."""
    accepted = get_args(Carried)
    if grammar not in accepted:
        raise UsageError(
            MESSAGES["unknown-grammar-form"].format(
                form=grammar, accepted=", ".join(repr(a) for a in accepted)
            ),
            hint=did_you_mean(str(grammar).lower().replace("-", "_"), accepted),
            code="unknown-grammar-form",
        )


def vllm_request(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``preprocess`` of a vLLM engine processor (``ray.data.llm.vLLMEngineProcessorConfig``):
    the messages, and sampling parameters carrying the request's own GBNF as vLLM's guided
    decoding grammar.

    The sampling parameters are the build's, every one of them and nothing more (a spec that
    sets no temperature leaves vLLM's default), but ``max_completion_tokens``, which vLLM
    calls ``max_tokens``.
    """
    sampling = json.loads(row["sampling_params"])
    if "max_completion_tokens" in sampling:
        cap = sampling.pop("max_completion_tokens")
        sampling.setdefault("max_tokens", cap)
    sampling["guided_decoding"] = {"grammar": row["gbnf"]}
    return {
        "id": row["id"],
        "position": row["position"],
        "messages": [dict(m) for m in row["messages"]],
        "sampling_params": sampling,
    }


class ChatEndpoint:
    """A ``map`` function that answers each request row at an OpenAI-compatible
    ``/chat/completions`` endpoint (what an HTTP processor does, without ``ray.data.llm``'s
    dependencies): adds ``generated_text`` and ``finish_reason``. Plain ``urllib``: the workers
    need no openai.

    Args:
        url: The API's base URL, e.g. ``http://127.0.0.1:8080/v1``.
        grammar: How each request's grammar is sent (:func:`http_payload`).
        timeout: Seconds one answer may take.
    """

    def __init__(self, url: str, grammar: Carried = "gbnf", timeout: float = 600.0) -> None:
        _check_form(grammar)
        if not isinstance(url, str) or not url:
            raise UsageError(
                f"url is {url!r:.60}; expected the API's base URL", code="bad-argument"
            )
        self.url = url.rstrip("/") + "/chat/completions"
        self.grammar: Carried = grammar
        self.timeout = timeout

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row with its answer.

        Raises:
            BackendError: ``chat-endpoint``: the endpoint answered with an error status, no
                answer a chat API gives, or not within the timeout; the message names the
                request, the URL (without credentials) and what failed.
        """
        payload = http_payload(row, self.grammar)
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload["payload"]).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urlopen(request, timeout=self.timeout) as response:
                # At most what a run reads of one chat completion (MAX_BODY_BYTES).
                data = read_reply(response, MAX_BODY_BYTES, "the answer", self.url, self.timeout)
            # The answer read as run reads it: its content in any form the API documents.
            reply, _ = reply_of(data, None)
        except urllib.error.HTTPError as e:
            body = read_reply(e, MAX_ERROR_BYTES, f"the error body (HTTP {e.code})", self.url)
            why = f"HTTP {e.code}: {body[:300].decode('utf-8', 'replace')}"
            raise self._failed(row, why) from None
        except Failure as e:
            raise self._failed(row, e.detail) from None
        except (OSError, ValueError) as e:  # no connection, a timeout, a reply past its cap
            raise self._failed(row, str(getattr(e, "reason", e))) from None
        return {
            "id": row["id"],
            "position": row["position"],
            "generated_text": reply.text,
            "finish_reason": reply.finish_reason,
        }

    def _failed(self, row: Mapping[str, Any], why: str) -> BackendError:
        return BackendError(
            f"request {row['id']}: {public_url(self.url)} gave no answer: {why}",
            hint="check that the URL points at an OpenAI-compatible chat API",
            code="chat-endpoint",
        )


class ParseAnswers:
    """The ``map_batches`` function of :func:`parse_dataset`: reads the build once per worker,
    then parses each batch of answers into result rows."""

    def __init__(self, build: str, text_column: str) -> None:
        loaded = open_build(Path(build))
        self.build = build
        self.task = loaded.task
        self.shapes = loaded.shapes
        self.text_column = text_column
        #: Each request's prompt hash: an answer row that carries another (it kept the
        #: prompt_sha256 column of another build's requests) is refused.
        self.prompts = {b.request: b.prompt_sha256 for b in batch_lines(Path(build))}

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """The result rows of a batch of answers.

        Raises:
            UsageError: An answer for a request the build does not hold.
        """
        out: dict[str, list[Any]] = {
            "request_id": [],
            "position": [],
            "seq": [],
            "index": [],
            "item_id": [],
            "status": [],
            "line": [],
        }
        # The finish reason, when the answers carry it: an answer cut off at max_tokens
        # loses the items it did not finish (truncated), as promptc parse marks them.
        for column in ("id", "position", self.text_column):
            if column not in batch:
                raise UsageError(
                    f"the answers have no column {column!r}; they have "
                    + ", ".join(map(repr, sorted(batch)))
                    + " (parse_dataset's text_column names the one holding the answer's text)",
                    code="bad-argument",
                )
        finishes = batch["finish_reason"] if "finish_reason" in batch else [None] * len(batch["id"])
        hashes = batch["prompt_sha256"] if "prompt_sha256" in batch else [None] * len(batch["id"])
        for rid, position, text, finish, asked in zip(
            batch["id"], batch["position"], batch[self.text_column], finishes, hashes, strict=True
        ):
            shape = self.shapes.get(str(rid))
            if shape is None:
                raise UsageError(
                    MESSAGES["unknown-answer"].format(rid=str(rid), build=self.build),
                    code="unknown-answer",
                )
            if asked is not None and str(asked) != self.prompts.get(str(rid)):
                raise UsageError(
                    MESSAGES["other-prompt"].format(rid=str(rid), build=self.build),
                    code="unknown-answer",
                )
            results = parse_answer(self.task, shape, str(text or ""), finish)
            for seq, x in enumerate(results):
                out["request_id"].append(x.request_id)
                out["position"].append(int(position))
                out["seq"].append(seq)
                out["index"].append(x.index)
                out["item_id"].append(x.item_id)
                out["status"].append(x.status)
                out["line"].append(result_line(x, 1))
        return out


def parse_dataset(
    answers: ray.data.Dataset,
    build: str | os.PathLike[str],
    *,
    text_column: str = "generated_text",
) -> ray.data.Dataset:
    """Parses a Dataset of answers (rows with ``id``, ``position``, the answer's text in
    ``text_column``: ``generated_text`` as ``ray.data.llm`` processors write it, and, if known,
    its ``finish_reason``: ``length`` marks the items it cut off ``truncated``) into one row
    per result of each answer, on the cluster: ``request_id``, ``position``, ``seq`` (its
    place among its answer's results), ``index``, ``item_id``, ``status`` and ``line`` (the
    result as one answer gave it, a line of ``results.jsonl`` when the build does not vote:
    :func:`write_results` combines an item's voting rounds)."""
    _dataset(answers, "answers", "map_batches")
    return answers.map_batches(
        ParseAnswers,
        fn_constructor_args=(os.fspath(build), text_column),
        batch_format="numpy",
        concurrency=1,
    )


def _dataset(value: object, name: str, method: str) -> None:
    """Refuses an argument that is no Ray Dataset (``bad-argument``, naming it): a list of
    rows ended in a bare AttributeError."""
    if not callable(getattr(value, method, None)):
        raise UsageError(
            f"{name} is a {type(value).__name__}; expected a ray.data.Dataset "
            "(ray.data.from_items(rows) makes one of a list of rows)",
            code="bad-argument",
        )


def write_results(results: ray.data.Dataset, build: str | os.PathLike[str]) -> Path:
    """Writes the result rows of :func:`parse_dataset` as ``BUILD/results.jsonl``, in the
    build's request order: the file ``promptc parse`` writes from the same answers, each
    item's voting rounds combined into its one voted line (:func:`result_lines`), which
    ``promptc eval --results`` reads."""
    # The build's own order of its requests, not the rows' ``position`` (a Dataset made by
    # hand may number each voting round's requests from 0 again, as batches.jsonl's index does).
    _dataset(results, "results", "select_columns")
    loaded = open_build(build)
    order = {shape_id: k for k, shape_id in enumerate(loaded.shapes)}
    rows = results.select_columns(["request_id", "seq", "line"]).take_all()
    for r in rows:  # rows parsed for another build would be written as this one's results
        rid = str(r["request_id"])
        item = json.loads(str(r["line"])).get("item_id")
        shape = loaded.shapes.get(rid)
        if shape is None or (item is not None and item not in shape.item_ids):
            raise UsageError(
                MESSAGES["unknown-answer"].format(rid=rid, build=str(build)),
                code="unknown-answer",
            )
    rows.sort(key=lambda r: (order.get(str(r["request_id"]), len(order)), int(r["seq"])))
    # Two answers of one request (a Dataset unioned with answers asked again, a retried
    # task): a Dataset has no first one to keep, as promptc parse keeps a file's first line.
    seen: set[tuple[str, int]] = set()
    for r in rows:
        key = (str(r["request_id"]), int(r["seq"]))
        if key in seen:
            raise UsageError(
                MESSAGES["two-answers"].format(rid=key[0], build=str(build)), code="two-answers"
            )
        seen.add(key)
    path = Path(build) / RESULTS_FILE
    write_atomic(path, result_lines([str(r["line"]) for r in rows], loaded.task.outputs))
    return path


def result_lines(lines: Sequence[str], fields: Sequence[OutputField] = ()) -> list[str]:
    """The lines of ``results.jsonl`` from the ``line``s of :func:`parse_dataset`, in build
    order: merged by the one code path of ``promptc parse``, ``run --parse`` and ``collect``
    (:func:`promptc.run.repair.merge_answers`), which, when the build votes, combines each
    item's rounds into one line with its ``votes`` and ``rounds``
    (:mod:`promptc.parse.vote`). A Dataset of :func:`requests_dataset` asks every request
    whole (no early stop, no repair), so no stand-in or repair answer is among them.
    ``fields``: the task's outputs, by whose types the rounds' answers agree.

    The merge decides on what a line holds (request, item, position, status, values); each
    voted result is then written as its worker wrote it, with the merge's ``attempts``,
    ``votes`` and ``rounds`` in :func:`promptc.run.repair.result_line`'s places (a span
    cannot be made again without the answer's text, which stayed on the worker).
    """
    parsed: dict[str, list[ItemResult]] = {}
    records: dict[int, dict[str, Any]] = {}  # id() of each result made here → its line
    for line in lines:
        record = json.loads(line, parse_float=Decimal)
        del record["attempts"]  # 1 for every answer's own line; the merge counts them
        x = ItemResult(
            record["request_id"],
            record["item_id"],
            record["index"],
            record["status"],
            record["values"],
        )
        parsed.setdefault(x.request_id, []).append(x)
        records[id(x)] = record
    merged = merge_answers(list(parsed), parsed, {}, fields)
    return [
        dumps({**records[id(x)], "attempts": n, **merged.rounds.get(x.item_id or "", {})})
        for x, n in merged.rows
    ]
