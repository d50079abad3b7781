"""Two builds compared request by request, the requests matched by the items they hold.

A build is seen as a :class:`BuildView`: its requests (item ids, messages, parameters, grammar
stem) and its grammar files — made from a :class:`promptc.build.BuildResult` in memory or read
back from a build folder. :func:`compare` pairs the requests of two views:

1. the same items in the same order (and the same target item, for retrieval batches);
2. the same items in another order (shown as *reordered*);
3. the most items in common (shown as a change of membership);

and what is left over was added or removed. A pair is *changed* when its messages, parameters,
grammar, membership or position differ. Matching by items, not by position, shows a request
that moved as moved, not as one request removed and another added.

Beside the requests, a build keeps what its answers are read and scored with (``task.json``,
``items.jsonl``): the items' gold answers and options, inputs no prompt shows, the outputs'
types, choices and aliases, the answer format and the markers. Two builds that send the same
requests but differ there are different builds (parse credits, or eval scores, the same
answers otherwise), and the diff says what differs.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from promptc import ir
from promptc.build import BuildResult, read_manifest, read_requests, read_task
from promptc.build.files import inside, read_text
from promptc.build.targets import TARGETS
from promptc.errors import Location, PromptcError, UsageError
from promptc.plan.tokenizers import Tokenizer, tokenizer_for

#: Context lines around each change in a message's unified diff.
CONTEXT = 3

#: An estimate of the tokens of a text: words and single punctuation marks, roughly what BPE
#: tokenizers make of English prose; good for ratios between two builds, not for billing.
_TOKEN = re.compile(r"\w+|[^\w\s]")

Status = Literal["changed", "added", "removed"]


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens ``text`` is (words and punctuation marks counted)."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class RequestView:
    """One request of a build, as compared.

    Attributes:
        position: 0-based place in ``requests.jsonl``.
        id: The request id.
        item_ids: The items it holds, in order.
        target: The target item of a retrieval batch, else ``None``.
        messages: ``(role, content)`` of each chat message.
        params: The model parameters sent with it.
        grammar: The stem of its grammar files (``answer``, ``answer-4``), if known.
    """

    position: int
    id: str
    item_ids: tuple[str, ...]
    target: str | None
    messages: tuple[tuple[str, str], ...]
    params: Mapping[str, object]
    grammar: str | None

    def brief(self) -> dict[str, object]:
        """Id and items, for JSON."""
        return {"id": self.id, "position": self.position, "item_ids": list(self.item_ids)}


@dataclass(frozen=True)
class BuildView:
    """A build as the diff sees it.

    Attributes:
        label: How the build is named in headers: ``HEAD~1:specs/math.yaml``, ``build/math``.
        name: The task's name (from the manifest), if known.
        spec: The spec's file name as the manifest records it, if known.
        requests: Its requests, in file order.
        grammar_files: Grammar file name → text (``answer.lark`` …).
        settings: What the build says of all its requests at once, from its manifest: its
            ``target`` and the ``grammar form`` its bodies carry (``gbnf``, ``json-schema``,
            ``none``).
        reads: What parse reads answers with, from the task (:func:`answer_reading`).
        items: The build's items by id (``items.jsonl``): their gold answers, options and
            inputs.
    """

    label: str
    name: str | None
    spec: str | None
    requests: tuple[RequestView, ...]
    grammar_files: Mapping[str, str]
    settings: Mapping[str, str | None]
    reads: Mapping[str, object] = field(default_factory=dict)
    items: Mapping[str, ir.Item] = field(default_factory=dict)


def answer_reading(task: ir.Task) -> dict[str, object]:
    """What of the task (``task.json``) parse and eval read answers with, and run asks them
    with beyond the requests' own text, by a name for people (``output sentiment aliases``),
    each value plain JSON: a change there credits the same answer otherwise, or sends other
    requests (early stop leaves settled items out of later rounds, repair asks failed items
    again). The instruction and the descriptions are left out: they only render, and the
    requests show that."""
    vote = task.strategy.vote
    out: dict[str, object] = {
        "answer format": task.answer_format.source,
        "markers": [task.markers.question, task.markers.answer, task.markers.inputs],
        "vote early_stop": vote.early_stop if vote is not None else None,
        "run repair max_attempts": task.run.repair_max_attempts,
        "model provider": task.model.provider,
        "model max_tokens_field": task.model.max_tokens_field,
    }
    for f in task.inputs:
        out[f"input {f.name} type"] = f.type
    for o in task.outputs:
        out[f"output {o.name} type"] = o.type.name
        out[f"output {o.name} choices"] = list(o.choices)
        # A mapping: its order changes nothing sent or read.
        out[f"output {o.name} aliases"] = sorted(list(a) for a in o.aliases)
        out[f"output {o.name} choices_from"] = o.choices_from
        out[f"output {o.name} answer_with"] = o.answer_with
    return out


def view_of_result(result: BuildResult, label: str, task: ir.Task) -> BuildView:
    """The view of a :class:`promptc.build.BuildResult` (a build made in memory of ``task``)."""
    manifest: Mapping[str, Any] = result.manifest
    grammar = manifest["grammar"]  # as this promptc has just written it
    stems = {int(n): str(s) for n, s in grammar["stems"].items()}
    requests = []
    for position, r in enumerate(result.requests):
        batch = r.batch
        requests.append(
            RequestView(
                position=position,
                id=r.id,
                item_ids=tuple(batch.item_ids),
                target=batch.item_ids[batch.target] if batch.target is not None else None,
                messages=tuple((m.role, m.content) for m in r.messages),
                params=dict(r.params),
                grammar=stems.get(len(batch.item_ids)),
            )
        )
    grammar_files = {k: result.files[k] for k in sorted(grammar["files"])}
    return _view(label, manifest, requests, grammar_files, task)


def read_view(build_dir: str | os.PathLike[str]) -> BuildView:
    """The view of a build folder, read with :func:`promptc.build.read_requests`.

    Raises:
        UsageError: The folder is not a build (``not-a-build``: no ``manifest.json`` or
            ``requests.jsonl``), or its manifest, a request line or its task files
            (:func:`promptc.build.read_task`) are malformed or changed after building.
    """
    folder = Path(build_dir)
    manifest = read_manifest(folder)
    task = read_task(folder)
    requests = tuple(
        RequestView(
            position=i,
            id=r.id,
            item_ids=r.item_ids,
            target=r.target_item,
            messages=tuple(
                (str(m.get("role", "")), _content(m.get("content"))) for m in r.messages
            ),
            params=dict(r.params),
            grammar=r.grammar,
        )
        for i, r in enumerate(read_requests(folder))
    )
    grammar = manifest.get("grammar")
    grammar_files: dict[str, str] = {}
    for name in sorted(grammar.get("files", {})) if isinstance(grammar, Mapping) else ():
        try:
            grammar_files[name] = read_text(inside(folder, name, "grammar file"))
        except (OSError, PromptcError):
            continue
    return _view(str(build_dir), manifest, requests, grammar_files, task)


def _content(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _view(
    label: str,
    manifest: Mapping[str, Any],
    requests: Sequence[RequestView],
    grammar_files: Mapping[str, str],
    task: ir.Task,
) -> BuildView:
    name = manifest.get("name")
    spec = manifest.get("spec")
    path = spec.get("path") if isinstance(spec, Mapping) else None
    target = TARGETS.get(str(manifest.get("target")))
    form = target.form(manifest) if target is not None else None
    return BuildView(
        label=label,
        name=name if isinstance(name, str) else None,
        spec=path if isinstance(path, str) else None,
        requests=tuple(requests),
        grammar_files=grammar_files,
        settings={
            "target": None if target is None else target.name,
            "grammar form": None if target is None else (form or "none").replace("_", "-"),
        },
        reads=answer_reading(task),
        items={i.id: i for i in task.items},
    )


def same_spec(a: BuildView, b: BuildView) -> None:
    """Refuses to compare builds of two different specs (neither name nor spec file shared).

    Raises:
        UsageError: ``different-specs``.
    """
    if a.name is None or b.name is None or a.name == b.name:
        return
    if a.spec is not None and a.spec == b.spec:
        return
    raise UsageError(
        f"{b.label!r} is a build of {b.name!r} ({b.spec}), but {a.label!r} is a build of "
        f"{a.name!r} ({a.spec}): builds of different specs cannot be compared",
        location=Location(b.label),
        hint="compare two builds of the same spec",
        code="different-specs",
    )


# ---------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class MessageDiff:
    """One changed message of a request pair.

    Attributes:
        index: The message's index in the request.
        role: Its role (the new one when the role changed).
        lines: The unified diff, headers first, without line ends.
        same_as: The id of an earlier request whose diff of this message had the same hunks,
            or ``None``.
    """

    index: int
    role: str
    lines: tuple[str, ...]
    same_as: str | None = None


@dataclass(frozen=True)
class ParamChange:
    """A model parameter that differs: ``None`` on a side where it is not set."""

    key: str
    old: object
    new: object


@dataclass(frozen=True)
class RequestChange:
    """A request added, removed, or matched with one whose content differs.

    Attributes:
        status: ``changed``, ``added`` or ``removed``.
        old: The request in the old build (``None`` when added).
        new: The request in the new build (``None`` when removed).
        reordered: The same items, in another order.
        items_removed: Items the old request held that the new one does not.
        items_added: Items the new request holds that the old one did not.
        moved: The request's position changed.
        messages: The changed messages.
        params: The changed model parameters.
        grammar: ``(old stem, new stem)`` when the grammar stem changed.
        were_in: For an added request, the old requests that held its items.
    """

    status: Status
    old: RequestView | None
    new: RequestView | None
    reordered: bool = False
    items_removed: tuple[str, ...] = ()
    items_added: tuple[str, ...] = ()
    moved: bool = False
    messages: tuple[MessageDiff, ...] = ()
    params: tuple[ParamChange, ...] = ()
    grammar: tuple[str | None, str | None] | None = None
    were_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class GrammarDiff:
    """The grammar of one request shape (``answer``, ``answer-4``) added, removed or changed.

    Attributes:
        stem: The grammar's file stem.
        status: ``changed``, ``added`` or ``removed``.
        files: The files of that stem that differ (``answer.lark``, ``answer.gbnf`` …).
        lines: The unified diff of its ``.lark`` source (the other files say the same in
            other notations), headers first.
    """

    stem: str
    status: Status
    files: tuple[str, ...]
    lines: tuple[str, ...]


#: What of an item :class:`ItemChange` names, in the order the diff says them.
ITEM_FIELDS: tuple[str, ...] = ("gold", "options", "inputs")


@dataclass(frozen=True)
class ItemChange:
    """Items of both builds whose gold answers, options, or inputs differ, the same way.

    Attributes:
        what: ``gold``, ``options`` or ``inputs`` (:data:`ITEM_FIELDS`): ``inputs`` only of
            items no changed request shows (the prompts do not show those inputs).
        items: Their ids, in the new build's data order.
    """

    what: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class BuildDiff:
    """What changed from one build to another.

    Attributes:
        old: The old build.
        new: The new build.
        changes: Requests changed, added or removed: the new build's order, then removals.
        unchanged: How many request pairs are identical (position included).
        grammar: The grammars that differ, by stem.
        tokens: Input tokens of all requests, ``(old, new)``: counted with ``counted_with``,
            else estimated.
        items: Distinct items answered, ``(old, new)``.
        settings: What differs of what the builds say of all their requests at once
            (:attr:`BuildView.settings`): another target, another grammar form in the bodies.
        reads: What differs of what parse reads answers with (:attr:`BuildView.reads`).
        item_changes: Items whose gold, options or unshown inputs differ.
    """

    old: BuildView
    new: BuildView
    changes: tuple[RequestChange, ...]
    unchanged: int
    grammar: tuple[GrammarDiff, ...]
    tokens: tuple[int, int]
    items: tuple[int, int]
    counted_with: str | None = None
    settings: tuple[ParamChange, ...] = ()
    reads: tuple[ParamChange, ...] = ()
    item_changes: tuple[ItemChange, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything differs."""
        return bool(
            self.changes or self.grammar or self.settings or self.reads or self.item_changes
        )

    def count(self, status: Status) -> int:
        """How many requests have this status."""
        return sum(1 for c in self.changes if c.status == status)


