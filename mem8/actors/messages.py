"""Every message actors exchange, defined once: msgpack maps with a type and a schema version."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

import msgpack

SCHEMA_VERSION = 1

_REGISTRY: dict[str, type[Message]] = {}
_FIELD_TYPES: dict[type[Message], dict[str, tuple[type, ...]]] = {}
M = TypeVar("M", bound="Message")


class MessageError(ValueError):
    """Bytes that do not decode to a valid message of this schema."""


class Message:
    """Base of all messages; subclasses are frozen dataclasses registered by their `type`."""

    type: ClassVar[str]

    def to_map(self) -> dict[str, Any]:
        """The message as a plain map, its type and schema version included."""
        body = {name: getattr(self, name) for name in _FIELD_TYPES[type(self)]}
        body["type"] = self.type
        body["v"] = SCHEMA_VERSION
        return body

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(self.to_map(), use_bin_type=True)
        return packed


@typing.dataclass_transform(frozen_default=True)
def message(name: str) -> typing.Callable[[type[M]], type[M]]:
    """Registers a dataclass as the message `name`."""

    def register(cls: type[M]) -> type[M]:
        cls.type = name
        data_cls = dataclass(frozen=True, slots=True)(cls)
        _REGISTRY[name] = data_cls
        hints = typing.get_type_hints(data_cls)
        _FIELD_TYPES[data_cls] = {
            f.name: _runtime_types(hints[f.name])
            for f in dataclasses.fields(typing.cast(Any, data_cls))
        }
        return data_cls

    return register


def _runtime_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if hint is float:
        return (float, int)
    if hint is None or hint is type(None):
        return (type(None),)
    return (origin or hint,)


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
    expected = _FIELD_TYPES[cls]
    if set(body) != set(expected):
        missing, extra = set(expected) - set(body), set(body) - set(expected)
        raise MessageError(f"{name}: missing fields {sorted(missing)}, unknown {sorted(extra)}")
    for key, value in body.items():
        if isinstance(value, bool) and bool not in expected[key]:
            raise MessageError(f"{name}.{key}: unexpected bool")
        if not isinstance(value, expected[key]):
            raise MessageError(
                f"{name}.{key}: expected {expected[key]}, got {type(value).__name__}"
            )
    return cls(**body)


# --- chat -----------------------------------------------------------------------------------


@message("chat")
class Chat(Message):
    """A chat completion request for one persona; answered by Token* then Done (or Failed)."""

    request_id: str
    persona: str
    tenant: str
    user: str
    arrival: float
    messages: list[dict[str, str]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    conversation: str = ""  # the rolling window's key within the caller's scope


@message("accepted")
class Accepted(Message):
    """The first reply to a Chat: how interesting the persona found it."""

    request_id: str
    interest: float
    conscious: bool


@message("token")
class Token(Message):
    request_id: str
    text: str


@message("done")
class Done(Message):
    request_id: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    backend: str


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
    associations: list[list[Any]]


@message("grid_export")
class GridExport(Message):
    """Asks for the field (every region's tile); answered by GridField."""

    request_id: str


@message("grid_field")
class GridField(Message):
    """The field, region by region (complex64 bytes, row-major), and the time of its last step.
    Sent to the grid it restores the field (answered by Ack)."""

    request_id: str
    current: list[bytes]
    previous: list[bytes]
    last_step: float | None


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
    hits: list[list[Any]]


@message("remember")
class Remember(Message):
    """Percepts to keep as memories of one scope, in order: each {text, source, modality,
    created}, and optionally its encoder `vector` (little-endian float32 bytes; the senses
    encode before sending, see actors.senses.encoded). Senses, simulations and benchmarks send
    these; answered by Remembered."""

    request_id: str
    tenant: str
    user: str
    persona: str
    percepts: list[dict[str, Any]]
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
    scope: list[str] | None = None  # tenant, user, persona: whose word counts it leaves
    text: str = ""
    context: str = ""
    created: float = 0.0  # with text and context, the memory's terms (dates included)


@message("grid_reinforce")
class GridReinforce(Message):
    """Records recalls: [memory id, recalls, tau] each (to a region also the centre x, y, so
    that every tile its excitation touches can take its share); answered by Ack."""

    request_id: str
    updates: list[list[Any]]
    now: float


@message("grid_supersede")
class GridSupersede(Message):
    """Knowledge updates: [memory id, superseded] each; a superseded memory weighs less in
    recall (mem8.grid.dynamics.SUPERSEDED_WEIGHT), one reinstated weighs as before. Answered
    by Ack."""

    request_id: str
    updates: list[list[Any]]


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
    chat: dict[str, Any]  # the Chat message's map
    conversation: str


@message("begun")
class Begun(Message):
    request_id: str
    emotion: list[float]  # valence, arousal, dominance of the last user message
    novelty: float  # 1 - the best resonance against the scope's memories
    recalled: list[dict[str, Any]]  # id, text, created, emotion, score: best first
    window: list[dict[str, str]]  # the conversation's last messages, oldest first


@message("commit")
class Commit(Message):
    """A request ends: remember the exchange if it was interesting, journal the outcome."""

    request_id: str
    persona: str
    tenant: str
    user: str
    conversation: str
    arrival: float
    exchange: list[dict[str, str]]  # the user's message and the answer (role, content)
    imprint: bool
    interest: float
    recalled: list[str]  # ids recalled for this request: reinforced when it is answered
    outcome: dict[str, Any]  # text, finish, error: see mem8.actors.persona.Outcome
    response_sha256: str
    answered_by: str  # the backend's name, or "subconscious"


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


@message("memory_forget")
class MemoryForget(Message):
    """Forgets one memory of the tenant; answered by Ack, or NotFound."""

    request_id: str
    tenant: str
    memory_id: str
    at: float


@message("recollect")
class Recollect(Message):
    """At start: index every stored memory again and bring back the field saved at the last
    clean stop (or rebuild it, after a crash, by imprinting them all). Answered by Ack."""

    request_id: str
    grid_size: int
    tiles: int


# --- senses and files -------------------------------------------------------------------------


@message("hear")
class Hear(Message):
    """Audio to transcribe (the hearing actor); answered by Heard, or Failed (400/413/503)."""

    request_id: str
    audio: bytes
    max_seconds: float
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False


@message("heard")
class Heard(Message):
    """A transcript: language, duration and segments (each with its words when asked)."""

    request_id: str
    transcript: dict[str, Any]


@message("read")
class Read(Message):
    """A document or image to read (the reading actor), in a child process with limits;
    answered by ReadOut."""

    request_id: str
    data: bytes
    filename: str


@message("read_out")
class ReadOut(Message):
    """What was read: chunks {text, where, modality}; or the error that stopped it (missing:
    a package or program is not installed, not a fault of the file)."""

    request_id: str
    kind: str
    pages: int
    chunks: list[dict[str, Any]]
    error: str | None = None
    missing: bool = False


@message("file_keep")
class FileKeep(Message):
    """An uploaded file (its stored record and bytes) and the percepts read from it, kept as
    memories tied to it; answered by Remembered. Percepts as in Remember."""

    request_id: str
    file: dict[str, Any]
    content: bytes
    percepts: list[dict[str, Any]]
    importance: float


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
    clean stop, if any; answered by Ack."""

    request_id: str
