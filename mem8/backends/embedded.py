"""The embedded LLM backend: a GGUF chat model run in-process by llama.cpp, one stream at a time.

A generation runs in one worker thread that hands each piece of text to trio as it comes, without
waiting for trio; a closed or cancelled stream makes it quit before its next token, and the model
is free for the next request once it has.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import outcome
import trio

from mem8 import errors
from mem8.backends import models
from mem8.backends.base import (
    ESTIMATED,
    ChatMessage,
    Finish,
    Generated,
    GenerationRequest,
    LLMBackend,
    TextDelta,
    TokenCounter,
    TokenLogprob,
    ToolCalls,
    TopLogprob,
    registry,
)
from mem8.backends.constrained import (
    CALL_STARTS,
    FENCED_CALL,
    Mode,
    constraint,
    read_calls,
    rendered,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_types import (
        ChatCompletionRequestMessage,
        CreateChatCompletionStreamResponse,
    )

    from mem8.config import Settings

SETUP_HINT = (
    "the embedded model needs llama-cpp-python and its model's packages: "
    "run ./scripts/manage.sh openai-api to set up the environment"
)
DEFAULT_SEED = 8  # fixed, so that requests without a seed are reproducible run to run
_TEMPLATE_KEY = "tokenizer.chat_template"
_QUANTIZATION_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|[Bb]?[Ff]\d+)$")


def default_model_path() -> Path:
    """The default embedded model's GGUF file, checked; BackendUnavailable when missing."""
    return models.resolve(models.DEFAULT)[0]


def model_title(name_or_path: str) -> str:
    """What the log calls the model a setting names, without loading it."""
    known = models.CATALOGUE.get(name_or_path or models.DEFAULT)
    if known is not None:
        return known.title
    return _QUANTIZATION_SUFFIX.sub("", Path(name_or_path).stem)


def generated_tokens(llama: Llama, prompt_tokens: int, finish_reason: str) -> int:
    """Tokens a finished llama.cpp completion generated, counted from the model's own context.

    Every generated token but the last is evaluated into the context; the last is evaluated too
    when it led to an end-of-generation token, and is not when the completion hit max_tokens."""
    evaluated = llama.n_tokens - prompt_tokens
    return max(0, evaluated + 1 if finish_reason == "length" else evaluated)


