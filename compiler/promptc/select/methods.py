"""Batch selection: which items share a request, in which order.

``select(task)`` looks up the task's ``strategy.selection.method`` in :data:`METHODS`, a
static table of selection functions, and returns a :class:`SelectionResult`: the batches, in request order, and a small
``info`` mapping that goes into the build manifest (method, seed, batch size, request count,
and whatever else a method wants recorded, such as an embedding model).

``sequential`` and ``random`` live here. The similarity methods (``retrieval``, ``partition``,
``diverse``) live in :mod:`promptc.select.similarity`, which needs the optional ``embed``
extra; the table's entry for them imports that module only when a spec asks for one of them.

``single`` and ``few-shot`` send one item per request, whatever ``batch_size`` says.
"""

from __future__ import annotations

import importlib.util
import random as random_module
from array import array
from collections.abc import Mapping

from promptc import ir
from promptc.errors import SelectionError
from promptc.select.batches import Chunks, SelectionFn, SelectionResult, batch_size


def select(task: ir.Task) -> SelectionResult:
    """Groups the task's items into batches with the spec's selection method.

    Raises:
        SelectionError: At ``strategy.selection.method`` when the method is unknown or its
            optional dependency is not installed.
    """
    sel = task.strategy.selection
    method = sel.method
    fn = METHODS.get(method)
    if fn is None:
        raise SelectionError(
            f"unknown selection method {method!r}; expected one of "
            + ", ".join(repr(m) for m in ir.SELECTION_METHODS),
            location=sel.location,
            path=("strategy", "selection", "method"),
            code="unknown-selection-method",
        )
    result = fn(task)
    info = {**base_info(task, len(result.batches)), **dict(result.info)}
    return SelectionResult(result.batches, info)


def similar(task: ir.Task) -> SelectionResult:
    """``retrieval``, ``partition`` and ``diverse``: imports the ``embed`` extra's code on use.

    Raises:
        SelectionError: At ``strategy.selection.method`` when the extra is not installed.
    """
    sel = task.strategy.selection
    # Here, not with this module: embed takes about 50 ms to import, and similarity needs
    # numpy (the embed extra); only a similarity method needs either.
    from promptc.select.embed import INSTALL_EMBED, require_module

    require_module("numpy", "numpy", sel.location)  # the error that says what to install
    try:
        from promptc.select.similarity import select_similar
    except ImportError as e:
        raise SelectionError(
            f"selection method {sel.method!r} needs sentence-transformers, which is not "
            f"installed ({e})",
            location=sel.location,
            path=("strategy", "selection", "method"),
            hint=f"install it with: {INSTALL_EMBED}",
            code="missing-embed-extra",
        ) from None
    return select_similar(task)


def missing_requirements(task: ir.Task) -> list[SelectionError]:
    """What the task's selection method needs and this installation lacks, found without
    importing anything heavy (``promptc check`` reports it, rather than ``build`` failing).

    The similarity methods need :data:`promptc.select.embed.SIMILARITY_MODULES` and their
    embedding model: the bundled package, or the local folder ``strategy.selection.model``
    names.
    """
    sel = task.strategy.selection
    if METHODS.get(sel.method) is not similar or not task.items:
        return []
    # Here, not with this module: embed (with urllib and sqlite3) takes about 50 ms to
    # import, which only a similarity method needs.
    from promptc.select.embed import (
        BUNDLED_MODULE,
        BUNDLED_PACKAGE,
        DEFAULT_MODEL_NAMES,
        INSTALL_EMBED,
        SIMILARITY_MODULES,
        model_folder,
    )

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            return True

    errors: list[SelectionError] = []
    needed = list(SIMILARITY_MODULES)
    if sel.model is None or sel.model in DEFAULT_MODEL_NAMES:
        needed.append((BUNDLED_MODULE, BUNDLED_PACKAGE))
    missing = sorted(repr(package) for module, package in needed if absent(module))
    if missing:  # one error for the one extra that brings them all
        which = "it is" if len(missing) == 1 else "they are"
        errors.append(
            SelectionError(
                f"selection method {sel.method!r} needs {', '.join(missing)}: {which} not"
                " installed",
                location=sel.location,
                path=("strategy", "selection", "method"),
                hint=f"install the embed extra: {INSTALL_EMBED}",
                code="missing-extra",
            )
        )
    if sel.model is not None and sel.model not in DEFAULT_MODEL_NAMES:
        try:
            model_folder(sel.model, task.spec_dir, sel.location)
        except SelectionError as e:
            errors.append(e)
    return errors


def base_info(task: ir.Task, n_requests: int) -> dict[str, object]:
    """The facts every selection records: method, seed, batch size, items, requests, cost."""
    n_items = len(task.items)
    size = batch_size(task)
    sel = task.strategy.selection
    info: dict[str, object] = {"method": sel.method}
    if sel.method != "sequential":  # the seed changes nothing in sequential order
        info["seed"] = sel.seed
    info.update(
        {
            "batch_size": size,
            "items": n_items,
            "requests": n_requests,
            "cost": cost_statement(n_items, n_requests, size),
        }
    )
    return info


def cost_statement(n_items: int, n_requests: int, size: int) -> str:
    """A plain sentence saying what a build costs, for the manifest and the CLI summary."""
    req = "request" if n_requests == 1 else "requests"
    itm = "item" if n_items == 1 else "items"
    per = "1 item per request" if size == 1 else f"up to {size} items per request"
    return f"{n_requests} {req} for {n_items} {itm} ({per})"


def sequential(task: ir.Task) -> SelectionResult:
    """Items in data-file order, cut into consecutive batches."""
    return SelectionResult(Chunks(task, range(len(task.items))))


def random(task: ir.Task) -> SelectionResult:
    """Items shuffled with ``random.Random(seed)``, then cut into consecutive batches.

    ``Random.shuffle`` of a list of indices draws with ``randbelow``, which gives the same
    order for the same seed on every Python 3 version and platform.
    """
    # An array, not a list: 8 bytes an item. shuffle() swaps in place the same on either.
    order = array("q", range(len(task.items)))
    random_module.Random(task.strategy.selection.seed).shuffle(order)
    return SelectionResult(Chunks(task, order))


#: Every selection method by name. A static table: nothing registers itself at import time, so
#: importing a method's module has no side effects and the module graph has no cycle.
METHODS: Mapping[str, SelectionFn] = {
    "sequential": sequential,
    "random": random,
    "retrieval": similar,
    "partition": similar,
    "diverse": similar,
}
