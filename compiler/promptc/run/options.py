"""How a run is done: :class:`RunOptions`, what ``promptc run``'s command line fills."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc.errors import UsageError
from promptc.replies import check_base_url
from promptc.run.bodies import GrammarMode, grammar_mode
from promptc.run.engine import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from promptc.run.outputs import OUTPUTS_FILE, RESULTS_FILE, check_placeable, overwrite_error

#: The request field that carries the spec's ``max_tokens`` (``auto``: see
#: :func:`promptc.run.bodies.token_field`).
TOKEN_FIELDS = ("auto", "max_tokens", "max_completion_tokens")


_PATH = (str, os.PathLike, type(None))
#: What each option must be (a bool is no number here; numbers are finite).
_TYPES: dict[str, tuple[type, ...]] = {
    "base_url": (str, type(None)),
    "local": (bool, type(None)),
    "model_path": _PATH,
    "api_key_env": (str,),
    "concurrency": (int,),
    "grammar": (str,),
    "cache_path": _PATH,
    "use_cache": (bool,),
    "timeout": (int, float),
    "max_retries": (int,),
    "limit": (int, type(None)),
    "model": (str, type(None)),
    "parse": (bool,),
    "outputs_path": _PATH,
    "results_path": _PATH,
    "repair": (int, type(None)),
    "max_tokens_field": (str,),
    "batch_api": (bool,),
    "poll_interval": (int, float),
    "cancel": (bool,),
}
_NAMES: dict[type, str] = {
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    float: "a finite number",
    os.PathLike: "a path",
    type(None): "None",
}
_KIND_NAMES = {
    name: " or ".join(_NAMES[k] for k in kinds if not (k is int and float in kinds))
    for name, kinds in _TYPES.items()
}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of a run (``promptc run``'s, one for one); checked when made.

    Attributes:
        base_url: The API's base URL, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8080/v1``; default ``$OPENAI_BASE_URL``, else the embedded
            model (see :func:`promptc.run.orchestrate.engine_name`).
        local: True to run the embedded llama.cpp server (refused with ``base_url``);
            False never to.
        model_path: The GGUF file of the embedded server (default the bundled SmolLM2).
        api_key_env: The environment variable holding the API key (read, never written).
        concurrency: Requests in flight at once.
        grammar: ``auto``, ``gbnf``, ``json_schema`` (or ``json-schema``) or ``none``.
        cache_path: The SQLite response cache; default
            :func:`promptc.run.cache.default_cache_path`.
        use_cache: False to neither read nor write the cache.
        timeout: Seconds one answer may take, from sending to its last byte.
        max_retries: Retries of a request after a retryable failure (connection, timeout,
            rate limit, 5xx), with backoff (the server's ``Retry-After`` when it sends one).
        limit: Only the first ``limit`` requests of the build.
        model: Send this model name instead of the build's (e.g. a local server's alias).
        parse: Write ``results.jsonl``: one parse result per item, after repair.
        outputs_path: Where to write the answers; default ``BUILD_DIR/outputs.jsonl``.
        results_path: Where to write the results; default ``results.jsonl`` beside the
            outputs.
        repair: Repair rounds (:mod:`promptc.run.repair`); default the spec's
            ``run.repair.max_attempts``; 0 for none.
        batch_api: Send the build through the Batch API (:mod:`promptc.run.batch_api`): a
            build of ``--target openai-batch``, its shards uploaded and its batches polled.
        poll_interval: Seconds between two looks at the batches (``batch_api``).
        cancel: With ``batch_api``: cancel the build's recorded batches that are not over,
            then collect what they answered (the rest goes to the repair build).
        max_tokens_field: ``max_tokens``, ``max_completion_tokens`` or ``auto`` (the spec's
            ``model.max_tokens_field``, else ``max_completion_tokens`` for api.openai.com and
            ``max_tokens`` elsewhere).

    Raises:
        UsageError: An option out of its range, or an unknown grammar mode or token field.
    """

    base_url: str | None = None
    local: bool | None = None
    model_path: str | os.PathLike[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    grammar: str = "auto"
    cache_path: str | os.PathLike[str] | None = None
    use_cache: bool = True
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    limit: int | None = None
    model: str | None = None
    parse: bool = False
    outputs_path: str | os.PathLike[str] | None = None
    results_path: str | os.PathLike[str] | None = None
    repair: int | None = None
    max_tokens_field: str = "auto"
    batch_api: bool = False
    poll_interval: float = 30.0
    cancel: bool = False

    def __post_init__(self) -> None:
        for name, kinds in _TYPES.items():  # from Python, any value may come: say which
            value: Any = getattr(self, name)
            if (
                not isinstance(value, kinds)
                or (isinstance(value, bool) and bool not in kinds)
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                raise UsageError(
                    f"{name} {value!r:.60} is not {_KIND_NAMES[name]}", code="bad-run-option"
                )
        grammar_mode(self.grammar)  # refused here, when made
        if self.base_url is not None:
            check_base_url(self.base_url)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"limit must be at least 1, not {self.limit}", code="bad-limit")
        if self.concurrency < 1:
            raise UsageError(
                f"concurrency must be at least 1, not {self.concurrency}", code="bad-concurrency"
            )
        if self.max_retries < 0 or self.timeout <= 0:
            raise UsageError(
                "max_retries must be 0 or more and timeout above 0", code="bad-retries"
            )
        if self.poll_interval <= 0:
            raise UsageError(
                f"poll_interval must be above 0, not {self.poll_interval}", code="bad-poll"
            )
        if self.cancel and not self.batch_api:
            raise UsageError(
                "cancel is for the batches of --batch-api; a run of another engine stops "
                "with Ctrl-C or kill",
                code="cancel-without-batch-api",
            )
        if self.repair is not None and self.repair < 0:
            raise UsageError(f"repair must be 0 or more, not {self.repair}", code="bad-repair")
        if self.max_tokens_field not in TOKEN_FIELDS:
            raise UsageError(
                f"unknown max_tokens field {self.max_tokens_field!r}; expected "
                + ", ".join(TOKEN_FIELDS),
                code="bad-token-field",
            )

    @property
    def grammar_mode(self) -> GrammarMode:
        """The grammar mode, spelt as the code spells it (``json-schema`` → ``json_schema``)."""
        return grammar_mode(self.grammar)

    def outputs_file(self, build: Path) -> Path:
        """Where the answers go: ``outputs_path``, else ``BUILD_DIR/outputs.jsonl``."""
        return Path(self.outputs_path) if self.outputs_path is not None else build / OUTPUTS_FILE

    def check_files(self, build: Path) -> None:
        """Refuses an ``outputs_path`` or ``results_path`` that would write over answers,
        results, a file of the build or a file that is not promptc's (the rule of
        ``promptc run -o`` and ``--results``), and a results file that cannot be written
        (a folder under its name): said before anything is sent, not after paying for every
        answer.

        Raises:
            UsageError: ``overwrite``, naming the option and the file; ``not-regular``,
                ``bad-results-path``, ``unwritable``.
        """
        answers = self.outputs_file(build)
        written = self.results_file(build)
        results = written or answers.with_name(RESULTS_FILE)
        problems = [
            overwrite_error(
                "results_path", str(results), "results", others=[str(answers)], build=str(build)
            )
            if self.results_path is not None
            else None,
            overwrite_error(
                "outputs_path", str(answers), "answers", others=[str(results)], build=str(build)
            )
            if self.outputs_path is not None
            else None,
            # Not named by an option: results.jsonl beside the outputs, rewritten.
            overwrite_error("the results file", str(written), "results")
            if written is not None and self.results_path is None
            else None,
        ]
        for problem in problems:
            if problem is not None:
                raise UsageError(problem, code="overwrite")
        if written is not None:
            named = self.results_path is not None
            check_placeable(written, "results_path" if named else "results file", named)

    def results_file(self, build: Path) -> Path | None:
        """Where the results go with ``parse``: ``results_path``, else ``results.jsonl``
        beside the outputs. Without ``parse``, the build's ``results.jsonl`` when an earlier
        run wrote one and the answers go to the build's ``outputs.jsonl`` (kept in step with
        them: left as it was, it would say what answers since replaced said, and eval would
        score it), else ``None``."""
        beside = self.outputs_file(build).with_name(RESULTS_FILE)
        if not self.parse:
            # Only the build's own: -o OTHER.jsonl's answers are not the ones it was written for.
            return beside if self.outputs_path is None and beside.is_file() else None
        if self.results_path is not None:
            return Path(self.results_path)
        return beside
