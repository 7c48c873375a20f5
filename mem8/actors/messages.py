"""Every message actors exchange, defined once: msgpack maps with a type and a schema version.

What a message carries beyond plain values are typed records: a `Part` (a frozen dataclass)
travels as a map of its fields in order, a NamedTuple as an array of them. Both encode to the
maps and arrays the untyped payloads were, so journals written before them still replay."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar, Union

import msgpack

from mem8 import errors, passages
from mem8.memory import Modality
from mem8.scope import Scope

SCHEMA_VERSION = 1

_REGISTRY: dict[str, type[Message]] = {}
M = TypeVar("M", bound="Message")
P = TypeVar("P", bound="Part")
Encode = Callable[[Any], Any]
Decode = Callable[[Any, str], Any]  # a value read and where it was (for the error)


class MessageError(ValueError):
    """Bytes that do not decode to a valid message of this schema."""


@dataclass(frozen=True, slots=True)
class _Field:
    """How one field of a message or part travels: the plain types it may hold, and for
    typed records the conversions to and from plain msgpack data (None: it is plain data)."""

    name: str
    kinds: tuple[type, ...]
    encode: Encode | None
    decode: Decode | None


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields_of(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    described = []
    for f in dataclasses.fields(typing.cast(Any, cls)):
        encode, decode = _codec(hints[f.name])
        described.append(_Field(f.name, _runtime_types(hints[f.name]), encode, decode))
    return tuple(described)


def _to_plain(cls: type, value: Any) -> dict[str, Any]:
    body = {}
    for f in _FIELDS[cls]:
        item = getattr(value, f.name)
        body[f.name] = item if f.encode is None else f.encode(item)
    return body


def _from_plain(cls: type, body: dict[str, Any], where: str) -> dict[str, Any]:
    """The constructor's arguments from a map of exactly cls's fields, checked."""
    fields = _FIELDS[cls]
    if len(body) != len(fields) or any(f.name not in body for f in fields):
        names = {f.name for f in fields}
        missing, extra = names - set(body), set(body) - names
        raise MessageError(f"{where}: missing fields {sorted(missing)}, unknown {sorted(extra)}")
    return {f.name: _checked(f, body[f.name], f"{where}.{f.name}") for f in fields}


def _checked(f: _Field, value: Any, where: str) -> Any:
    if f.decode is not None:
        return f.decode(value, where)
    if isinstance(value, bool) and bool not in f.kinds:
        raise MessageError(f"{where}: unexpected bool")
    if not isinstance(value, f.kinds):
        raise MessageError(f"{where}: expected {f.kinds}, got {type(value).__name__}")
    return value


class Message:
    """Base of all messages; subclasses are frozen dataclasses registered by their `type`."""

    type: ClassVar[str]
    # Fields left out of the map while None, so messages journaled before they existed replay.
    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    def to_map(self) -> dict[str, Any]:
        """The message as a plain map (its parts as plain maps and arrays), its type and
        schema version included."""
        body = _to_plain(type(self), self)
        for name in self.omitted_when_none:
            if body[name] is None:
                del body[name]
        body["type"] = self.type
        body["v"] = SCHEMA_VERSION
        return body

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(self.to_map(), use_bin_type=True)
        return packed


class Part:
    """Base of the typed records messages carry: frozen dataclasses that travel as a map of
    their fields in order. A field listed in `omitted_when_none` is left out of the map while
    it is None (as the untyped maps left it out)."""

    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    def to_map(self) -> dict[str, Any]:
        body = _to_plain(type(self), self)
        for name in self.omitted_when_none:
            if body[name] is None:
                del body[name]
        return body

    @classmethod
    def from_map(cls: type[P], body: Any, where: str = "") -> P:
        """The part a plain map describes; raises MessageError if it does not fit."""
        where = where or cls.__name__
        if not isinstance(body, dict):
            raise MessageError(f"{where}: expected a map, got {type(body).__name__}")
        if cls.omitted_when_none:
            body = {**dict.fromkeys(cls.omitted_when_none), **body}
        return cls(**_from_plain(cls, body, where))


@typing.dataclass_transform(frozen_default=True)
def message(name: str) -> typing.Callable[[type[M]], type[M]]:
    """Registers a dataclass as the message `name`."""

    def register(cls: type[M]) -> type[M]:
        cls.type = name
        data_cls = dataclass(frozen=True, slots=True)(cls)
        _REGISTRY[name] = data_cls
        _FIELDS[data_cls] = _fields_of(data_cls)
        return data_cls

    return register


@typing.dataclass_transform(frozen_default=True)
def part(cls: type[P]) -> type[P]:
    """Makes a class a Part: a frozen dataclass that messages carry as a map."""
    data_cls = dataclass(frozen=True, slots=True)(cls)
    _FIELDS[data_cls] = _fields_of(data_cls)
    return data_cls


def _runtime_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if origin is Literal:
        return tuple({type(arg) for arg in typing.get_args(hint)})
    if hint is float:
        return (float, int)
    if hint is None or hint is type(None):
        return (type(None),)
    return (origin or hint,)


def _codec(hint: Any) -> tuple[Encode | None, Decode | None]:
    """How a value of this type becomes plain msgpack data and back; None where it is plain
    data already (a NamedTuple packs as an array as it is: only its reading needs a step)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        encode, decode = _codec(kinds[0]) if len(kinds) == 1 else (None, None)
        if decode is None:
            return None, None
        return _or_none(encode), _or_none_decoded(decode)
    if origin is list:
        encode, decode = _codec(args[0])
        if decode is None:
            return None, None
        return (None if encode is None else _each(encode)), _each_decoded(decode)
    if isinstance(hint, type) and issubclass(hint, Part):
        return _part_to_map, hint.from_map
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return None, _row_decoder(hint)
    if isinstance(hint, type) and issubclass(hint, Message):
        return _message_to_map, _message_decoder(hint)
    if hint is Scope:  # travels as [tenant, user, persona]
        return _scope_row, _scope_from_row
    return None, None


