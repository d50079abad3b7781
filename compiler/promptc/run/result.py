"""What a run did: :class:`RunResult` (the summary line and ``--format json``) and each
:class:`RequestFailure`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The summary's part for items cut off at ``max_tokens``.
TRUNCATED_SUMMARY = (
    "{n} item(s) truncated: the output stopped at max_tokens before their answers "
    "(raise model.max_tokens_per_item, or model.max_tokens)"
)


@dataclass(frozen=True)
class RequestFailure:
    """A request that got no answer after every retry.

    Attributes:
        request_id: The request's id in ``requests.jsonl`` (or a repair request's id).
        kind: A key of :data:`promptc.run.engine.FAILURES` (``connection``, ``timeout``, ``auth``…).
        what: What failed, one sentence.
        check: What to check or do about it.
        attempts: How many times the request was sent.
    """

    request_id: str
    kind: str
    what: str
    check: str
    attempts: int

    def format(self) -> str:
        """``request r0003: could not connect to … after 4 attempts; check that …``"""
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        return f"request {self.request_id}: {self.what} after {tries}; {self.check}"


@dataclass
class RunResult:
    """What a run did.

    Attributes:
        build_dir: The build that was run.
        outputs_path: Where the answers are (``outputs.jsonl``).
        total: Requests considered (all of the build's, or the first ``limit``).
        skipped: Already answered in ``outputs.jsonl`` by an earlier run (resumed).
        cached: Answered from the response cache.
        sent: Answered by the API in this run.
        failed: Requests with no answer, each with what failed and what to check.
        grammar: The grammar mode used (``auto`` resolved), or ``None`` if nothing was sent.
        results_path: ``results.jsonl`` when the run parsed the answers, else ``None``.
        statuses: Result rows per parse status (after repair), when the run parsed.
        dropped_stale: Answers moved from ``outputs.jsonl`` to ``outputs.replaced.jsonl``
            because their request changed.
        base_url: The API the run talked to (the embedded server's, for a local run).
        local: True when the run started the embedded model.
        prompt_tokens: Prompt tokens of every answer of the run (as the server counted).
        completion_tokens: Completion tokens of every answer of the run.
        prompt_unknown: Answers whose prompt tokens the server did not count (readably).
        completion_unknown: Answers whose completion tokens it did not count.
        empty: Answers that were empty (recorded, never cached).
        repair_rounds: Repair rounds that asked something.
        repair_requests: Repair requests answered.
        repaired: Items ok only thanks to repair.
        not_ok: Items still not ok after repair (``None`` when not parsed).
        items: Items of the requests considered.
        elapsed: Seconds the run took.
        early_stopped: Requests of voting rounds not sent: every item they hold had settled
            (its last ``early_stop`` answers agreed).
        early_stop_asks: Items left out of the voting rounds' requests that were sent.
    """

    build_dir: Path
    outputs_path: Path
    total: int = 0
    skipped: int = 0
    cached: int = 0
    sent: int = 0
    failed: list[RequestFailure] = field(default_factory=list)
    grammar: str | None = None
    results_path: Path | None = None
    statuses: dict[str, int] | None = None
    dropped_stale: int = 0
    base_url: str | None = None
    local: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_unknown: int = 0
    completion_unknown: int = 0
    empty: int = 0
    repair_rounds: int = 0
    repair_requests: int = 0
    repaired: int = 0
    not_ok: int | None = None
    items: int = 0
    elapsed: float = 0.0
    early_stopped: int = 0
    early_stop_asks: int = 0

    @property
    def answered(self) -> int:
        """Requests of the build with an answer (repair requests not counted)."""
        return self.skipped + self.cached + self.sent

    @property
    def ok(self) -> bool:
        """True when every request considered has an answer and every item is ok."""
        return not self.failed and self.answered == self.total and not self.not_ok

    def summary(self) -> str:
        """One line for people."""
        parts = [
            (
                f"{self.answered}/{self.total} requests answered "
                f"({self.sent} sent, {self.cached} from cache, {self.skipped} already in "
                f"{self.outputs_path.name})"
            )
        ]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.empty:
            parts.append(f"{self.empty} empty answer(s)")
        if self.repair_requests:
            parts.append(
                f"repair: {self.repair_requests} request(s) in {self.repair_rounds} round(s), "
                f"{self.repaired} item(s) repaired"
            )
        if self.early_stopped or self.early_stop_asks:
            parts.append(
                f"early stop: {self.early_stopped} request(s) not sent, "
                f"{self.early_stop_asks} settled item(s) left out of the rest"
            )
        if self.statuses is not None:
            n = sum(self.statuses.values())
            parts.append(
                f"{n} results: "
                + ", ".join(f"{c} {s}" for s, c in self.statuses.items() if c or s == "ok")
            )
        if self.not_ok:
            parts.append(f"{self.not_ok} of {self.items} item(s) not ok")
        truncated = (self.statuses or {}).get("truncated", 0)
        if truncated:
            # Apart from the unparsed ones: a budget too small, not a model that answered badly.
            parts.append(TRUNCATED_SUMMARY.format(n=truncated))
        if self.prompt_tokens or self.completion_tokens:
            parts.append(
                f"tokens {_total(self.prompt_tokens, self.prompt_unknown)} in / "
                f"{_total(self.completion_tokens, self.completion_unknown)} out"
            )
        return "; ".join(parts)

    def add_tokens(self, prompt: int | None, completion: int | None) -> None:
        """Adds an answer's token counts to the run's; a count the server did not give (in a
        form promptc reads) makes that total unknown, not smaller."""
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0
        self.prompt_unknown += prompt is None
        self.completion_unknown += completion is None

    def to_dict(self) -> dict[str, Any]:
        """The summary as data (``promptc run --format json``)."""
        return {
            "build": str(self.build_dir),
            "outputs": str(self.outputs_path),
            "results": str(self.results_path) if self.results_path is not None else None,
            "base_url": self.base_url,
            "local": self.local,
            "grammar": self.grammar,
            "requests": {
                "total": self.total,
                "answered": self.answered,
                "sent": self.sent,
                "cached": self.cached,
                "skipped": self.skipped,
                "failed": len(self.failed),
                "empty": self.empty,
                "replaced": self.dropped_stale,
            },
            "items": {"total": self.items, "not_ok": self.not_ok, "statuses": self.statuses},
            "repair": {
                "rounds": self.repair_rounds,
                "requests": self.repair_requests,
                "repaired": self.repaired,
            },
            "tokens": {
                "prompt": None if self.prompt_unknown else self.prompt_tokens,
                "completion": None if self.completion_unknown else self.completion_tokens,
            },
            "failures": [
                {"request": f.request_id, "kind": f.kind, "message": f.format()}
                for f in self.failed
            ],
            "elapsed_s": round(self.elapsed, 3),
            "ok": self.ok,
        }


def _total(count: int, unknown: int) -> str:
    """A token total as the summary says it: ``?`` when no answer gave its count, ``at least
    N`` when some did not."""
    if not unknown:
        return str(count)
    return f"at least {count}" if count else "?"