def match(
    old: Sequence[RequestView], new: Sequence[RequestView]
) -> tuple[dict[int, RequestView], list[RequestView]]:
    """Pairs requests by the items they hold: ``(paired, removed)``, ``paired`` the old request
    of each new one that has one, by the new one's position.

    Each request is in at most one pair. Linear in the
    total number of item slots (a request matched by overlap looks only at the old requests
    holding one of its items).
    """
    paired: dict[int, RequestView] = {}  # new position → old request
    taken: set[int] = set()  # old positions

    def by(key_of: Any) -> None:
        free: dict[object, list[RequestView]] = {}
        for r in old:
            if r.position not in taken:
                free.setdefault(key_of(r), []).append(r)
        for r in new:
            if r.position in paired:
                continue
            bucket = free.get(key_of(r))
            if bucket:
                o = bucket.pop(0)
                paired[r.position] = o
                taken.add(o.position)

    by(lambda r: (r.item_ids, r.target))
    by(lambda r: (frozenset(r.item_ids), r.target))
    holders: dict[str, list[RequestView]] = {}
    for r in old:
        if r.position not in taken:
            for item in r.item_ids:
                holders.setdefault(item, []).append(r)
    for r in new:
        if r.position in paired:
            continue
        overlap: dict[int, int] = {}
        seen: dict[int, RequestView] = {}
        for item in r.item_ids:
            for o in holders.get(item, ()):
                if o.position not in taken:
                    overlap[o.position] = overlap.get(o.position, 0) + 1
                    seen[o.position] = o
        if overlap:
            best = min(overlap, key=lambda p: (-overlap[p], p))
            paired[r.position] = seen[best]
            taken.add(best)
    return paired, [r for r in old if r.position not in taken]