def _scope_row(scope: Scope) -> list[str]:
    return [scope.tenant, scope.user, scope.persona]


def _scope_from_row(value: Any, where: str) -> Scope:
    if not (isinstance(value, list | tuple) and len(value) == 3):
        raise MessageError(f"{where}: expected [tenant, user, persona]")
    if not all(isinstance(item, str) for item in value):
        raise MessageError(f"{where}: a scope's tenant, user and persona are strings")
    return Scope(*value)


def _part_to_map(value: Part) -> dict[str, Any]:
    return value.to_map()


def _message_to_map(value: Message) -> dict[str, Any]:
    return value.to_map()


def _or_none(encode: Encode | None) -> Encode | None:
    if encode is None:
        return None
    return lambda value: None if value is None else encode(value)


def _or_none_decoded(decode: Decode) -> Decode:
    return lambda value, where: None if value is None else decode(value, where)


def _each(encode: Encode) -> Encode:
    return lambda values: [encode(value) for value in values]


def _each_decoded(decode: Decode) -> Decode:
    def decoded(values: Any, where: str) -> list[Any]:
        if not isinstance(values, list | tuple):
            raise MessageError(f"{where}: expected a list, got {type(values).__name__}")
        return [decode(value, f"{where}[{i}]") for i, value in enumerate(values)]

    return decoded


def _row_decoder(cls: type) -> Decode:
    """Reads a NamedTuple from the array it travels as, its items checked by their types."""
    hints = typing.get_type_hints(cls)
    names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    fields = [_Field(n, _runtime_types(hints[n]), *_codec(hints[n])) for n in names]

    def decoded(value: Any, where: str) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(fields):
            raise MessageError(f"{where}: expected an array of {len(fields)} ({cls.__name__})")
        return cls(
            *(_checked(f, v, f"{where}.{f.name}") for f, v in zip(fields, value, strict=True))
        )

    return decoded


def _message_decoder(cls: type[Message]) -> Decode:
    def decoded(value: Any, where: str) -> Message:
        inner = from_map(value)
        if not isinstance(inner, cls):
            raise MessageError(f"{where}: expected a {cls.type} message, got {inner.type}")
        return inner

    return decoded


