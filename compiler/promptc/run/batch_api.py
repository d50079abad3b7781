"""The ``batch-api`` engine: a whole build sent through OpenAI's Batch API (``promptc run
BUILD --batch-api``), and ``batch_api.json``, the record of its batches in the build folder.

::

    requests.jsonl (or its shards) ─upload─▶ input files ─create─▶ batches ─poll─▶ terminal
      ─download─▶ batch_api/<shard>.output.jsonl, .errors.jsonl ─collect─▶ outputs.jsonl,
      results.jsonl, repair/ (the items not ok)

Every step is recorded in ``batch_api.json`` as soon as the server has done it (the input
file's id after the upload, the batch's id after its creation, the files' ids and the
downloads as they come), so that a run interrupted at any point — Ctrl-C, a crash, kill -9 —
resumes from the recorded ids when run again: no shard is uploaded twice and no second batch
is created (a batch created but not yet recorded is found again by its input file's id). The
answers go through :func:`promptc.run.collect.collect`, the reader ``promptc collect`` uses:
the same ``outputs.jsonl``, ``results.jsonl`` and repair build of the items not ok (requests
that errored, expired or were cancelled included), which ``promptc run REPAIR --batch-api``
sends in turn; once its batches are over, running ``promptc run BUILD --batch-api`` again
collects the repair build's answers with the build's own, as ``promptc collect`` merges them,
and writes the next repair build for what is still not ok. ``promptc run BUILD --batch-api --cancel`` cancels the recorded batches that
are not over, waits for the server to end them, and collects what they had answered in the
same way.

The build must have ``--target openai-batch`` (its request lines are the Batch API's input
form; ``--grammar json-schema`` makes each body carry its strict JSON Schema). The Batch API
answers no request twice: there is no response cache in this engine, and a batch's answers
are kept in the build folder instead.

No reply is read whole (:mod:`promptc.replies`): a file or batch object at most
:data:`MAX_OBJECT_BYTES`, an output or error file written to disk as it arrives, at most
:data:`MAX_DOWNLOAD_BYTES`, an error status's body at most
:data:`~promptc.replies.MAX_ERROR_BYTES` (:func:`~promptc.run.chat_api.error_hook`).
"""

from __future__ import annotations

import codecs
import functools
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptc.apikeys import redact, redact_reply
from promptc.build import BuiltRequest, batch_lines, read_manifest, request_paths
from promptc.build.files import dumps, inside, read_text
from promptc.build.targets import OPENAI_BATCH, OPENAI_BATCH_URL
from promptc.errors import Location, UsageError
from promptc.replies import ReplyTooLarge, ReplyTooSlow, capped_chunks, join_chunks
from promptc.run.chat_api import (
    NO_KEY,
    ErrorReply,
    error_hook,
    openai_module,
    read_api_key,
    status_failure,
    transport_failure,
)
from promptc.run.collect import REPAIR_DIR, collect
from promptc.run.engine import RETRYABLE, Failure, backoff, retry_after_seconds, scrub
from promptc.run.options import RunOptions
from promptc.run.outputs import (
    OUTPUTS_FILE,
    RESULTS_FILE,
    STATE_FILE,
    outputs_lock,
    read_outputs_file,
)
from promptc.run.progress import Events
from promptc.run.result import RequestFailure, RunResult
from promptc.text import public_url, sha256_text, write_atomic

