"""A :class:`~promptc.diff.views.BuildDiff` for people (styled lines) and for tools (JSON).

:func:`lines` gives ``(text, style)`` pairs; the style is a rich style name (or ``""``), so
that the command colours them on a terminal and writes the bare text anywhere else. The text
is the same either way, and is what the golden tests hold.

A changed request reads::

    ~ r0002 [m09 m10 m11 m12] (was r0003)
      items: -m13 -m14 +m21
      params: max_tokens: 2048 → 1024
      --- a/r0003/1:user
      +++ b/r0002/1:user
      @@ -1,4 +1,4 @@
      …

``+`` marks a request added, ``-`` one removed. A message whose diff has the same hunks as one
shown for an earlier request says so in one line instead of repeating it; parameters that
changed the same way in every request are said once, at the top.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from promptc.diff.views import (
    BuildDiff,
    ItemChange,
    ParamChange,
    RequestChange,
    RequestView,
    Status,
)
from promptc.plan.tokenizers import INSTALL_PLAN

#: Item ids shown in a request's header before the rest are counted.
SHOW_ITEMS = 8

Line = tuple[str, str]

#: The mark and style of a request or a grammar added, removed or changed.
MARKS: dict[Status, Line] = {
    "added": ("+", "bold green"),
    "removed": ("-", "bold red"),
    "changed": ("~", "bold yellow"),
}


def _items(ids: Sequence[str]) -> str:
    shown = " ".join(ids[:SHOW_ITEMS])
    if len(ids) > SHOW_ITEMS:
        shown += f" … +{len(ids) - SHOW_ITEMS}"
    return f"[{shown}]"


def _value(value: object) -> str:
    if value is None:
        return "(not set)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _params(changes: Sequence[ParamChange]) -> str:
    return ", ".join(f"{p.key}: {_value(p.old)} → {_value(p.new)}" for p in changes)


#: How each kind of :class:`~promptc.diff.views.ItemChange` is said (``{n}`` items).
ITEM_CHANGES: dict[str, str] = {
    "gold": "gold of {n} changed",
    "options": "options of {n} changed",
    "inputs": "inputs of {n} changed, not shown in their prompts",
}


def _item_change(c: ItemChange, *, ids: bool) -> str:
    """``gold of 3 items changed`` (with ``ids``: ``: s01, s02, s03``)."""
    n = len(c.items)
    text = ITEM_CHANGES[c.what].format(n=f"{n} item" if n == 1 else f"{n} items")
    if not ids:
        return text
    shown = ", ".join(c.items[:SHOW_ITEMS])
    more = f", … +{n - SHOW_ITEMS}" if n > SHOW_ITEMS else ""
    return f"{text}: {shown}{more}"


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return ""


def common_params(diff: BuildDiff) -> tuple[ParamChange, ...]:
    """The parameter change every request pair shares, when there is one (else empty)."""
    pairs = [c for c in diff.changes if c.status == "changed"]
    if diff.unchanged or len(pairs) < 2:
        return ()
    first = pairs[0].params
    return first if first and all(c.params == first for c in pairs) else ()


def _header(c: RequestChange) -> Line:
    mark, style = MARKS[c.status]
    if c.status == "added":
        assert c.new is not None
        were = f" (items were in {', '.join(c.were_in)})" if c.were_in else ""
        return f"{mark} {c.new.id} {_items(c.new.item_ids)}{were}", style
    if c.status == "removed":
        assert c.old is not None
        return f"{mark} {c.old.id} {_items(c.old.item_ids)}", style
    assert c.old is not None and c.new is not None
    was: list[str] = []
    if c.old.id != c.new.id:
        was.append(c.old.id)
    if c.old.item_ids != c.new.item_ids and not c.reordered:
        was.append(_items(c.old.item_ids))
    if c.moved:
        was.append(f"position {c.old.position + 1} → {c.new.position + 1}")
    note = f" (was {', '.join(was)})" if was else ""
    return f"{mark} {c.new.id} {_items(c.new.item_ids)}{note}", style


def _request_lines(c: RequestChange, skip_params: bool) -> list[Line]:
    out = [_header(c)]
    if c.status != "changed":
        return out
    assert c.old is not None and c.new is not None
    if c.reordered:
        out.append((f"  items reordered, were {_items(c.old.item_ids)}", ""))
    elif c.items_removed or c.items_added:
        moves = [f"-{i}" for i in c.items_removed] + [f"+{i}" for i in c.items_added]
        out.append((f"  items: {' '.join(moves)}", ""))
    if c.old.target != c.new.target:
        out.append((f"  target item: {c.old.target} → {c.new.target}", ""))
    if c.params and not skip_params:
        out.append((f"  params: {_params(c.params)}", ""))
    if c.grammar is not None:
        out.append((f"  grammar: {c.grammar[0]} → {c.grammar[1]}", ""))
    for m in c.messages:
        if m.same_as is not None:
            out.append((f"  message {m.index} ({m.role}): the same change as in {m.same_as}", ""))
            continue
        out.extend((f"  {line}", _diff_style(line)) for line in m.lines)
    return out


def summary(diff: BuildDiff) -> str:
    """One line: ``12 of 40 requests changed, 28 unchanged; input tokens +3.1% per question``."""
    total = len(diff.changes) + diff.unchanged
    if not diff.changed:
        return f"no change: {total} requests unchanged" if total != 1 else "no change: 1 request"
    parts = [f"{len(diff.changes)} of {total} requests changed, {diff.unchanged} unchanged"]
    pairs = [c for c in diff.changes if c.status == "changed"]
    counts = {
        "added": diff.count("added"),
        "removed": diff.count("removed"),
        "with other items": sum(1 for c in pairs if c.items_removed or c.items_added),
        "moved": sum(1 for c in pairs if c.moved),
    }
    details = [f"{n} {what}" for what, n in counts.items() if n]
    if details:
        parts[0] += f" ({', '.join(details)})"
    if diff.grammar:
        parts.append("grammar changed")
    if diff.settings:
        parts.append(_params(diff.settings))
    if diff.reads:
        parts.append(f"answers read with {_params(diff.reads)}")
    parts.extend(_item_change(c, ids=False) for c in diff.item_changes)
    per_question = _per_question(diff)
    if per_question is not None:
        how = (
            f"counted with {diff.counted_with}"
            if diff.counted_with
            else f"estimated: {INSTALL_PLAN} counts them as plan does"
        )
        parts.append(f"input tokens {per_question} per question ({how})")
    return "; ".join(parts)


def _per_question(diff: BuildDiff) -> str | None:
    (old_t, new_t), (old_n, new_n) = diff.tokens, diff.items
    if not old_n or not new_n or not old_t:
        return None
    ratio = (new_t / new_n) / (old_t / old_n) - 1
    return f"{ratio * 100:+.1f}%"


def lines(diff: BuildDiff, *, stat: bool = False) -> list[Line]:
    """The diff as ``(text, style)`` lines: each change, the grammar's, then the summary.

    Args:
        diff: The comparison.
        stat: The summary line alone.
    """
    out: list[Line] = []
    if not stat:
        out.append((f"--- {diff.old.label}", "bold"))
        out.append((f"+++ {diff.new.label}", "bold"))
        if diff.settings:
            out.append((f"every request: {_params(diff.settings)}", "yellow"))
        if diff.reads:
            out.append((f"answers read with: {_params(diff.reads)}", "yellow"))
        out.extend((_item_change(c, ids=True), "yellow") for c in diff.item_changes)
        common = common_params(diff)
        if common:
            out.append((f"params of every request: {_params(common)}", ""))
        for c in diff.changes:
            out.extend(_request_lines(c, skip_params=bool(common)))
        for g in diff.grammar:
            mark, style = MARKS[g.status]
            out.append((f"{mark} grammar {g.stem} ({', '.join(g.files)})", style))
            out.extend((f"  {line}", _diff_style(line)) for line in g.lines)
    out.append((summary(diff), "bold"))
    return out


def _brief(r: RequestView | None) -> object:
    return r.brief() if r is not None else None


def to_json(diff: BuildDiff) -> dict[str, object]:
    """The diff as JSON-ready data (``promptc diff --format json``)."""
    per_question = _per_question(diff)
    return {
        "old": diff.old.label,
        "new": diff.new.label,
        "changed": diff.changed,
        "settings": [{"key": p.key, "old": p.old, "new": p.new} for p in diff.settings],
        "reads": [{"key": p.key, "old": p.old, "new": p.new} for p in diff.reads],
        "items_changed": [{"what": c.what, "items": list(c.items)} for c in diff.item_changes],
        "summary": {
            "requests": len(diff.changes) + diff.unchanged,
            "changed": len(diff.changes),
            "unchanged": diff.unchanged,
            "added": diff.count("added"),
            "removed": diff.count("removed"),
            "input_tokens": {"old": diff.tokens[0], "new": diff.tokens[1]},
            "items": {"old": diff.items[0], "new": diff.items[1]},
            "input_tokens_per_question_change": per_question,
            "tokens_counted_with": diff.counted_with,
            "text": summary(diff),
        },
        "requests": [
            {
                "status": c.status,
                "old": _brief(c.old),
                "new": _brief(c.new),
                "reordered": c.reordered,
                "moved": c.moved,
                "items_removed": list(c.items_removed),
                "items_added": list(c.items_added),
                "were_in": list(c.were_in),
                "params": [{"key": p.key, "old": p.old, "new": p.new} for p in c.params],
                "grammar": None
                if c.grammar is None
                else {"old": c.grammar[0], "new": c.grammar[1]},
                "messages": [
                    {"index": m.index, "role": m.role, "diff": list(m.lines), "same_as": m.same_as}
                    for m in c.messages
                ],
            }
            for c in diff.changes
        ],
        "grammar": [
            {"stem": g.stem, "status": g.status, "files": list(g.files), "diff": list(g.lines)}
            for g in diff.grammar
        ],
    }