def decode(raw: bytes) -> Message:
    """Decodes and validates one message; raises MessageError on anything unexpected."""
    try:
        body = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise MessageError(f"not a msgpack message: {error}") from error
    return from_map(body)


def from_map(body: Any) -> Message:
    if not isinstance(body, dict):
        raise MessageError("a message must be a map")
    body = dict(body)
    name, version = body.pop("type", None), body.pop("v", None)
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise MessageError(f"unknown message type {name!r}")
    if version != SCHEMA_VERSION:
        raise MessageError(f"{name}: schema version {version!r}, expected {SCHEMA_VERSION}")
    if cls.omitted_when_none:
        body = {**dict.fromkeys(cls.omitted_when_none), **body}
    return cls(**_from_plain(cls, body, name))


# --- the typed records messages carry -------------------------------------------------------


@part
class Turn(Part):
    """One message of a conversation: who said it (system, user, assistant, tool) and what; an
    assistant's tool calls (a JSON array in OpenAI's shape: data the actors pass on, never
    read), a tool's answer to which call of which function."""

    role: str
    content: str
    tool_calls: str | None = None
    tool_call_id: str | None = None
    name: str | None = None

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"tool_calls", "tool_call_id", "name"})


def last_user_text(turns: list[Turn]) -> str:
    """What the user said last in a conversation ("" if nothing)."""
    for turn in reversed(turns):
        if turn.role == "user":
            return turn.content
    return ""


@part
class Percept(Part):
    """Something perceived, to keep as a memory: its text, where it came from (e.g.
    "audio:<id>:<file>:segment:3"), its modality and when; with its encoder vector
    (little-endian float32 bytes) when the sender encoded it (see actors.percepts.encoded)."""

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"vector"})

    text: str
    source: str
    modality: Modality
    created: float
    vector: bytes | None = None

    def passages(self) -> list[Percept]:
        """This percept, one per passage (in order) if its text is long; none if it has no text."""
        return [dataclasses.replace(self, text=passage) for passage in passages.passages(self.text)]


@part
class RecalledMemory(Part):
    """A memory recalled for a request, as Begun carries it: a long one (kept whole before
    memories were passages) by its passage most relevant to the query (`excerpt`)."""

    id: str
    text: str
    excerpt: bool
    created: float
    emotion: list[float]  # valence, arousal, dominance
    source: str
    superseded_by: str
    score: float
    resonance: float  # the cosine of its vector with the query's


@part
class Chunk(Part):
    """A piece of what a document or image said, and where in it ("page 3", "sheet Greetings",
    "visual", or ""); modality "document", or "image" for OCR text and visual descriptions."""

    text: str
    where: str
    modality: Modality


