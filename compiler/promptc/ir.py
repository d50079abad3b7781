"""The typed intermediate representation: what ``lower`` produces and every later stage reads.

Every node is a frozen dataclass with slots. Nodes that came from a file carry its :class:`Location`, so
that a later stage (a template, the grammar, the output parser) can still point a user at the
line of the spec or data file that caused a problem.

An output field carries its value type (a :class:`~promptc.values.ValueType`, as the strategy
section carries its :class:`~promptc.strategies.Strategy`), and values of output fields are
normalised Python values (:data:`Value`, which the value types define). Input values are
always ``str``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args

from promptc.errors import Location
from promptc.strategies import Strategy

# Defined with the value types, and part of the IR: every stage reads them from here.
from promptc.values import ANSWER_WITH as ANSWER_WITH  # noqa: PLC0414
from promptc.values import AnswerWith as AnswerWith  # noqa: PLC0414
from promptc.values import Value as Value  # noqa: PLC0414
from promptc.values import ValueType

InputType = Literal["text", "options"]


SelectionMethod = Literal["sequential", "random", "retrieval", "partition", "diverse"]
SELECTION_METHODS: tuple[SelectionMethod, ...] = get_args(SelectionMethod)
SIMILARITY_METHODS: tuple[SelectionMethod, ...] = ("retrieval", "partition", "diverse")

NOWHERE = Location("<unknown>")


@dataclass(frozen=True, slots=True)
class InputField:
    """A named input of the task; ``label`` is how templates show it (``Premise``)."""

    name: str
    type: InputType = "text"
    label: str = ""
    description: str = ""
    location: Location = NOWHERE


#: How a batch shows the inputs of item i: ``together`` writes ``Q[i]: <question>`` (several
#: inputs as labelled lines after it); ``indexed`` writes each input on its own line under its
#: own marker, ``Premise[i]: …`` / ``Hypothesis[i]: …`` (the input's label as the prefix).
InputLayout = Literal["together", "indexed"]


DemosAs = Literal["system", "turns"]


@dataclass(frozen=True, slots=True)
class Markers:
    """The markers of a batch: ``Q[i]:`` before each question, ``A[i]:`` before each answer.

    One value, read from the spec's ``markers``, that templates, the grammar with every
    export, and the output parser all take their markers from.
    """

    question: str = "Q"
    answer: str = "A"
    inputs: InputLayout = "together"
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class OutputField:
    """A named, typed output. ``choices`` and ``aliases`` (alias → choice) only for a type
    that takes choices (``enum``)."""

    name: str
    type: ValueType
    description: str = ""
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    location: Location = NOWHERE
    #: enum only: the ``options`` input whose options the choices are, one letter each
    #: (``a``, ``b`` …); each item's answer must be one of its own options' letters.
    choices_from: str = ""
    #: ``choices_from`` only: whether an answer names an option by its letter, its text or
    #: either (:data:`ANSWER_WITH`); the value read is always the letter.
    answer_with: AnswerWith = "letter"
    #: ``choices_from`` with text answers: the longest option text of any item or demo
    #: (:func:`promptc.values.option_text`), which bounds a text answer in the shared grammar.
    option_chars: int = 0


@dataclass(frozen=True, slots=True)
class Literal_:
    """Literal text of an answer format, e.g. ``" The answer is "``."""

    text: str
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{field}`` of an answer format."""

    field: str
    location: Location = NOWHERE


Segment = Literal_ | Placeholder


@dataclass(frozen=True, slots=True)
class AnswerFormat:
    """A parsed ``answer_format``: literal text and placeholders, in order."""

    source: str
    segments: tuple[Segment, ...]
    location: Location = NOWHERE

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(s.field for s in self.segments if isinstance(s, Placeholder))


