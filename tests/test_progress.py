"""What a run shows: plain event lines when not on a terminal, a rich bar on one."""

from __future__ import annotations

import io

from promptc.run.progress import Bar, Events, cli_events


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(events: Events) -> None:
    events.start(2, 9, "promptc run")
    events.done("r0001", items=8, ok=7, prompt_tokens=400, completion_tokens=50, note="1.0 s")
    events.note("request r0002: rate-limit (slow down); retrying in 0.5 s")
    events.failed("r0002", 1, "timeout")
    events.close()


def test_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    events = cli_events(out)
    assert type(events) is Events  # plain lines, not the bar
    _feed(events)
    assert out.getvalue().splitlines() == [
        "promptc run: 2 request(s), 9 item(s)",
        "[1/2] r0001 answered (1.0 s, 7/8 items ok, tokens 400 in / 50 out)",
        "request r0002: rate-limit (slow down); retrying in 0.5 s",
        "[2/2] r0002 failed (timeout)",
    ]


def test_a_bar_on_a_terminal() -> None:
    out = _Tty()
    events = cli_events(out)
    assert isinstance(events, Bar)
    _feed(events)
    text = out.getvalue()
    assert "promptc run" in text and "2/2" in text
    assert "items 9/9, 7 ok, tokens 400 in / 50 out" in text
    assert "retrying in 0.5 s" in text and "r0002 failed (timeout)" in text


def test_a_callable_gets_lines() -> None:
    seen: list[str] = []
    events = Events(seen.append)
    _feed(events)
    assert seen[0] == "promptc run: 2 request(s), 9 item(s)" and len(seen) == 4