class Finished(NamedTuple):
    """How an answered request finished, as the journal keeps it."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class ErrorReport(NamedTuple):
    """A domain error by its class name (mem8.errors.rebuild brings it back) and message."""

    name: str
    message: str


@part
class Outcome(Part):
    """How one request ended, as the commit and the journal record it: the text pieces the
    backend gave and how it finished, or the error that ended it; and the tools it called, a
    JSON array in OpenAI's tool_calls shape (None when it called none)."""

    text: list[str]
    finish: Finished | None
    error: ErrorReport | None
    calls: str | None = None

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"calls"})

    @classmethod
    def of(
        cls,
        text: list[str],
        finish: Finished | None,
        error: errors.Mem8Error | None,
        calls: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        """The record of an answer: its text pieces and calls, and how it finished or the
        error."""
        report = None if error is None else ErrorReport(type(error).__name__, error.message)
        return cls(list(text), finish, report, json.dumps(calls) if calls else None)

    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls the answer made, in OpenAI's tool_calls shape."""
        return (
            [] if self.calls is None else typing.cast(list[dict[str, Any]], json.loads(self.calls))
        )

    def digest(self) -> str:
        """Identifies the response the client got; replay compares these."""
        if self.error is not None:
            summary: list[Any] = ["error", self.error.name, self.error.message]
        else:
            assert self.finish is not None
            summary = ["ok", "".join(self.text), *self.finish]
            if self.calls is not None:
                summary.append(self.calls)
        return hashlib.sha256(msgpack.packb(summary, use_bin_type=True)).hexdigest()


@part
class Idempotency(Part):
    """A request's `Idempotency-Key` within its tenant, and the hash of the body it came with:
    a retry with the same key gets the first answer instead of being answered (and kept) again."""

    key: str
    request_sha256: str


@part
class Keep(Part):
    """A request to keep once answered (`store: true`): a chat completion or a response, its
    id, the caller's metadata and the request as the routes show it back (JSON)."""

    kind: str  # "chat.completion" or "response"
    id: str
    metadata: dict[str, str]
    request: str


class Hit(NamedTuple):
    """A recalled memory's id and its score."""

    memory_id: str
    score: float


class Reinforcement(NamedTuple):
    """A recalled memory's new recall count and decay constant."""

    memory_id: str
    recalls: int
    tau: float


class Excitation(NamedTuple):
    """A reinforcement as a region takes it: with the memory's centre, so that every tile its
    packet touches is excited."""

    memory_id: str
    recalls: int
    tau: float
    x: float
    y: float


class Association(NamedTuple):
    """Two memories that belong together (bound in time, or overlapping in place and phase)."""

    a: str
    b: str
    strength: float


class Supersession(NamedTuple):
    """A knowledge update: the memory is now superseded (or, False, reinstated)."""

    memory_id: str
    superseded: bool


# --- chat -----------------------------------------------------------------------------------


@part
class AnswerShape(Part):
    """What a chat asks of its answer beyond text. Tools and the response format travel as
    JSON text: schemas the actors pass to the backend and never read (and a JSON number may
    be larger than msgpack takes)."""

    tools: str = "[]"  # [{"name", "description", "parameters"}]
    tool_choice: str = "auto"  # auto, none, required, or the one function's name
    parallel_tool_calls: bool = True
    legacy_functions: bool = False  # asked with `functions`: answered as a `function_call`
    response_format: str | None = None  # {"kind", "schema", "name", "strict"}
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1  # samples; only the first is remembered


@message("chat")
class Chat(Message):
    """A chat completion request for one persona; answered by Token* then Done (or Failed)."""

    request_id: str
    persona: str
    tenant: str
    user: str
    arrival: float
    messages: list[Turn]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    conversation: str = ""  # the rolling window's key within the caller's scope
    idempotency: Idempotency | None = None
    keep: Keep | None = None  # kept with its answer, for the stored completions' routes
    shape: AnswerShape | None = None  # None: plain text, one answer

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"idempotency", "keep", "shape"})


@message("accepted")
class Accepted(Message):
    """The first reply to a Chat: how interesting the persona found it, what it felt in the
    message and what it recalled for it (a simulation's transcript shows them)."""

    request_id: str
    interest: float
    conscious: bool
    emotion: list[float] = field(default_factory=list)  # valence, arousal, dominance
    recalled: list[Hit] = field(default_factory=list)  # best first


@message("token")
class Token(Message):
    request_id: str
    text: str
    index: int = 0  # which of the n answers
    logprobs: str | None = None  # JSON: OpenAI's logprobs.content items for this text


@message("tool_called")
class ToolCalled(Message):
    """The answer (number `index`) calls tools: a JSON array in OpenAI's tool_calls shape."""

    request_id: str
    calls: str
    index: int = 0


@message("done")
class Done(Message):
    request_id: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    backend: str
    finish_reasons: list[str] = field(default_factory=list)  # each answer's, when n > 1


@message("failed")
class Failed(Message):
    """An ask could not be served; `error` names a class of mem8.errors."""

    request_id: str
    error: str
    message: str
    param: str | None = None


# --- state ----------------------------------------------------------------------------------


@message("state_digest")
class StateDigest(Message):
    """Asks an actor for the hash of its state; answered by a Digest."""

    request_id: str


@message("digest")
class Digest(Message):
    request_id: str
    owner: str
    sha256: str


@message("snapshot")
class Snapshot(Message):
    """Asks an actor for its full state; answered by a SnapshotState. For the journal
    (`for_journal`) the memory actor also copies the store and the field beside it."""

    request_id: str
    for_journal: bool = True
    store_name: str = ""  # the name of the store's copy beside the journal (else by commit seq)