#: Where the batches' output and error files are downloaded, in the build folder.
DOWNLOADS = "batch_api"
#: The state file's form; a reader refuses another.
STATE_FORMAT = 1
#: A batch in one of these states changes no more (OpenAI's batch object ``status``).
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Every status a batch can have (OpenAI's batch object); a server saying another is refused.
STATUSES = TERMINAL | {"validating", "in_progress", "finalizing", "cancelling"}
#: The Batch API's one completion window.
COMPLETION_WINDOW = "24h"
#: The most of a file or batch object read (bytes), and of a page of the batch list (100
#: batches): a batch object is about 1 kB.
MAX_OBJECT_BYTES = 4 * 1024 * 1024
#: The most pages of the batch list read in search of a batch an interrupted run created:
#: it is among the newest, and a server that says "has more" forever is not followed on.
MAX_LIST_PAGES = 100
#: The most of an output or error file downloaded (bytes), written to disk as it arrives
#: (memory holds one chunk): a shard holds at most 50,000 requests (the Batch API's limit),
#: and 10 GB gives each 200 kB of answer and usage — answers of tens of thousands of tokens.
MAX_DOWNLOAD_BYTES = 10 * 1000**3


@dataclass
class ShardBatch:
    """One shard of the build and its batch, as ``batch_api.json`` records them.

    Attributes:
        shard: The shard's file name (``requests.jsonl`` or ``requests-0001.jsonl``).
        sha256: Its content's sha256, so that a rebuilt shard is not taken for the old one.
        input_file_id: The uploaded input file, once uploaded.
        batch_id: The batch, once created.
        status: The batch's status when last seen.
        output_file_id: Its output file, when the server has one.
        error_file_id: Its error file, when the server has one.
        downloaded: The files downloaded into the build, by file id.
        counts: The batch's ``request_counts`` when last seen.
        errors: What the server said when it failed the batch as a whole.
    """

    shard: str
    sha256: str
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    downloaded: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """The batch is over and every file it has is downloaded."""
        wanted = {i for i in (self.output_file_id, self.error_file_id) if i}
        return self.status in TERMINAL and wanted <= set(self.downloaded)


def read_state(build: Path) -> dict[str, ShardBatch]:
    """The batches recorded in ``build/batch_api.json``, by shard name (empty when none).

    Raises:
        UsageError: The file is not one this version wrote (``bad-batch-state``).
    """
    path = build / STATE_FILE
    try:
        data = json.loads(read_text(path))  # a regular file only: no link followed out
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise _bad_state(path, str(e)) from None
    if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT:
        raise _bad_state(path, f"expected format {STATE_FORMAT}")
    try:
        batches = {str(s["shard"]): ShardBatch(**s) for s in data["batches"]}
    except (KeyError, TypeError) as e:
        raise _bad_state(path, str(e)) from None
    for b in batches.values():
        if not _well_typed(b):
            raise _bad_state(path, f"the record of {b.shard!r} holds a value of another type")
    return batches


def _well_typed(b: ShardBatch) -> bool:
    """Whether a record read back holds the types this version writes (a hand-edited or
    foreign file may not)."""
    texts = (b.input_file_id, b.batch_id, b.status, b.output_file_id, b.error_file_id)
    return (
        isinstance(b.shard, str)
        and isinstance(b.sha256, str)
        and all(t is None or isinstance(t, str) for t in texts)
        and isinstance(b.downloaded, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in b.downloaded.items())
        and isinstance(b.counts, dict)
        and all(isinstance(v, int) for v in b.counts.values())
        and isinstance(b.errors, list)
        and all(isinstance(e, str) for e in b.errors)
    )


def write_state(build: Path, batches: Mapping[str, ShardBatch], secret: str | None = None) -> None:
    """Writes ``build/batch_api.json`` whole (atomically): the one writer of the file. An id
    the server gave that holds the API key ``secret`` is written with ``***`` in its place
    (a run resumed from the file cannot ask the server about that batch or file by it)."""
    records = [redact_reply(vars(b), secret) for b in batches.values()]
    write_atomic(build / STATE_FILE, [dumps({"batches": records, "format": STATE_FORMAT})])


def _bad_state(path: Path, why: str) -> UsageError:
    return UsageError(
        f"{path.name} is not a record of batches promptc can read ({why})",
        location=Location(str(path)),
        hint="move it aside to submit the build again (its batches are still on the server)",
        code="bad-batch-state",
    )


class BatchAPI:
    """The ``batch-api`` engine (see the module's docstring): takes a whole build at once
    (:class:`promptc.run.engine.WholeBuildEngine`).

    Args:
        options: The run's options (``api_key_env``, ``timeout``, ``max_retries``,
            ``poll_interval``).
        url: The API's base URL.
        requests: The requests of the run (the build's; ``--limit`` is refused).
        say: Where to report what the engine does.

    Raises:
        BackendError: ``openai`` is not installed.
    """

    def __init__(
        self,
        options: RunOptions,
        url: str | None,
        requests: Sequence[BuiltRequest],
        say: Callable[[str], None],
    ) -> None:
        openai = openai_module()
        if options.limit is not None:
            raise UsageError(
                "--limit cannot cut a build sent through the Batch API: its shards go whole",
                code="batch-api-limit",
            )
        if options.max_tokens_field != "auto":
            raise UsageError(
                "--max-tokens-field cannot change a build sent through the Batch API: its "
                "bodies go as built, max_tokens in the field of the spec's "
                "model.max_tokens_field (max_completion_tokens unless it names another)",
                hint="set model.max_tokens_field in the spec and build again",
                code="batch-api-token-field",
            )
        self.name = public_url(url) if url else ""  # no user name or password a URL carries
        self.url = url or ""
        self.total = len(requests)
        #: Each requests file's request ids, by file name (where the build's reader read them).
        self.shard_ids: dict[str, set[str]] = {}
        for r in requests:
            self.shard_ids.setdefault(Path(r.location.file).name, set()).add(r.id)
        #: Batches this run created (resumed or found ones were sent by an earlier run).
        self.created = 0
        self.options = options
        self._say = say
        #: The API key: written nowhere (messages, downloads, outputs), *** in its place.
        self.secret = read_api_key(options.api_key_env)
        self.client = openai.OpenAI(
            base_url=url or "",
            api_key=self.secret or NO_KEY,
            timeout=options.timeout,
            max_retries=options.max_retries,
            http_client=openai.DefaultHttpxClient(
                event_hooks={"response": [functools.partial(error_hook, seconds=options.timeout)]}
            ),
        )
        #: The client's calls whose replies are read as they arrive.
        self.streamed = self.client.with_streaming_response

    def say(self, line: str) -> None:
        """Says ``line`` without the API key: a server may have echoed it in an id the line
        names."""
        self._say(redact(line, self.secret))

    def run_whole(self, build: Path, events: Events) -> RunResult:
        """Submits the build's shards (or resumes their recorded batches), waits for them,
        downloads their files and collects them.

        Raises:
            UsageError: Not an ``openai-batch`` build; another run of the build.
            Failure: The server refused a step (worded by the caller like any failure).
        """
        manifest = read_manifest(build)
        if manifest.get("target") != OPENAI_BATCH.name:
            raise UsageError(
                f"--batch-api sends a build of --target openai-batch; {build} has target "
                f"{manifest.get('target')!r}",
                hint=f"promptc build SPEC -o {build} --target openai-batch",
                code="batch-api-target",
            )
        with outputs_lock(build / STATE_FILE):
            try:
                batches = self._cancel(build) if self.options.cancel else self._submit(build)
                self._wait(build, batches)
                repaired = _repair_files(build)
                files = self._download(build, batches) + repaired
            except Failure as f:
                result = RunResult(build, build / OUTPUTS_FILE, total=self.total)
                result.failed.append(
                    RequestFailure(
                        "batch-api",
                        f.kind,
                        f"the Batch API at {self.name} refused or failed "
                        f"({scrub(f.detail, self.secret)})",
                        f"{_HINTS.get(f.kind, 'check --base-url and the API key')}, then run "
                        f"again: the batches made so far are recorded in {STATE_FILE}",
                        f.attempts,
                    )
                )
                return result
        result = self._collect(build, batches, files)
        if repaired:
            _retire_repair_batches(build)
        return result

    # -- submit -----------------------------------------------------------------------------

    def _submit(self, build: Path) -> dict[str, ShardBatch]:
        """Each shard uploaded and its batch created, unless recorded already."""
        recorded = read_state(build)
        answered = _answered(build)
        batches: dict[str, ShardBatch] = {}
        for path in request_paths(build):
            digest = sha256_text(path.read_text(encoding="utf-8"))
            old = recorded.get(path.name)
            if old is not None and old.sha256 != digest:
                self.say(
                    f"{path.name} has changed since batch {old.batch_id} was made of it: "
                    "submitted again"
                )
                old = None
            ids = self.shard_ids.get(path.name)
            if old is None and ids and ids <= answered:
                # Answered by promptc run (or collected before): not bought again.
                self.say(f"{path.name}: every request is answered in {OUTPUTS_FILE}; not sent")
                continue
            batches[path.name] = old or ShardBatch(path.name, digest)
        write_state(build, batches, self.secret)
        for path in request_paths(build):
            if path.name not in batches:
                continue
            b = batches[path.name]
            if b.input_file_id is None:
                with path.open("rb") as f:
                    made = self._call(self.streamed.files.create, file=f, purpose="batch")
                b.input_file_id = _file_id(made, "id")
                if b.input_file_id is None:
                    raise Failure("bad-response", None, f"the upload of {path.name} has no file id")
                write_state(build, batches, self.secret)
            if b.batch_id is None:
                found = self._created_before(b.input_file_id)
                if found is None:
                    found = self._call(
                        self.streamed.batches.create,
                        input_file_id=b.input_file_id,
                        endpoint=OPENAI_BATCH_URL,
                        completion_window=COMPLETION_WINDOW,
                        metadata={"promptc_shard": path.name},
                    )
                    said = "created"
                    self.created += 1
                else:
                    said = "found on the server"
                self._update(b, found)
                write_state(build, batches, self.secret)
                self.say(f"{path.name}: batch {b.batch_id} {said}")
            else:
                self.say(f"{path.name}: resuming batch {b.batch_id} ({b.status})")
        return batches

    def _created_before(self, input_file_id: str) -> Mapping[str, Any] | None:
        """The batch an interrupted run created from this input file but did not record
        (looked for in the newest :data:`MAX_LIST_PAGES` pages of the batch list)."""
        after: dict[str, str] = {}
        for _ in range(MAX_LIST_PAGES):
            page = self._call(self.streamed.batches.list, limit=100, **after)
            listed = page.get("data")
            batches: list[Mapping[str, Any]] = (
                [b for b in listed if isinstance(b, Mapping)] if isinstance(listed, list) else []
            )
            for batch in batches:
                if batch.get("input_file_id") == input_file_id:
                    return batch
            last = batches[-1].get("id") if batches else None
            if page.get("has_more") is not True or not isinstance(last, str):
                return None
            after = {"after": last}
        return None

    def _cancel(self, build: Path) -> dict[str, ShardBatch]:
        """Each recorded batch that is not over, asked to stop (``--cancel``).

        Raises:
            UsageError: No batch is recorded in the build (``nothing-to-cancel``).
        """
        batches = read_state(build)
        made = {k: b for k, b in batches.items() if b.batch_id is not None}
        if not made:
            raise UsageError(
                f"{build / STATE_FILE} records no batch: nothing to cancel",
                hint=f"promptc run {build} --batch-api submits the build",
                code="nothing-to-cancel",
            )
        for b in made.values():
            if b.status in TERMINAL:
                self.say(f"{b.shard}: batch {b.batch_id} already {b.status}")
                continue
            self._update(b, self._call(self.streamed.batches.cancel, b.batch_id))
            write_state(build, batches, self.secret)
            self.say(f"{b.shard}: batch {b.batch_id} {b.status}")
        return made

    # -- wait -------------------------------------------------------------------------------

    def _wait(self, build: Path, batches: Mapping[str, ShardBatch]) -> None:
        """Polls the batches until every one is over, saying each change of status."""
        while True:
            waiting = [b for b in batches.values() if b.status not in TERMINAL]
            if not waiting:
                return
            time.sleep(self.options.poll_interval)
            for b in waiting:
                before = (b.status, dict(b.counts))
                self._update(b, self._call(self.streamed.batches.retrieve, b.batch_id))
                if (b.status, b.counts) != before:
                    write_state(build, batches, self.secret)
                    self.say(_progress(b))

    def _update(self, b: ShardBatch, batch: Mapping[str, Any]) -> None:
        """``b`` as the server's batch object (its JSON) says it is now.

        Raises:
            Failure: The object has no id or a status the Batch API does not have (a server
                that is not one): polling it would never end.
        """
        bid, status = batch.get("id"), batch.get("status")
        if not isinstance(bid, str) or not bid or status not in STATUSES:
            raise Failure(
                "bad-response",
                None,
                f"a batch with id {bid!r} and status {status!r}; expected one of "
                + ", ".join(sorted(STATUSES)),
            )
        b.batch_id, b.status = bid, status
        b.output_file_id = _file_id(batch, "output_file_id")
        b.error_file_id = _file_id(batch, "error_file_id")
        counts = batch.get("request_counts")
        if isinstance(counts, Mapping):
            b.counts = {k: _count(counts, k) for k in ("total", "completed", "failed")}
        errors = batch.get("errors")
        data = errors.get("data") if isinstance(errors, Mapping) else None
        b.errors = [
            scrub(f"{e.get('code')}: {e.get('message')}", self.secret)
            for e in (data if isinstance(data, list) else [])
            if isinstance(e, Mapping)
        ]

    # -- download and collect ---------------------------------------------------------------

    def _download(self, build: Path, batches: Mapping[str, ShardBatch]) -> list[Path]:
        """The batches' output and error files, downloaded into ``build/batch_api/`` unless
        they are already; every one of them, in shard order."""
        folder = inside(build, DOWNLOADS, "the downloads' folder")  # no link planted in the build
        folder.mkdir(exist_ok=True)
        files: list[Path] = []
        for b in batches.values():
            stem = b.shard.removesuffix(".jsonl")
            files_of = (
                (b.output_file_id, "output", "completed"),
                (b.error_file_id, "errors", "failed"),
            )
            for file_id, kind, count in files_of:
                if not file_id:
                    continue
                name = f"{stem}.{kind}.jsonl"
                if b.downloaded.get(file_id) != name or not (folder / name).is_file():
                    self._download_whole(file_id, folder / name, b.counts.get(count))
                    b.downloaded[file_id] = name
                    write_state(build, batches, self.secret)
                files.append(folder / name)
        return files

    def _download_whole(self, file_id: str, path: Path, lines: int | None) -> None:
        """:meth:`_download_file`, again while the file holds fewer lines than the batch says
        it answered (``lines``), or ends inside a line: a server that sends no length and
        closes early may cut it anywhere. After the last attempt it is kept as it came."""
        for attempt in range(self.options.max_retries + 1):
            self._download_file(file_id, path)
            got, cut = _cut_short(path)
            if (lines is None or got >= lines) and not cut:
                return
            if attempt == self.options.max_retries:
                # Kept as it came: collect keeps its whole lines, says which it could not
                # read, and asks their requests again in the repair build.
                return
            why = "its last line is cut short" if cut else f"{got} of {lines} line(s) arrived"
            self.say(f"{path.name}: {why}; downloading it again")
            time.sleep(backoff(attempt, None))

    def _collect(
        self, build: Path, batches: Mapping[str, ShardBatch], files: Sequence[Path]
    ) -> RunResult:
        """The downloaded files collected (:func:`promptc.run.collect.collect`), as a run's
        result: requests without an answer are items not ok, in the repair build."""
        collected = collect(build, *files)
        for b in batches.values():
            if b.status != "completed":
                unfinished = b.counts.get("total", 0) - b.counts.get("completed", 0)
                said = "; ".join(b.errors) or (
                    f"its unfinished requests are in {REPAIR_DIR}/"
                    if collected.repair_dir is not None and unfinished
                    else "every request of it finished"
                )
                self.say(f"{b.shard}: batch {b.batch_id} {b.status}: {said}")
        for line in collected.messages():
            self.say(line)
        result = RunResult(build, build / OUTPUTS_FILE, total=self.total)
        # A batch an earlier run made was sent then: its answers are resumed, not sent now.
        if self.created:
            result.sent = collected.answered
        else:
            result.skipped = collected.answered
        result.items = sum(collected.statuses.values())
        result.statuses = collected.statuses
        result.not_ok = collected.not_ok
        result.results_path = build / RESULTS_FILE
        result.prompt_tokens, result.completion_tokens = collected.tokens
        result.grammar = "batch-api"
        again = f": asked again in {REPAIR_DIR}/" if collected.repair_dir is not None else ""
        for rid, why in sorted(collected.failed.items()):
            self.say(f"{rid}: no answer ({why}){again}")
        refused = [b for b in batches.values() if b.status == "failed"]
        if refused:
            # The API refused a batch as a whole (a model it does not serve, a bad file): its
            # requests failed, as a run's refused requests do (exit 1), and its repair build
            # would be refused the same way until the cause is fixed.
            result.failed.append(
                RequestFailure(
                    "batch-api",
                    "bad-request",
                    redact(
                        "the Batch API failed "
                        + ", ".join(
                            f"batch {b.batch_id} ({'; '.join(b.errors) or 'failed'})"
                            for b in refused
                        ),
                        self.secret,
                    ),
                    "fix what the Batch API said (the model, the request file), then build and "
                    "run again",
                    1,
                )
            )
        if collected.repair_dir is not None:
            self.say(
                f"repair build of {collected.repair_requests} request(s) in "
                f"{collected.repair_dir}: promptc run {collected.repair_dir} --batch-api"
            )
        return result

    def _download_file(self, file_id: str, path: Path) -> None:
        """``GET /files/{file_id}/content`` written to ``path`` as it arrives (at most
        :data:`MAX_DOWNLOAD_BYTES`), whole or not at all.

        Raises:
            Failure: The server refused, or sent more than the cap.
        """
        what = f"the content of file {file_id}"

        def write(response: Any) -> None:
            chunks = capped_chunks(
                response.iter_bytes(), MAX_DOWNLOAD_BYTES, what, self.url, self.options.timeout
            )
            write_atomic(path, jsonl_lines(chunks, self.secret))

        self._calling(self.streamed.files.content, (file_id,), {}, write)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        """One call of the client's streamed responses, its reply read as it arrives (at most
        :data:`MAX_OBJECT_BYTES`) as a JSON object, its failure worded as a
        :class:`Failure`."""
        reply: list[object] = []

        def read(response: Any) -> None:
            data = join_chunks(
                response.iter_bytes(),
                MAX_OBJECT_BYTES,
                "a reply of the Batch API",
                self.url,
                self.options.timeout,
            )
            try:
                reply.append(json.loads(data.decode("utf-8-sig")))
            except (ValueError, RecursionError) as e:
                raise Failure("bad-response", None, f"its reply is not JSON: {e}") from None

        self._calling(method, args, kwargs, read)
        if not isinstance(reply[0], Mapping):
            raise Failure("bad-response", None, "its reply is JSON but not an object")
        return reply[0]

    def _calling(
        self,
        method: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        read: Callable[[Any], None],
    ) -> None:
        """``read`` of the streamed response of one call, every failure worded as a
        :class:`Failure`. An error status worth another attempt (429, 5xx) is retried up to
        ``max_retries`` times, as the client retries a connection that fails (an error
        status is the response hook's, :func:`~promptc.run.chat_api.error_hook`, which the
        client's own retries never see); a file being uploaded is read again from its
        start."""
        for attempt in range(self.options.max_retries + 1):
            try:
                self._once(method, args, kwargs, read)
                return
            except ErrorReply as e:
                failure = status_failure(e.status, e.detail[:300], retry_after_seconds(e.headers))
                failure.attempts = attempt + 1
                if failure.kind not in RETRYABLE or attempt == self.options.max_retries:
                    raise failure from None
            except Failure as e:  # a connection cut or stalled mid-reply: asked again
                failure = e
                failure.attempts = attempt + 1
                if failure.kind not in ("connection", "cut", "timeout"):
                    raise
                if attempt == self.options.max_retries:
                    raise
            time.sleep(backoff(attempt, failure.retry_after))
            for value in kwargs.values():
                if hasattr(value, "seek"):
                    value.seek(0)

    def _once(
        self,
        method: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        read: Callable[[Any], None],
    ) -> None:
        """:meth:`_calling`'s one attempt.

        Raises:
            ErrorReply: An error status.
            Failure: Any other failure.
        """
        openai = openai_module()
        try:
            with method(*args, **kwargs) as response:
                read(response)
        except ReplyTooLarge as e:
            raise Failure("reply-too-large", None, e.message) from None
        except ReplyTooSlow as e:  # --timeout bounds a whole reply, as on the chat path
            raise Failure("timeout", None, e.message) from None
        except openai.APIStatusError as e:
            raise status_failure(e.status_code, str(e.message)[:300], None) from None
        except openai.APITimeoutError:
            raise Failure("timeout", None, "the Batch API did not answer") from None
        except openai.APIConnectionError as e:
            raise Failure("connection", None, str(e)[:300]) from None
        except Exception as e:  # a cut mid-reply is the HTTP library's own error
            failure = transport_failure(e)
            if failure is None:
                raise
            raise failure from None


#: What to check when a step of the Batch API failed, by kind of failure (else: the URL
#: and the key).
_HINTS = {
    "auth": "check the API key",
    "rate-limit": "wait",
    "server": "wait or check the server's status",
    "timeout": "wait, or raise --timeout",
}


def jsonl_lines(chunks: Iterable[bytes], secret: str | None = None) -> Iterator[str]:
    """The lines of a JSON Lines file arriving in chunks of UTF-8, one at a time (a line cut
    between two chunks joined again), without their line ends, an API key the server echoed
    (in an answer, in an error line) written ``***``. Bytes that are no UTF-8 read as U+FFFD,
    as ``collect`` reads them.

    JSON Lines end at "\n" alone: str.splitlines would also cut at the U+2028, U+0085 …
    that raw UTF-8 answers may hold, losing them.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    rest = ""
    for chunk in chunks:
        *lines, rest = (rest + decoder.decode(chunk)).split("\n")
        yield from (redact(line, secret, answer=True) for line in lines)
    rest += decoder.decode(b"", final=True)
    if rest:
        yield redact(rest, secret, answer=True)


def _cut_short(path: Path) -> tuple[int, bool]:
    """The lines of a downloaded file, and whether its last one is no JSON: the download
    was cut inside it (a server that sends no length and closes early), not a file the batch
    wrote."""
    last = b""
    count = 0
    with path.open("rb") as f:
        for line in f:
            count += 1
            last = line if line.strip() else last
    try:
        json.loads(last.decode("utf-8", "replace")) if last else None
    except (ValueError, RecursionError):
        return count, True
    return count, False


def _file_id(batch: Mapping[str, Any], name: str) -> str | None:
    """A file id of a batch object: a string, or none."""
    value = batch.get(name)
    return value if isinstance(value, str) and value else None


def _count(counts: Mapping[str, Any], name: str) -> int:
    """One of a batch's ``request_counts``: a whole number, else 0."""
    value = counts.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _answered(build: Path) -> set[str]:
    """The requests ``outputs.jsonl`` answers (not empty) for their very prompt (the
    ``prompt_sha256`` ``batches.jsonl`` gives it)."""
    prompts = {b.request: b.prompt_sha256 for b in batch_lines(build)}
    return {
        rid
        for rid, a in read_outputs_file(build / OUTPUTS_FILE).answers.items()
        if str(a.get("output") or "").strip() and a.get("prompt_sha256") == prompts.get(rid)
    }


def _repair_files(build: Path) -> list[Path]:
    """The downloaded files of the repair build's batches (``promptc run BUILD/repair
    --batch-api``) once every one is over, and the repair build's ``outputs.jsonl`` (answered
    by ``promptc run BUILD/repair``): collected with the build's own, they are repair answers,
    merged into the build's results as ``promptc collect`` merges them. No batch file while
    the repair build has no batch or one still running."""
    repair = build / REPAIR_DIR
    if repair.is_symlink():
        return []
    # The repair build answered by promptc run (its outputs.jsonl): repair answers as well.
    answered = repair / OUTPUTS_FILE
    ran = [answered] if answered.is_file() and not answered.is_symlink() else []
    if not (repair / STATE_FILE).is_file():
        return ran
    batches = read_state(repair)
    if not batches or not all(b.done for b in batches.values()):
        return ran
    what = f"a downloaded file of {REPAIR_DIR}/{STATE_FILE}"
    return ran + [
        inside(repair, f"{DOWNLOADS}/{name}", what)
        for b in batches.values()
        for name in b.downloaded.values()
    ]


def _retire_repair_batches(build: Path) -> None:
    """Forgets the repair build's batches once their answers are collected into the build's
    ``outputs.jsonl``: the next repair build (written in their folder) is asked afresh, even
    when its requests are the same bytes (a request that errored is asked again whole)."""
    repair = build / REPAIR_DIR
    (repair / STATE_FILE).unlink(missing_ok=True)
    downloads = repair / DOWNLOADS
    if downloads.is_dir() and not downloads.is_symlink():
        shutil.rmtree(downloads)


def _progress(b: ShardBatch) -> str:
    counts = b.counts
    done = counts.get("completed", 0) + counts.get("failed", 0)
    return (
        f"{b.shard}: batch {b.batch_id} {b.status}, {done}/{counts.get('total', '?')} "
        f"request(s) done ({counts.get('failed', 0)} failed)"
    )
