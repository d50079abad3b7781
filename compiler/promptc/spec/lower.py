"""Lower a validated spec to the IR, and ``compile_spec``: the whole front end in one call.

``lower(doc)`` turns a :class:`~promptc.spec.load.SpecDocument` that passed validation into an
:class:`~promptc.ir.Task`, filling in every default (documented in docs/spec.md) and reading the
data file. ``compile_spec(path)`` runs load → command-line overrides → validate → lower and raises
one :class:`~promptc.errors.PromptcErrors` holding every problem found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from promptc import ir
from promptc.errors import ErrorCollector, Location, PromptcError, PromptcErrors, flatten
from promptc.markers import OPTION_LETTERS, OPTIONS_LABEL, options_text
from promptc.spec.answer_format import parse_answer_format
from promptc.spec.data import read_data
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument, confined, load_spec
from promptc.spec.rows import option_list, to_text
from promptc.spec.validate import batch_size_of, declared_outputs, integer, strategy_of, validate
from promptc.strategies import STRATEGIES
from promptc.text import default_label
from promptc.values import option_text, resolve_option

__all__ = ["compile_spec", "lower"]


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _demo_input(doc: SpecDocument, path: KeyPath, value: object, f: ir.InputField) -> str:
    """A demo's input as text: strings as they are, an ``options`` input's list shown as
    ``(a) … (b) …``, other scalars as written in the file."""
    if isinstance(value, str):
        return value
    listed = option_list(value) if f.type == "options" else None
    if listed is not None:
        return options_text(listed)
    span = doc.spans.get(path)
    source = doc.sources.get(span.file) if span else None
    if span is not None and source is not None and span.style is None:
        return source[span.start : span.end]
    return to_text(value)


def _demo_output(f: ir.OutputField, value: object, demo: Mapping[str, object]) -> ir.Value:
    """A demo's output value. An answer naming one of the demo's options (``choices_from``) is
    its letter — or, with ``answer_with: text``, its text, which is how the demo then shows
    the model what to write. (Validation has checked that it names exactly one option.)"""
    if f.choices_from:
        options = option_list(demo.get(f.choices_from)) or ()
        answer_with: ir.AnswerWith = "either" if f.answer_with != "letter" else "letter"
        hits = resolve_option(answer_with, options, str(value), exact=False)
        if len(hits) == 1:
            letter = hits[0]
            given_letter = str(value).strip().lower() == letter
            if f.answer_with == "text" or (f.answer_with == "either" and not given_letter):
                return option_text(options[OPTION_LETTERS.index(letter)])
            return letter
    return f.type.coerce(f, value)


def _narrow_choices(
    outputs: list[ir.OutputField], items: Sequence[ir.Item], demos: list[ir.Demo]
) -> list[ir.OutputField]:
    """An enum with ``choices_from`` gets the letters of the most options any item has."""
    out = []
    for o in outputs:
        if o.choices_from:
            most = max((len(it.options.get(o.choices_from, ())) for it in items), default=0)
            for d in demos:
                letter = str(d.outputs.get(o.name, "a"))
                most = max(most, OPTION_LETTERS.find(letter.lower()) + 1)
            o = replace(o, choices=tuple(OPTION_LETTERS[: max(most, 1)]))
            if o.answer_with != "letter":
                longest = max(
                    (
                        len(option_text(x))
                        for it in items
                        for x in it.options.get(o.choices_from, ())
                    ),
                    default=1,
                )
                for d in demos:
                    longest = max(longest, len(str(d.outputs.get(o.name, ""))))
                o = replace(o, option_chars=max(longest, 1))
        out.append(o)
    return out


def lower(doc: SpecDocument, collector: ErrorCollector | None = None) -> ir.Task:
    """Builds the IR of a validated spec, reading its data.

    Args:
        doc: A spec that passed :func:`promptc.validate.validate`.
        collector: Receives data-file problems; without one, they are raised together.

    Raises:
        PromptcErrors: Problems in the data file (when no collector is given).
    """
    own = collector is None
    c = collector if collector is not None else ErrorCollector()
    d = doc.data
    inputs = _inputs(doc)
    outputs = list(declared_outputs(doc).values())
    assert len(outputs) == len(d["outputs"]), "lower() needs a validated spec"
    demos = _demos(doc, inputs, outputs)
    source, items = read_data(doc, c)
    outputs = _narrow_choices(outputs, items, demos)
    top = doc.files[0]
    task = ir.Task(
        name=d["name"],
        description=_str(d.get("description")),
        instruction=d["instruction"],
        inputs=inputs,
        outputs=tuple(outputs),
        answer_format=_answer_format(doc, outputs),
        demos=tuple(demos),
        data=source,
        items=items,
        strategy=_strategy(doc),
        model=_model(doc),
        templates=_templates(doc),
        spec=ir.SourceFile(str(top.resolved), top.sha256),
        spec_dir=str(top.resolved.parent),
        extends=tuple(ir.SourceFile(str(f.resolved), f.sha256) for f in doc.files[1:]),
        location=Location(top.display, 1, 1),
        markers=_markers(doc),
        demos_as=d.get("demos_as", "system"),
        run=ir.RunConfig(
            repair_max_attempts=int(
                ((d.get("run") or {}).get("repair") or {}).get("max_attempts", 2)
            )
        ),
    )
    if own:
        c.raise_if_any()
    return task


def _inputs(doc: SpecDocument) -> tuple[ir.InputField, ...]:
    return tuple(
        ir.InputField(
            name=name,
            type="options" if decl.get("type") == "options" else "text",
            label=_str(
                decl.get("label"),
                OPTIONS_LABEL if decl.get("type") == "options" else default_label(name),
            ),
            description=_str(decl.get("description")),
            location=doc.key_location(("inputs", name)),
        )
        for name, decl in doc.data["inputs"].items()
    )


def _answer_format(doc: SpecDocument, outputs: Sequence[ir.OutputField]) -> ir.AnswerFormat:
    """The spec's answer format; without one, the lone output's placeholder."""
    af_path: KeyPath = ("answer_format",)
    source = doc.data.get("answer_format")
    if source is None:
        return parse_answer_format("{" + outputs[0].name + "}", doc.key_location(("outputs",)))
    return parse_answer_format(
        source, doc.value_location(af_path), locate=doc.text_locator(af_path)
    )


def _demos(
    doc: SpecDocument, inputs: Sequence[ir.InputField], outputs: Sequence[ir.OutputField]
) -> list[ir.Demo]:
    by_name = {o.name: o for o in outputs}
    return [
        ir.Demo(
            inputs={
                f.name: _demo_input(doc, ("demos", i, f.name), demo[f.name], f) for f in inputs
            },
            outputs={o.name: _demo_output(by_name[o.name], demo[o.name], demo) for o in outputs},
            location=doc.value_location(("demos", i)),
        )
        for i, demo in enumerate(doc.data.get("demos") or [])
    ]


def _model(doc: SpecDocument) -> ir.ModelConfig:
    model_decl = dict(doc.data["model"])
    price = model_decl.pop("price", None)
    # Parameters promptc does not know go out beside the known ones, as the server expects.
    model_decl.update(model_decl.pop("extra", None) or {})
    provider = model_decl.pop("provider", None)
    max_tokens_field = model_decl.pop("max_tokens_field", None)
    return ir.ModelConfig(
        name=model_decl.pop("name"),
        temperature=model_decl.pop("temperature", None),
        max_tokens=integer(model_decl.pop("max_tokens", None)),
        max_tokens_per_item=integer(model_decl.pop("max_tokens_per_item", None)),
        price=None
        if price is None
        else ir.Price(
            Decimal(str(price["input"])),
            Decimal(str(price["output"])),
            None if price.get("cached_input") is None else Decimal(str(price["cached_input"])),
        ),
        location=doc.key_location(("model",)),
        provider=provider,
        max_tokens_field=max_tokens_field,
        params=model_decl,
    )


def _templates(doc: SpecDocument) -> tuple[ir.TemplateRef, ...]:
    templates: list[ir.TemplateRef] = []
    for kind in STRATEGIES.values():
        rel = (doc.data.get("templates") or {}).get(kind.name)
        if rel is None:
            continue
        p: KeyPath = ("templates", kind.name)
        target = confined(doc.folder_of(p), rel)
        assert isinstance(target, Path), "lower() needs a validated spec"
        templates.append(ir.TemplateRef(kind, str(target), doc.value_location(p)))
    return tuple(templates)


def _markers(doc: SpecDocument) -> ir.Markers:
    d = doc.data
    markers_decl = d.get("markers") or {}
    return ir.Markers(
        question=markers_decl.get("question", "Q"),
        answer=markers_decl.get("answer", "A"),
        inputs=markers_decl.get("inputs", "together"),
        location=doc.key_location(("markers",)) if "markers" in d else ir.NOWHERE,
    )


def _strategy(doc: SpecDocument) -> ir.StrategySpec:
    kind = strategy_of(doc)
    size = batch_size_of(doc)
    assert kind is not None and size is not None, "lower() needs a validated spec"
    sp: KeyPath = ("strategy", "selection")
    defaults = ir.Selection()
    selection = ir.Selection(
        method=doc.get(sp + ("method",), defaults.method),
        seed=_integer(doc, sp + ("seed",), defaults.seed),
        target_position=_integer(doc, sp + ("target_position",), defaults.target_position),
        model=doc.get(sp + ("model",)),
        cache_dir=_cache_dir(doc),
        location=doc.key_location(sp),
        embeddings=_embeddings(doc),
    )
    vote = doc.get(("strategy", "vote"))
    return ir.StrategySpec(
        kind,
        size,
        selection,
        doc.key_location(("strategy",)),
        vote=None
        if vote is None
        else ir.Vote(
            rounds=_integer(doc, ("strategy", "vote", "rounds"), 1),
            early_stop=integer(vote.get("early_stop")),
            location=doc.value_location(("strategy", "vote", "rounds")),
        ),
    )


def _embeddings(doc: SpecDocument) -> ir.EmbeddingEndpoint | None:
    p: KeyPath = ("strategy", "selection", "embeddings")
    raw = doc.get(p)
    if not isinstance(raw, dict):
        return None
    defaults = ir.EmbeddingEndpoint("", "")
    return ir.EmbeddingEndpoint(
        url=str(raw["url"]).rstrip("/"),
        model=str(raw["model"]),
        api_key_env=raw.get("api_key_env"),
        texts_per_request=int(raw.get("texts_per_request", defaults.texts_per_request)),
        concurrency=int(raw.get("concurrency", defaults.concurrency)),
        max_retries=int(raw.get("max_retries", defaults.max_retries)),
        timeout=float(raw.get("timeout", defaults.timeout)),
        dimensions=int(raw["dimensions"]) if raw.get("dimensions") is not None else None,
        location=doc.key_location(p),
    )


def _integer(doc: SpecDocument, path: KeyPath, default: int) -> int:
    """An integer key of a validated spec (``7.0`` is 7, as validation read it)."""
    value = integer(doc.get(path, default))
    assert value is not None, "lower() needs a validated spec"
    return value


def _cache_dir(doc: SpecDocument) -> str | None:
    """``cache_dir`` resolved against the folder of the spec that declares it."""
    p: KeyPath = ("strategy", "selection", "cache_dir")
    rel = doc.get(p)
    if not isinstance(rel, str):
        return None
    if doc.value_location(p).file == COMMAND_LINE:
        return str(Path(rel).resolve())
    return str((doc.folder_of(p) / rel).resolve())  # inside the spec's folder: validate


def compile_spec(
    path: str | Path,
    *,
    overrides: Mapping[tuple[str, ...], object] | None = None,
    max_errors: int | None = 50,
    fail_fast: bool = False,
    digests: bool = True,
) -> ir.Task:
    """The front end: load, apply overrides, validate, lower (reading the data).

    Args:
        path: The spec file.
        overrides: Values set from the command line, by key path, e.g.
            ``{("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}``.
        max_errors: Keep at most this many errors (``None``: all); the rest are counted.
        fail_fast: Stop at the first error.
        digests: Take the sha256 of the spec files and the data file, as read. Without
            (``promptc check``, which names none), ``SourceFile.sha256`` and
            ``DataSource.sha256`` are ``""``.

    Raises:
        PromptcErrors: Every problem found (at least one).
    """
    c = ErrorCollector(max_errors=max_errors, fail_fast=fail_fast)
    try:
        try:
            doc = load_spec(path, digests=digests)
        except PromptcError as e:
            c.add(e)  # through the collector, so that max_errors caps load errors too
            c.raise_if_any()
            raise
        for key_path, value in sorted((overrides or {}).items()):
            doc.set(tuple(key_path), value, Location(COMMAND_LINE))
        validate(doc, c)
        if c:
            # The spec is invalid, but a missing or broken data file is worth reporting too.
            if isinstance(doc.get(("inputs",)), dict) and isinstance(doc.get(("data",)), dict):
                read_data(doc, c)
            c.raise_if_any()
        task = lower(doc, c)
        c.raise_if_any()
        return task
    except PromptcErrors:
        raise
    except PromptcError as e:
        # fail_fast raises single errors; the contract is one PromptcErrors.
        errors = flatten([e]) + ([] if fail_fast else list(c.errors))
        unique = {id(x): x for x in errors}  # the error raised may be one collected too
        raise PromptcErrors(list(unique.values()), c.omitted) from None