@message("snapshot_state")
class SnapshotState(Message):
    request_id: str
    owner: str
    state: dict[str, Any]


@message("restore")
class Restore(Message):
    """Replaces an actor's state with a snapshot's (replay starts from one)."""

    request_id: str
    state: dict[str, Any]


@message("ack")
class Ack(Message):
    request_id: str


# --- journal --------------------------------------------------------------------------------


@message("journal_append")
class JournalAppend(Message):
    """Appends one record to the journal (tell, no answer)."""

    kind: str
    at: float
    body: dict[str, Any]


@message("journal_start")
class JournalStart(Message):
    """Opens a run of the server with a snapshot of the state it starts from; answered by Ack."""

    request_id: str


@message("journal_close")
class JournalClose(Message):
    """Writes the final state digests and a close record; answered by Ack."""

    request_id: str
    digests: dict[str, str]


# --- grid -----------------------------------------------------------------------------------


@message("grid_imprint")
class GridImprint(Message):
    """Imprints memories (wire maps, see mem8.memory.memory_to_wire); answered by Ack.
    With `wave` false they are only indexed: their waves are already in a restored field.
    The grid adds each map's `terms` (mem8.grid.lexical.memory_terms) and `handle` (its
    number for the memory, which recalls name it by) for its regions."""

    request_id: str
    memories: list[dict[str, Any]]
    now: float
    wave: bool = True


@message("grid_imprinted")
class GridImprinted(Message):
    """The grid's answer to an imprint: the associations it found, [memory a, memory b,
    strength], between new memories and those they overlap in place and phase."""

    request_id: str
    associations: list[Association]


@message("grid_export")
class GridExport(Message):
    """Asks for the field (every region's tile); answered by GridField."""

    request_id: str


@message("grid_picture")
class GridPicture(Message):
    """Asks for a picture of the live field: |field| as a heatmap PNG with every memory's centre
    marked, as `mem8 grid png` draws a stopped server's (each cell `scale` pixels square).
    Answered by Picture."""

    request_id: str
    scale: int


@message("picture")
class Picture(Message):
    request_id: str
    png: bytes
    memories: int  # centres marked


@message("grid_field")
class GridField(Message):
    """The field, region by region (complex64 bytes, row-major), and the time of its last step.
    Sent to the grid it restores the field (answered by Ack)."""

    request_id: str
    current: list[bytes]
    previous: list[bytes]
    last_step: float | None


@message("grid_reset")
class GridReset(Message):
    """Empties the grid: every region's memories and field, and the router's maps, before the
    memory actor imprints the store again (Regrid). Answered by Ack."""

    request_id: str


@message("grid_recall")
class GridRecall(Message):
    """Finds the k most resonant memories of a scope; None filters match any user/persona."""

    request_id: str
    query: bytes  # little-endian float32 unit vector
    tenant: str
    user: str | None
    persona: str | None
    k: int
    now: float
    sketch: bytes = b""  # the query's binary sketch, computed once by the grid for its regions
    text: str = ""  # the query's words, matched exactly (mem8.grid.lexical)
    lexical: dict[str, Any] | None = None  # their weights, computed once by the grid
    candidates: int = 0  # how many each region rescores exactly (0: index.candidates_for(k))


@message("grid_candidates")
class GridCandidates(Message):
    """A region's share of a recall: its best candidates by handle (little-endian int64: the
    numbers the grid gave the memories at imprint), with their estimates and exact scores as
    little-endian float32 arrays parallel to them."""

    request_id: str
    handles: bytes
    estimates: bytes
    scores: bytes


@message("grid_score")
class GridScore(Message):
    """The exact scores of given memories for a recall's query (the weights as GridRecall's):
    the chain neighbours of its candidates that their regions did not send."""

    request_id: str
    query: bytes  # little-endian float32 unit vector
    ids: list[str]
    now: float
    lexical: dict[str, Any]


