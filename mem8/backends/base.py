"""The LLM backend contract: one abstract method, `generate`, streaming text (or tool calls)
then a Finish."""

from __future__ import annotations

import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from mem8.config import Settings


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model calls: its call id, the function's name and its JSON arguments."""

    id: str
    name: str
    arguments: str  # a JSON object, as OpenAI sends it: text


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the caller offers: its name, what it does, its parameters' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: "json_object" (any object) or "json_schema" (this schema)."""

    kind: str
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = False


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's log probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # system, user, assistant or tool
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn's calls
    tool_call_id: str = ""  # a tool turn's answer to this call
    name: str = ""  # a tool turn's function


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    model: str  # the backend's model name, e.g. "llama2:latest"
    messages: tuple[ChatMessage, ...]
    temperature: float
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    request_id: str = ""  # which request this serves: replay looks recorded outputs up by it
    context: int | None = None  # the context (tokens) the prompt was fitted to
    tools: tuple[Tool, ...] = ()
    # "auto", "none", "required", or the name of the one function to call
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def offered(self) -> tuple[Tool, ...]:
        """The tools the model may call: none under "none", only the named one if named."""
        if self.tool_choice == "none":
            return ()
        if self.tool_choice in ("auto", "required"):
            return self.tools
        return tuple(t for t in self.tools if t.name == self.tool_choice)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()  # when asked for and the backend gives them


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """The model's answer is these calls (then a Finish with reason "tool_calls")."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class Finish:
    """The last item of a generation: why it stopped and what it cost in tokens."""

    finish_reason: str  # "stop", "length" or "tool_calls"
    prompt_tokens: int
    completion_tokens: int


Generated = TextDelta | ToolCalls | Finish
# What a backend assumes of a model's context when neither it nor the persona says more.
DEFAULT_CONTEXT = 4096


class TokenCounter(Protocol):
    """How many tokens text and prompts take as a backend's model reads them."""

    def text(self, text: str) -> int:
        """Tokens of a piece of text inside a message."""

    def prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of a whole prompt: the messages in the model's chat template."""


class EstimatedTokens:
    """A count for backends that cannot tokenize here: one token per 3 bytes of UTF-8 (English
    prose and code average about 4, so this errs long), and a few per message for the chat
    template's markers."""

    BYTES_PER_TOKEN = 3
    PER_MESSAGE = 6
    PER_PROMPT = 4

    def text(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8", "surrogatepass")) / self.BYTES_PER_TOKEN)

    def prompt(self, messages: Sequence[ChatMessage]) -> int:
        return self.PER_PROMPT + sum(self.text(m.content) + self.PER_MESSAGE for m in messages)


ESTIMATED = EstimatedTokens()


class LLMBackend(ABC):
    """Generates chat completions. Raises mem8.errors.BackendUnavailable / BackendFailed."""

    name: ClassVar[str]
    needs_key: ClassVar[bool] = False
    can_logprobs: bool = False  # whether it gives tokens' log probabilities
    logprobs_hint: ClassVar[str] = ""  # how to have them where it can
    # whether a copy of it serves as well in another process (a persona in a Ray worker); one
    # that cannot (a model loaded here, a replay's recorded outputs) keeps its persona here
    travels: ClassVar[bool] = False

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        """Yields TextDelta items as they come (or one ToolCalls), then exactly one Finish.

        Closing the iterator early (the client went away) must stop the generation."""

    async def start(self) -> None:  # noqa: B027 - most backends have nothing to prepare
        """Prepares the backend before the server answers (the embedded one loads its model)."""

    async def has_model(self, model: str) -> bool:
        """Whether this backend can serve `model` right now (used by the auto choice)."""
        return True

    def describe(self, model: str) -> str:
        """Names what serves `model` here, for the log line and error messages."""
        return f"{self.name}:{model}"

    def counter(self, model: str) -> TokenCounter:
        """Counts tokens as `model` reads them (an estimate unless the backend can tokenize)."""
        return ESTIMATED

    async def context_window(self, model: str, configured: int | None) -> int:
        """Tokens `model`'s context holds, prompt and reply together: `configured` (the
        persona's setting) when given, else what the backend knows of the model."""
        return configured or DEFAULT_CONTEXT

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases connections or models."""


@dataclass
class BackendRegistry:
    """Backend kinds by name; built-ins register here the same way a plug-in would."""

    factories: dict[str, Callable[[Settings], LLMBackend]] = field(default_factory=dict)

    def register(self, name: str, factory: Callable[[Settings], LLMBackend]) -> None:
        self.factories[name] = factory

    def create(self, name: str, settings: Settings) -> LLMBackend:
        return self.factories[name](settings)


registry = BackendRegistry()


def new_call_id() -> str:
    """An id for a call the backend did not name (Ollama's and llama.cpp's calls have none)."""
    return f"call_{secrets.token_hex(12)}"