@dataclass(frozen=True, slots=True)
class _Tokens:
    """Counts tokens exactly as create_chat_completion renders and tokenizes a prompt."""

    llama: Llama
    template: Jinja2ChatFormatter

    def text(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8", "replace"), add_bos=False))

    def prompt(self, messages: Sequence[ChatMessage]) -> int:
        return self.count_prompt(_llama_messages(tuple(messages)))

    def count_prompt(self, messages: list[ChatCompletionRequestMessage]) -> int:
        from jinja2 import TemplateError  # llama-cpp-python's own dependency

        try:
            rendered = self.template(messages=messages)
        except (ValueError, TemplateError) as error:  # e.g. the template's raise_exception
            raise errors.InvalidRequest(str(error), param="messages") from error
        add_bos = not rendered.added_special
        encoded = rendered.prompt.encode("utf-8", "replace")
        return len(self.llama.tokenize(encoded, add_bos=add_bos, special=True))


@dataclass(frozen=True, slots=True)
class _Model:
    """A loaded model, the chat template its completions render prompts with, and a counter
    for the event loop: a vocabulary-only copy, so counting never touches the model a
    generation is running on in another thread."""

    llama: Llama
    tokens: _Tokens  # on `llama`: for the generation's own thread
    counter: _Tokens  # on the vocabulary-only copy: for the event loop
    title: str


def _load_model(settings: Settings) -> _Model:
    """Finds, checks and opens the GGUF file (slow: runs in a worker thread)."""
    path, title = models.resolve(settings.embedded_model)
    try:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except (ImportError, OSError, RuntimeError) as error:
        raise errors.BackendUnavailable(f"{SETUP_HINT} ({error})") from error
    try:
        llama = Llama(
            model_path=str(path),
            n_threads=settings.embedded_threads,
            n_ctx=settings.embedded_context,
            seed=DEFAULT_SEED,
            logits_all=settings.embedded_logprobs,  # llama.cpp's logprobs need every logit
            verbose=False,
        )
        vocabulary = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except ValueError as error:
        raise errors.BackendUnavailable(f"llama.cpp cannot load {path}: {error}") from error
    if _TEMPLATE_KEY not in llama.metadata:
        llama.close()
        vocabulary.close()
        raise errors.BackendUnavailable(f"{path} carries no chat template ({_TEMPLATE_KEY})")
    llama.chat_format = "chat_template.default"  # the GGUF's own template, as counted above
    template = Jinja2ChatFormatter(
        template=llama.metadata[_TEMPLATE_KEY],
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
    )
    return _Model(llama, _Tokens(llama, template), _Tokens(vocabulary, template), title)


def _token_text(llama: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")


Chunks = Iterator["CreateChatCompletionStreamResponse"]


class _Generation:
    """One streamed chat completion, read a piece at a time by the thread that runs it.

    What may be a tool call is held back until it is known: all of it when a call is due; when
    the model may choose, its first words, and if they begin a call the answer is made again
    by `call` (under the call's grammar)."""

    def __init__(
        self,
        llama: Llama,
        chunks: Chunks,
        prompt_tokens: int,
        mode: Mode = "text",
        top: int = 0,
        call: Callable[[], Chunks] | None = None,
    ) -> None:
        self._llama = llama
        self._chunks = chunks
        self._prompt_tokens = prompt_tokens
        self._top = top  # alternatives asked for: llama.cpp adds the chosen one if not among them
        self._held: list[TextDelta] | None = [] if mode in ("call", "either") else None
        self._choosing = mode == "either"
        self._call = call
        self._pending: list[Generated] = []

    def step(self) -> Generated | None:
        """The next text piece (or the call), then the Finish, then None (blocking: runs in a
        worker thread)."""
        if self._pending:
            return self._pending.pop(0)
        try:
            return self._next()
        except RuntimeError as error:  # llama_decode failed
            raise errors.BackendFailed(f"the embedded model failed: {error}") from error

    def _next(self) -> Generated | None:
        chunks = self._chunks
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = cast("str | None", choice["delta"].get("content"))
            delta = TextDelta(text or "", _logprobs(choice, self._top))
            if text and (item := self._text(delta)) is not None:
                return item
            if self._chunks is not chunks:  # the model began a call: made again, held to it
                return self._next()
            if choice["finish_reason"] is not None:
                return self._finish(choice["finish_reason"])
        return None

    def _text(self, delta: TextDelta) -> TextDelta | None:
        """The piece to pass on now, if any."""
        if self._held is None:
            return delta
        self._held.append(delta)
        begun = "".join(piece.text for piece in self._held).lstrip()
        if self._choosing and begun:
            if FENCED_CALL.startswith(begun):  # a code fence: held until its language shows
                return None
            self._choosing = False
            if not begun.startswith((*CALL_STARTS, FENCED_CALL)):  # prose: it chose not to call
                return self._release()
            if self._call is not None:
                self.close()
                self._held, self._chunks = [], self._call()
        return None

    def _release(self) -> TextDelta:
        held, self._held = self._held or [], None
        logprobs = tuple(item for delta in held for item in delta.logprobs)
        return TextDelta("".join(delta.text for delta in held), logprobs)

    def _finish(self, reason: str) -> Generated:
        completion = generated_tokens(self._llama, self._prompt_tokens, reason)
        if self._held is None:
            return Finish(reason, self._prompt_tokens, completion)
        calls = read_calls("".join(delta.text for delta in self._held))
        if not calls:  # cut short: what there is, as text
            self._pending = [Finish(reason, self._prompt_tokens, completion)]
            return self._release()
        self._pending = [Finish("tool_calls", self._prompt_tokens, completion)]
        return ToolCalls(calls)

    def close(self) -> None:
        """Ends the llama.cpp generator early (a no-op once it has finished)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class _GenerationThread:
    """Runs a generation in a worker thread that hands each item to trio as soon as it has it.

    The thread never waits for trio, so the next token is computed while trio passes this one on;
    `stop` makes it quit before its next token and waits until it has."""

    def __init__(self, generation: _Generation) -> None:
        self._generation = generation
        self._trio = trio.lowlevel.current_trio_token()
        self._send, self.items = trio.open_memory_channel[Generated](math.inf)
        self._quit = threading.Event()
        self._done = trio.Event()
        self._failure: BaseException | None = None
        trio.lowlevel.start_thread_soon(self._run, self._deliver, name="mem8 embedded generation")

    def _run(self) -> None:  # in the worker thread
        try:
            while not self._quit.is_set() and (item := self._generation.step()) is not None:
                self._to_trio(partial(self._hand_over, item))
        finally:
            self._generation.close()

    def _deliver(self, result: outcome.Outcome[None]) -> None:  # in the worker thread
        self._to_trio(partial(self._finish, result))

    def _to_trio(self, callback: Callable[[], None]) -> None:
        try:
            self._trio.run_sync_soon(callback)
        except trio.RunFinishedError:
            self._quit.set()  # trio has gone: nobody listens any more

    def _hand_over(self, item: Generated) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._send.send_nowait(item)  # unbounded: never blocks

    def _finish(self, result: outcome.Outcome[None]) -> None:
        if isinstance(result, outcome.Error):
            self._failure = result.error
        self._send.close()
        self._done.set()

    def raise_failure(self) -> None:
        """Re-raises in trio what the thread raised, if anything."""
        if self._failure is not None:
            raise self._failure

    async def stop(self) -> None:
        """Asks the thread to quit before its next token and waits (shielded) until it has."""
        self._quit.set()
        with trio.CancelScope(shield=True):
            await self._done.wait()


def _start(model: _Model, request: GenerationRequest) -> _Generation:
    """Checks the prompt against the context and opens the stream (runs in a worker thread)."""
    held = constraint(request)
    messages = _llama_messages(request.messages, held.hint)
    prompt_tokens = model.tokens.count_prompt(messages)
    max_tokens = _max_tokens(request.max_tokens, prompt_tokens, model.llama.n_ctx())

    def completion(grammar: str | None) -> Chunks:
        from llama_cpp.llama_grammar import LlamaGrammar

        chunks = model.llama.create_chat_completion(
            messages=messages,
            stream=True,
            temperature=request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            max_tokens=max_tokens,
            stop=list(request.stop),
            seed=request.seed,
            grammar=None if grammar is None else LlamaGrammar.from_string(grammar, False),
            logprobs=request.logprobs or None,
            top_logprobs=request.top_logprobs if request.logprobs else None,
        )
        return cast("Chunks", chunks)

    first = completion(None if held.mode == "either" else held.grammar)
    call = partial(completion, held.grammar) if held.mode == "either" else None
    return _Generation(model.llama, first, prompt_tokens, held.mode, request.top_logprobs, call)


def _llama_messages(
    messages: tuple[ChatMessage, ...], hint: str = ""
) -> list[ChatCompletionRequestMessage]:
    return cast("list[ChatCompletionRequestMessage]", rendered(messages, hint))


def _logprobs(choice: Any, top: int) -> tuple[TokenLogprob, ...]:
    """A chunk's logprobs.content (llama.cpp gives OpenAI's shape), as the contract has them,
    with the `top` likeliest alternatives."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return tuple(
        TokenLogprob(item["token"], float(item["logprob"]), _likeliest(item["top_logprobs"], top))
        for item in content or []
    )