@message("grid_scored")
class GridScored(Message):
    """The exact scores of the memories asked for that the region holds, as little-endian
    float32 parallel to `ids`."""

    request_id: str
    ids: list[str]
    scores: bytes


@message("grid_recalled")
class GridRecalled(Message):
    """The recall: [memory id, score], best first."""

    request_id: str
    hits: list[Hit]


@message("remember")
class Remember(Message):
    """Percepts to keep as memories of one scope, in order: each {text, source, modality,
    created}, and optionally its encoder `vector` (little-endian float32 bytes; the senses
    encode before sending, see actors.percepts.encoded). Senses, simulations and benchmarks send
    these; answered by Remembered."""

    request_id: str
    tenant: str
    user: str
    persona: str
    percepts: list[Percept]
    importance: float


@message("remembered")
class Remembered(Message):
    """The ids of the memories kept (a percept below the noise floor is not)."""

    request_id: str
    ids: list[str]


@message("grid_forget")
class GridForget(Message):
    """Removes a memory's entry (its imprint fades with the field); answered by Ack."""

    request_id: str
    memory_id: str
    scope: Scope | None = None  # whose word counts it leaves
    text: str = ""
    context: str = ""
    created: float = 0.0  # with text and context, the memory's terms (dates included)


@message("grid_reinforce")
class GridReinforce(Message):
    """Records recalls (to the grid actor); answered by Ack."""

    request_id: str
    updates: list[Reinforcement]
    now: float


@message("grid_excite")
class GridExcite(Message):
    """Records recalls in a region, which excites each memory's neighbourhood; answered by
    Ack."""

    request_id: str
    updates: list[Excitation]
    now: float


@message("grid_supersede")
class GridSupersede(Message):
    """Knowledge updates: [memory id, superseded] each; a superseded memory weighs less in
    recall (mem8.grid.dynamics.SUPERSEDED_WEIGHT), one reinstated weighs as before. Answered
    by Ack."""

    request_id: str
    updates: list[Supersession]


@message("grid_edges")
class GridEdges(Message):
    """Asks a region for its border rows and columns; answered by Edges."""

    request_id: str


@message("edges")
class Edges(Message):
    request_id: str
    top: bytes
    bottom: bytes
    left: bytes
    right: bytes


@message("grid_step")
class GridStep(Message):
    """Advances a region's field one step with its neighbours' edges as halo; answered by Ack."""

    request_id: str
    top: bytes  # the row above this tile (zeros at the grid's border), complex64
    bottom: bytes
    left: bytes
    right: bytes
    decay: float


# --- memory (the sequencer of everything that reads or changes memory) ---------------------


@message("begin")
class Begin(Message):
    """A request starts: perceive it, recall for it, hand back the conversation's window."""

    request_id: str
    chat: Chat
    conversation: str
    vector: bytes | None = None  # the last user message's encoder vector (little-endian float32)

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"vector"})


@message("begun")
class Begun(Message):
    """The request has begun; or, with `vector_wanted`, it has not: its scope holds memories
    to recall, so the sender encodes the query and sends Begin again with the vector (the
    memory actor, which every chat waits on, never encodes)."""

    request_id: str
    emotion: list[float]  # valence, arousal, dominance of the last user message
    novelty: float  # 1 - the best resonance against the scope's memories
    recalled: list[RecalledMemory]  # best first
    window: list[Turn]  # the conversation's last messages, oldest first
    vector_wanted: bool = False


@message("commit")
class Commit(Message):
    """A request ends: remember the exchange if it was interesting, journal the outcome."""

    request_id: str
    persona: str
    tenant: str
    user: str
    conversation: str
    arrival: float
    exchange: list[Turn]  # the user's message and the answer
    imprint: bool
    interest: float
    recalled: list[str]  # ids recalled for this request: reinforced when it is answered
    outcome: Outcome
    response_sha256: str
    answered_by: str  # the backend's name, or "subconscious"
    # The exchange cut into passages and encoded by the sender, so the memory actor (which
    # every chat waits on) only stores and imprints; empty unless it is to be imprinted.
    passages: list[Percept] = field(default_factory=list)
    idempotency: Idempotency | None = None
    keep: Keep | None = None  # the request, stored with its answer if it is answered