@dataclass(frozen=True, slots=True)
class Demo:
    """A solved example: input values (str) and normalised output values."""

    inputs: Mapping[str, str]
    outputs: Mapping[str, Value]
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Item:
    """One input of the dataset. ``index`` is its 0-based position in the data file.

    ``gold`` holds the item's known answers (``data.gold``), output name → normalised value;
    empty when the spec declares none. Nothing sent to a model reads it: only ``eval`` does.
    """

    id: str
    index: int
    inputs: Mapping[str, str]
    location: Location = NOWHERE
    gold: Mapping[str, Value] = field(default_factory=dict)
    #: The options of each ``options`` input, as listed in the data (``inputs`` shows them
    #: as ``(a) … (b) …``).
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataSource:
    """Where the items came from."""

    path: str  # as written in the spec, relative to the spec's folder
    resolved: str  # absolute path
    format: Literal["jsonl", "json", "csv"]
    fields: Mapping[str, str]  # input name -> column/key in the data file
    id: str | None  # id column, or a Jinja expression, or None for the 1-based row number
    sha256: str  # of the file as read; "" when compiled without digests (promptc check)
    location: Location = NOWHERE
    gold: Mapping[str, str] = field(default_factory=dict)  # output -> column or expression


@dataclass(frozen=True, slots=True)
class Selection:
    """How items are grouped into batches.

    ``model`` and ``cache_dir`` only matter to similarity methods; ``target_position`` only to
    ``retrieval`` (``-1`` puts the target item last).
    """

    method: SelectionMethod = "sequential"
    seed: int = 0
    target_position: int = -1
    model: str | None = None
    cache_dir: str | None = None
    location: Location = NOWHERE
    embeddings: EmbeddingEndpoint | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingEndpoint:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (``strategy.selection.embeddings``).

    ``api_key_env`` names the environment variable holding the key; the key itself is read
    only when embedding, and never stored in the IR, the cache or any file.
    """

    url: str
    model: str
    api_key_env: str | None = None
    texts_per_request: int = 64
    concurrency: int = 4
    max_retries: int = 5
    timeout: float = 120.0
    dimensions: int | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Vote:
    """The spec's ``strategy.vote``: every item asked in ``rounds`` rounds at different
    positions, its answers combined by majority; ``early_stop`` drops an item from later
    rounds once its last ``early_stop`` answers agree (``None``: never)."""

    rounds: int
    early_stop: int | None = None
    #: Where the spec sets ``rounds`` (a build too wide for them is an error there).
    location: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """The spec's ``strategy``: which strategy, how many items a request holds, how the
    items are grouped, and the voting rounds (``None``: one round; a one-item strategy
    ignores ``vote`` as it ignores ``batch_size``)."""

    kind: Strategy
    batch_size: int
    selection: Selection
    location: Location = NOWHERE
    vote: Vote | None = None

    @property
    def rounds(self) -> int:
        """Rounds every item is asked in: 1 without voting or for a one-item strategy."""
        return 1 if self.vote is None or self.kind.one_item else self.vote.rounds


@dataclass(frozen=True, slots=True)
class Price:
    """What a model costs, in US dollars per million tokens (``model.price``); ``cached_input``
    is the rate of input tokens served from the server's prompt cache (``None``: ``input``)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Model name and sampling parameters; ``params`` holds everything else, passed through.

    ``price`` is for ``plan`` and ``eval`` only: it is never part of a request.
    """

    name: str
    temperature: float | None = None
    max_tokens: int | None = None
    params: Mapping[str, object] = field(default_factory=dict)
    location: Location = NOWHERE
    price: Price | None = None
    provider: Literal["local", "openai"] | None = None  # where promptc run sends; not sent
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None  # not sent
    #: The output budget per item (``model.max_tokens_per_item``): each request is sent a
    #: ``max_tokens`` fitted to its items (:mod:`promptc.render.output_budget`); not sent.
    max_tokens_per_item: int | None = None

    def request_params(self, max_tokens: int | None = None) -> dict[str, object]:
        """The parameters as sent in a chat completion request, in a stable key order;
        ``max_tokens`` is a request's own budget, sent in place of the spec's."""
        out: dict[str, object] = {"model": self.name}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if max_tokens is None:
            max_tokens = self.max_tokens
        if max_tokens is not None:
            out["max_tokens"] = max_tokens
        for k in sorted(self.params):
            out[k] = self.params[k]
        return out


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The spec's ``run`` section: how ``promptc run`` sends the build."""

    repair_max_attempts: int = 2


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A strategy's template: a file of the spec's own, or one shipped with promptc."""

    kind: Strategy
    path: str | None  # absolute path of a spec's own template, None for the built-in one
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    sha256: str  # "" when compiled without digests (promptc check)


@dataclass(frozen=True, slots=True)
class Task:
    """The root of the IR: one compiled task spec."""

    name: str
    description: str
    instruction: str
    inputs: tuple[InputField, ...]
    outputs: tuple[OutputField, ...]
    answer_format: AnswerFormat
    demos: tuple[Demo, ...]
    data: DataSource | None
    items: Sequence[Item]  # a tuple, or an ItemTable reading a large data file back
    strategy: StrategySpec
    model: ModelConfig
    templates: tuple[TemplateRef, ...]
    spec: SourceFile
    spec_dir: str
    extends: tuple[SourceFile, ...] = ()  # the spec files inherited from, nearest first
    location: Location = NOWHERE
    markers: Markers = Markers()
    #: How the shipped templates send the demos: in the system message (``system``), or as
    #: solved turns, a user message and the assistant's answer per demo batch (``turns``).
    demos_as: DemosAs = "system"
    run: RunConfig = RunConfig()
    #: Read back from a build's ``task.json``, which keeps what parsing and scoring need, not
    #: the demos or the data: no prompt can be made from it again.
    from_build: bool = False

    def output(self, name: str) -> OutputField:
        """The output called ``name``; ``KeyError`` when there is none."""
        return {o.name: o for o in self.outputs}[name]

    def template_for(self, kind: Strategy) -> TemplateRef:
        """The spec's template for ``kind``, else the shipped one's reference."""
        return next((t for t in self.templates if t.kind == kind), TemplateRef(kind, None))


@dataclass(frozen=True, slots=True)
class Batch:
    """Items sent together in one request, in prompt order.

    ``target`` is the index (into ``item_ids``) of the item whose answer this batch is *for*
    (``retrieval`` builds one batch per item; the others' answers are demonstrations only), or
    ``None`` when every item's answer counts. ``similarities`` holds, per item, its cosine
    similarity to the batch's target or centroid, when a similarity method made the batch.
    """

    index: int
    item_ids: tuple[str, ...]
    item_indices: tuple[int, ...]
    target: int | None = None
    similarities: tuple[float, ...] | None = None
    #: The voting round the batch is asked in (``strategy.vote``), from 1; ``index`` is its
    #: place within the round.
    round: int = 1


#: A request of voting round k > 1 is the round's batch ``r0007`` asked again: ``r0007.v2``.
ROUND_MARK = ".v"
_ROUND = re.compile(re.escape(ROUND_MARK) + r"(\d+)(?=\.|$)")


def request_id(index: int, width: int, round_: int = 1) -> str:
    """The id of the request of batch ``index`` (0-based) of a round: ``r0007``, ``r0007.v2``."""
    base = f"r{index + 1:0{width}d}"
    return base if round_ == 1 else f"{base}{ROUND_MARK}{round_}"


def round_of(request_id: str) -> int:
    """The voting round of a request id, or of a request made from one (``r0007.v2.repair1``,
    ``r0007.v2.live``): 1 without a round mark."""
    m = _ROUND.search(request_id)
    return int(m.group(1)) if m else 1


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Request:
    """One rendered request: the chat messages for one batch."""

    id: str
    batch: Batch
    kind: Strategy
    messages: tuple[Message, ...]
    params: Mapping[str, object]