def _likeliest(alternatives: list[Any], top: int) -> tuple[TopLogprob, ...]:
    ranked = sorted(alternatives, key=lambda alternative: -float(alternative["logprob"]))
    return tuple(TopLogprob(a["token"], float(a["logprob"])) for a in ranked[:top])


def _max_tokens(requested: int | None, prompt_tokens: int, context: int) -> int:
    """The completion budget: what was asked for, capped by the room the prompt leaves."""
    room = context - prompt_tokens
    if room < 1:
        raise errors.ContextLengthExceeded(
            f"This model's maximum context length is {context} tokens (MEM8_EMBEDDED_CONTEXT), "
            f"including the reply; the messages take {prompt_tokens}. Shorten the conversation.",
            param="messages",
        )
    if requested is None:
        return room
    if requested < 1:
        raise errors.InvalidRequest(
            f"max_tokens must be at least 1, got {requested}", param="max_tokens"
        )
    return min(requested, room)


class EmbeddedBackend(LLMBackend):
    """A GGUF chat model (Qwen2.5-Coder-0.5B-Instruct by default) run in-process by llama.cpp."""

    name: ClassVar[str] = "embedded"
    logprobs_hint: ClassVar[str] = "set MEM8_EMBEDDED_LOGPROBS=true to have them"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.can_logprobs = settings.embedded_logprobs
        self._model: _Model | None = None
        self._loading = trio.Lock()
        # llama.cpp is not thread-safe: one generation at a time. A semaphore rather than a Lock,
        # because trio's finalizer closes an abandoned stream from another task, and a Lock may
        # only be released by the task that acquired it.
        self._turn = trio.Semaphore(1)

    async def start(self) -> None:
        """Loads the model before serving: llama.cpp silences the process's output while it
        loads, so this must not happen in the middle of serving requests."""
        await self.load()

    async def load(self) -> None:
        """Loads the model now rather than on the first request."""
        await self._loaded()

    async def _loaded(self) -> _Model:
        async with self._loading:
            if self._model is None:
                self._model = await trio.to_thread.run_sync(_load_model, self._settings)
            return self._model

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        model = await self._loaded()
        async with self._turn:
            generation = await trio.to_thread.run_sync(_start, model, request)
            thread = _GenerationThread(generation)
            try:
                async for item in thread.items:
                    yield item
                thread.raise_failure()
            finally:
                await thread.stop()  # the model is another request's only once the thread is gone

    def describe(self, model: str) -> str:
        threads = self._settings.embedded_threads
        plural = "" if threads == 1 else "s"
        title = model_title(self._settings.embedded_model)
        return f"embedded {title} (llama.cpp, {threads} thread{plural})"

    def counter(self, model: str) -> TokenCounter:
        return ESTIMATED if self._model is None else self._model.counter

    async def context_window(self, model: str, configured: int | None) -> int:
        """The context the model was loaded with (a persona may ask for less, never more)."""
        loaded = self._settings.embedded_context
        return min(configured, loaded) if configured else loaded

    async def aclose(self) -> None:
        async with self._turn:
            if self._model is not None:
                self._model.llama.close()
                self._model.counter.llama.close()
                self._model = None


registry.register("embedded", EmbeddedBackend)