@message("idempotent_find")
class IdempotentFind(Message):
    """Asks what a request with this Idempotency-Key was answered, if one was recently;
    answered by IdempotentFound."""

    request_id: str
    tenant: str
    key: str
    now: float


@message("idempotent_found")
class IdempotentFound(Message):
    """The kept answer (msgpack) and the hash of the body it answered; empty when none is."""

    request_id: str
    request_sha256: str
    answer: bytes


@message("memory_query")
class MemoryQuery(Message):
    """Lists a tenant's memories (None filters match all), oldest first after the cursor;
    or, with `memory_id`, fetches that one. Answered by MemoryPage."""

    request_id: str
    tenant: str
    user: str | None = None
    persona: str | None = None
    modality: str | None = None
    limit: int = 20
    after: str | None = None
    memory_id: str | None = None


@message("memory_search")
class MemorySearch(Message):
    """The memories that resonate most with a text, within the caller's scope; MemoryPage."""

    request_id: str
    tenant: str
    query: str
    user: str | None = None
    persona: str | None = None
    limit: int = 10
    now: float = 0.0


@message("memory_page")
class MemoryPage(Message):
    request_id: str
    memories: list[dict[str, Any]]  # wire maps without vectors; search adds "score"
    has_more: bool


@message("stored_ask")
class StoredAsk(Message):
    """One of a tenant's stored chat completions or responses (`id`), or a page of them
    (filtered by model and metadata); answered by StoredPage, or NotFound."""

    request_id: str
    tenant: str
    kind: str
    id: str | None = None
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    limit: int = 20
    after: str | None = None
    descending: bool = False


@message("stored_page")
class StoredPage(Message):
    request_id: str
    stored: list[dict[str, Any]]  # storage.stored.StoredExchange.to_wire() maps
    has_more: bool


@message("stored_change")
class StoredChange(Message):
    """A stored chat completion's or response's metadata set anew, or (`forget`) the whole
    of it deleted; answered by StoredPage (the changed one; none once deleted), or NotFound.
    Journaled, so a replayed store keeps the same."""

    request_id: str
    tenant: str
    kind: str
    id: str
    at: float
    metadata: dict[str, str] = field(default_factory=dict)
    forget: bool = False


@message("memory_forget")
class MemoryForget(Message):
    """Forgets one memory of the tenant; answered by Ack, or NotFound."""

    request_id: str
    tenant: str
    memory_id: str
    at: float


@message("regrid")
class Regrid(Message):
    """To the memory actor when a grid actor (the router or a region) was restarted and came
    back empty: empty the grid and imprint every stored memory again, the field rebuilt from
    them as at a start after a crash. Told by the restart hook; answered by Ack when asked."""

    request_id: str


@message("recollect")
class Recollect(Message):
    """At start: index every stored memory again and bring back the field saved at the last
    clean stop (or rebuild it, after a crash, by imprinting them all). Answered by Ack."""

    request_id: str
    grid_size: int
    tiles: int


# --- senses and files -------------------------------------------------------------------------


@message("heard")
class Heard(Message):
    """A transcript: language, duration and segments (each with its words when asked)."""

    request_id: str
    transcript: dict[str, Any]


@message("read_out")
class ReadOut(Message):
    """What the reading actor read of an upload, in chunks; or the error that stopped it (missing:
    a package or program is not installed, not a fault of the file)."""

    request_id: str
    kind: str
    pages: int
    chunks: list[Chunk]
    error: str | None = None
    missing: bool = False


@message("file_keep")
class FileKeep(Message):
    """An uploaded file (its stored record and bytes) and the percepts read from it, kept as
    memories tied to it; answered by Remembered. Percepts as in Remember."""

    request_id: str
    file: dict[str, Any]
    content: bytes
    percepts: list[Percept]
    importance: float


@message("persona_change")
class PersonaChange(Message):
    """A persona's profile set anew while it runs (a simulation's intervention: traits,
    threshold, temperature); answered by Ack."""

    request_id: str
    persona: dict[str, Any]  # Persona.to_wire()