class _Hunks:
    """Unified-diff hunks of message pairs, computed once per distinct pair of texts (a system
    message changed alike in every request is diffed once), and which request showed each
    distinct change first."""

    def __init__(self) -> None:
        self.hunks: dict[tuple[str, str], tuple[str, ...]] = {}
        self.first: dict[tuple[int, str, str, tuple[str, ...]], str] = {}

    def of(self, old: str, new: str) -> tuple[str, ...]:
        key = (old, new)
        found = self.hunks.get(key)
        if found is None:
            lines = difflib.unified_diff(old.splitlines(), new.splitlines(), n=CONTEXT, lineterm="")
            found = tuple(lines)[2:]  # without the two header lines
            if not found:  # equal lines: "a\n" against "a", or "\r\n" against "\n"
                found = (f"(the texts differ in line ends only: {old[-12:]!r} → {new[-12:]!r})",)
            self.hunks[key] = found
        return found


def _message_diffs(a: RequestView, b: RequestView, memo: _Hunks) -> tuple[MessageDiff, ...]:
    out = []
    for i in range(max(len(a.messages), len(b.messages))):
        old = a.messages[i] if i < len(a.messages) else None
        new = b.messages[i] if i < len(b.messages) else None
        if old == new:
            continue
        role = (new or old or ("", ""))[0]
        old_role = old[0] if old else role
        hunks = memo.of(old[1] if old else "", new[1] if new else "")
        lines = [
            f"--- a/{a.id}/{i}:{old_role}" if old else "--- /dev/null",
            f"+++ b/{b.id}/{i}:{role}" if new else "+++ /dev/null",
        ]
        if old is not None and new is not None and old[0] != new[0]:
            lines.append(f"role: {old[0]} → {new[0]}")
        lines.extend(hunks)
        first = memo.first.setdefault((i, old_role, role, hunks), b.id)
        out.append(MessageDiff(i, role, tuple(lines), first if first != b.id else None))
    return tuple(out)


