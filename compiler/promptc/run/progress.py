"""What a run shows while it runs: a progress bar on a terminal, event lines otherwise.

:class:`Events` is what the run calls, and writes one plain line per event (logs, CI,
pipes); :class:`Bar` draws a rich progress bar (requests and items done, items ok,
tokens in and out, elapsed, ETA) with the notes printed above it. :func:`cli_events` picks one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from promptc.text import printable

if TYPE_CHECKING:
    from promptc.build import BuiltRequest


def items_of(request: BuiltRequest) -> int:
    """The items a request answers for, as progress counts them: a retrieval request's target
    alone (its other items are demonstrations)."""
    return 1 if request.target_item is not None else len(request.item_ids)


class Events:
    """Receives a run's events and says each in one plain line through ``say`` (logs, CI,
    pipes: the CLI's stderr); with no ``say``, shows nothing. :class:`Bar` draws them instead.
    """

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.say = say
        self.total = 0
        self.count = 0

    def start(self, requests: int, items: int, label: str) -> None:
        """A pass over ``requests`` requests holding ``items`` items begins."""
        self.total, self.count = requests, 0
        self.note(f"{label}: {requests} request(s), {items} item(s)")

    def done(
        self,
        request_id: str,
        *,
        items: int,
        ok: int | None,
        prompt_tokens: int,
        completion_tokens: int,
        note: str,
    ) -> None:
        """A request is answered (``ok``: its items that parsed ok, if parsed)."""
        self.count += 1
        extra = f", {ok}/{items} items ok" if ok is not None else ""
        tokens = f", tokens {prompt_tokens} in / {completion_tokens} out" if prompt_tokens else ""
        self.note(f"[{self.count}/{self.total}] {request_id} answered ({note}{extra}{tokens})")

    def failed(self, request_id: str, items: int, kind: str) -> None:
        """A request got no answer."""
        self.count += 1
        self.note(f"[{self.count}/{self.total}] {request_id} failed ({kind})")

    def note(self, line: str) -> None:
        """Something people should read (a retry, a resume, a warning)."""
        if self.say is not None:
            self.say(line)

    def close(self) -> None:
        """The run is over."""


class Bar(Events):
    """A rich progress bar on ``file`` (a terminal)."""

    def __init__(self, file: IO[str]) -> None:
        # rich (about 50 ms to import) is imported only when a terminal shows the bar.
        from rich.console import Console

        self.console = Console(file=file)
        self._progress: Any = None
        self._task: Any = None
        self.items = self.items_total = self.ok = self.tokens_in = self.tokens_out = 0

    def start(self, requests: int, items: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.close()
        self.items_total = items
        self.items = self.ok = 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("requests"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=requests, stats=self._stats())

    def _stats(self) -> str:
        return (
            f"items {self.items}/{self.items_total}, {self.ok} ok, "
            f"tokens {self.tokens_in} in / {self.tokens_out} out"
        )

    def done(
        self,
        request_id: str,
        *,
        items: int,
        ok: int | None,
        prompt_tokens: int,
        completion_tokens: int,
        note: str,
    ) -> None:
        self.items += items
        self.ok += ok or 0
        self.tokens_in += prompt_tokens
        self.tokens_out += completion_tokens
        if self._progress is not None:
            self._progress.update(self._task, advance=1, stats=self._stats())

    def failed(self, request_id: str, items: int, kind: str) -> None:
        self.items += items
        self.note(f"{request_id} failed ({kind})")
        if self._progress is not None:
            self._progress.update(self._task, advance=1, stats=self._stats())

    def note(self, line: str) -> None:
        self.console.print(printable(line), markup=False, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def cli_events(file: IO[str] | None = None) -> Events:
    """A bar when ``file`` (default stderr) is a terminal, plain lines otherwise."""
    out = file if file is not None else sys.stderr
    if hasattr(out, "isatty") and out.isatty():
        return Bar(out)
    return Events(lambda line: print(printable(line), file=out, flush=True))