@message("memory_count")
class MemoryCount(Message):
    """How many memories a scope holds (None filters match all); answered by Counted."""

    request_id: str
    tenant: str
    user: str | None = None
    persona: str | None = None


@message("counted")
class Counted(Message):
    request_id: str
    count: int


@message("memory_tenants")
class MemoryTenants(Message):
    """Every tenant that holds memories, with how many; answered by Tenanted."""

    request_id: str


@message("tenanted")
class Tenanted(Message):
    request_id: str
    memories: dict[str, int]  # tenant -> memories


@message("file_read")
class FileRead(Message):
    """A batch of percepts read from a stored file, kept as memories tied to it, and the
    file's status and details after it (how far its reading has come); answered by
    Remembered. A file deleted meanwhile is NotFound, which ends its reading."""

    request_id: str
    file_id: str
    tenant: str
    percepts: list[Percept]
    importance: float
    status: str  # "uploaded" while reading goes on, then "processed" (or "error")
    details: str | None


@message("file_reread")
class FileReread(Message):
    """A file whose reading a restart cut short: the memories read from it so far are
    forgotten, so that it can be read again from the start; answered by Ack."""

    request_id: str
    file_id: str
    tenant: str


@message("files_unread")
class FilesUnread(Message):
    """The files of every tenant still being read into memory (status "uploaded"): those a
    restart cut short; answered by FilePage."""

    request_id: str


@message("read_again")
class ReadAgain(Message):
    """The reading actor reads again, from the start, the files a restart cut short (a server
    asks at start, once it has recovered its state); answered by Ack."""

    request_id: str


@message("file_ask")
class FileAsk(Message):
    """One of a tenant's files (file_id), its bytes (with content), or a page of its files;
    answered by FilePage."""

    request_id: str
    tenant: str
    file_id: str | None = None
    content: bool = False
    purpose: str | None = None
    limit: int = 10000
    after: str | None = None
    descending: bool = True


@message("file_page")
class FilePage(Message):
    request_id: str
    files: list[dict[str, Any]]
    has_more: bool
    content: bytes | None = None


@message("file_forget")
class FileForget(Message):
    """Deletes a tenant's file and forgets every memory read from it; answered by Ack, or
    NotFound."""

    request_id: str
    tenant: str
    file_id: str
    at: float


# --- flows that start at an actor: a route, a simulation or the CLI sends one message -------


@message("listen")
class Listen(Message):
    """A recording heard in a scope (the hearing actor): transcribed, and each segment kept as
    a memory dated when it was heard; answered by Heard (or Failed: 400/413/503)."""

    request_id: str
    audio: bytes
    filename: str
    tenant: str
    user: str
    persona: str
    max_seconds: float
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False


@message("upload")
class Upload(Message):
    """A file handed in at `at` (the reading actor): stored, and if its purpose is knowledge,
    read and kept as memories tied to it; answered by FilePage with its stored record."""

    request_id: str
    tenant: str
    user: str
    persona: str  # "" for every persona of the scope
    filename: str
    purpose: str
    content: bytes
    at: float


@message("embed")
class Embed(Message):
    """Texts to turn into waves of `dimensions` samples (the encoding actor), each counted in
    the encoder's tokens and refused over the limits before any is encoded; Embedded."""

    request_id: str
    texts: list[str]
    dimensions: int
    max_input_tokens: int
    max_request_tokens: int


@message("embedded")
class Embedded(Message):
    """The waves, one row per text (little-endian float32, row-major), and their tokens."""

    request_id: str
    waves: bytes
    tokens: int


@message("persist")
class Persist(Message):
    """At a clean stop: the memory actor saves the field (of a grid this size and tiling) and
    its own state (tallies, windows, the commit count) in the store, so a restart continues
    exactly; answered by Ack."""

    request_id: str
    grid_size: int
    tiles: int


@message("resume")
class Resume(Message):
    """At start, after Recollect: the memory actor takes back the state it saved at the last
    clean stop, if any; with `clear`, it then drops the saved field and state, so that a crash
    later in this run is recovered from the memories, not from a stop long past. Answered by
    Ack."""

    request_id: str
    clear: bool = False