def _param_changes(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[ParamChange, ...]:
    keys = sorted(set(a) | set(b))
    return tuple(ParamChange(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k))


def tokenizer_of(view: BuildView) -> Tokenizer | None:
    """The tokenizer ``promptc plan`` would count this build's model with, or ``None`` when it
    is not installed (the ``plan`` extra): the diff then estimates, and says so."""
    models = {str(r.params.get("model")) for r in view.requests if r.params.get("model")}
    try:
        return tokenizer_for(min(models) if models else "")
    except PromptcError:
        return None


def compare(old: BuildView, new: BuildView, tokenizer: Tokenizer | None = None) -> BuildDiff:
    """Everything that differs between two builds, request by request.

    Args:
        tokenizer: What input tokens are counted with (``promptc plan``'s); ``None``: they
            are estimated (:func:`estimate_tokens`), and the diff says so.
    """
    pair_of, removed = match(old.requests, new.requests)
    old_holder: dict[str, str] = {}
    for r in old.requests:
        for item in r.item_ids:
            old_holder.setdefault(item, r.id)
    memo = _Hunks()
    changes: list[RequestChange] = []
    unchanged = 0
    # One list in the new build's order: pairs and additions interleaved as they come.
    for r in new.requests:
        a = pair_of.get(r.position)
        if a is None:
            were = sorted({old_holder[i] for i in r.item_ids if i in old_holder})
            changes.append(RequestChange("added", None, r, were_in=tuple(were)))
            continue
        same_items = a.item_ids == r.item_ids
        olds, news = set(a.item_ids), set(r.item_ids)
        change = RequestChange(
            "changed",
            a,
            r,
            reordered=not same_items and olds == news,
            items_removed=tuple(i for i in a.item_ids if i not in news),
            items_added=tuple(i for i in r.item_ids if i not in olds),
            moved=a.position != r.position,
            messages=_message_diffs(a, r, memo),
            params=_param_changes(a.params, r.params),
            grammar=(a.grammar, r.grammar) if a.grammar != r.grammar else None,
        )
        # Unchanged: the same target, and nothing said of the pair beyond the pairing itself.
        if a.target == r.target and change == RequestChange("changed", a, r):
            unchanged += 1
        else:
            changes.append(change)
    changes.extend(RequestChange("removed", r, None) for r in removed)
    return BuildDiff(
        old=old,
        new=new,
        changes=tuple(changes),
        unchanged=unchanged,
        grammar=_grammar_diffs(old.grammar_files, new.grammar_files),
        tokens=(_tokens(old, tokenizer), _tokens(new, tokenizer)),
        counted_with=None if tokenizer is None else tokenizer.name,
        items=(_items(old), _items(new)),
        settings=_param_changes(old.settings, new.settings),
        reads=_param_changes(old.reads, new.reads),
        item_changes=_item_changes(old, new, changes),
    )


def _item_changes(
    old: BuildView, new: BuildView, changes: Sequence[RequestChange]
) -> tuple[ItemChange, ...]:
    """The items of both builds whose gold, options or inputs differ; inputs only where no
    request in ``changes`` shows a message of theirs changed, added or removed."""
    shown = {
        i
        for c in changes
        if c.status != "changed" or c.messages
        for r in (c.old, c.new)
        if r is not None
        for i in r.item_ids
    }
    found: dict[str, list[str]] = {what: [] for what in ITEM_FIELDS}
    for item_id, b in new.items.items():
        a = old.items.get(item_id)
        if a is None:
            continue  # a new item: the requests holding it show it
        if a.gold != b.gold:
            found["gold"].append(item_id)
        if a.options != b.options:
            found["options"].append(item_id)
        if a.inputs != b.inputs and item_id not in shown:
            found["inputs"].append(item_id)
    return tuple(ItemChange(what, tuple(ids)) for what, ids in found.items() if ids)


def _stem(name: str) -> str:
    return name.split(".", 1)[0]


def _grammar_diffs(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[GrammarDiff, ...]:
    out = []
    stems = sorted({_stem(n) for n in (*old, *new)}, key=lambda s: (len(s), s))
    for stem in stems:
        a_files = {n: t for n, t in old.items() if _stem(n) == stem}
        b_files = {n: t for n, t in new.items() if _stem(n) == stem}
        differ = tuple(
            n for n in sorted(set(a_files) | set(b_files)) if a_files.get(n) != b_files.get(n)
        )
        if not differ:
            continue
        status: Status = "added" if not a_files else "removed" if not b_files else "changed"
        lines: tuple[str, ...] = ()
        lark = f"{stem}.lark"
        if status == "changed" and lark in differ:
            lines = tuple(
                difflib.unified_diff(
                    a_files.get(lark, "").splitlines(),
                    b_files.get(lark, "").splitlines(),
                    fromfile=f"a/{lark}",
                    tofile=f"b/{lark}",
                    n=CONTEXT,
                    lineterm="",
                )
            )
        out.append(GrammarDiff(stem, status, differ, lines))
    return tuple(out)


def _tokens(view: BuildView, tokenizer: Tokenizer | None) -> int:
    # Every request repeats the system message (instruction, demos): count each text once.
    # A chat request's framing is the same per message and per request (plan's tokenizers
    # add it so), so each message is counted once with its framing, and the request's added.
    counts: dict[tuple[str, str], int] = {}
    per_request = 0 if tokenizer is None else tokenizer.count_messages([])
    total = 0
    for r in view.requests:
        total += per_request
        for role, content in r.messages:
            n = counts.get((role, content))
            if n is None:
                if tokenizer is None:
                    n = estimate_tokens(content)
                else:
                    one = [{"role": role, "content": content}]
                    n = tokenizer.count_messages(one) - per_request
                counts[(role, content)] = n
            total += n
    return total


def _items(view: BuildView) -> int:
    return len({i for r in view.requests for i in r.item_ids})
