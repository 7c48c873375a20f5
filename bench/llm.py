"""Streamed tokens per second: mem8's embedded backend against llama-cpp-python called directly.

Same model file, prompt, seed, thread count and temperature 0 on both sides, in interleaved rounds
(alternating which side goes first); tokens are counted the same way for both, from the model's
context. Run it as `python -m bench.llm [--tokens N] [--rounds N] [--threads N] [--model NAME]`."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import trio

from mem8.backends import models
from mem8.backends.base import ChatMessage, Finish, GenerationRequest, TextDelta
from mem8.backends.embedded import DEFAULT_SEED, EmbeddedBackend, generated_tokens
from mem8.config import Settings

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionChunk, ChatCompletionRequestMessage

TARGET = 0.90  # mem8 must stream at least this share of llama-cpp-python's own rate
MESSAGES = (
    ChatMessage("system", "You are a storyteller."),
    ChatMessage("user", "Write a long story about a lighthouse keeper and a message in a bottle."),
)


@dataclass(frozen=True, slots=True)
class Run:
    """One streamed completion: what it produced and how long it took."""

    tokens: int
    seconds: float
    text: str

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True, slots=True)
class Round:
    mem8: Run
    direct: Run


def _request(tokens: int) -> GenerationRequest:
    return GenerationRequest(
        model="bench", messages=MESSAGES, temperature=0.0, max_tokens=tokens, seed=DEFAULT_SEED
    )


async def _stream_mem8(backend: EmbeddedBackend, request: GenerationRequest) -> tuple[Run, int]:
    """A timed run through EmbeddedBackend.generate, with the prompt's token count."""
    pieces: list[str] = []
    started = time.perf_counter()
    async for item in backend.generate(request):
        if isinstance(item, TextDelta):
            pieces.append(item.text)
        elif isinstance(item, Finish):
            finish = item
    seconds = time.perf_counter() - started
    return Run(finish.completion_tokens, seconds, "".join(pieces)), finish.prompt_tokens


def _stream_direct(llama: Llama, request: GenerationRequest, prompt_tokens: int) -> Run:
    """A timed run through llama-cpp-python's create_chat_completion(stream=True)."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    pieces: list[str] = []
    reason = "stop"
    started = time.perf_counter()
    chunks = llama.create_chat_completion(
        messages=cast("list[ChatCompletionRequestMessage]", messages),
        stream=True,
        temperature=request.temperature,
        top_p=1.0,
        max_tokens=request.max_tokens,
        seed=request.seed,
    )
    for chunk in cast("Iterator[ChatCompletionChunk]", chunks):
        choice = chunk["choices"][0]
        text = cast("str | None", choice["delta"].get("content"))
        if text:
            pieces.append(text)
        reason = choice["finish_reason"] or reason
    seconds = time.perf_counter() - started
    tokens = generated_tokens(llama, prompt_tokens, reason)
    return Run(tokens, seconds, "".join(pieces))


def _open_direct(settings: Settings) -> Llama:
    from llama_cpp import Llama

    return Llama(
        model_path=str(models.resolve(settings.embedded_model)[0]),
        n_threads=settings.embedded_threads,
        n_ctx=settings.embedded_context,
        seed=DEFAULT_SEED,
        verbose=False,
    )


def _measure(settings: Settings, tokens: int, rounds: int) -> list[Round]:
    backend = EmbeddedBackend(settings)
    llama = _open_direct(settings)
    request = _request(tokens)
    trio.run(backend.load)
    # Warm-up: both load their weights and evaluate (then cache) the same prompt.
    _, prompt_tokens = trio.run(_stream_mem8, backend, request)
    _stream_direct(llama, request, prompt_tokens)
    results: list[Round] = []
    for number in range(rounds):
        if number % 2 == 0:
            mem8, _ = trio.run(_stream_mem8, backend, request)
            direct = _stream_direct(llama, request, prompt_tokens)
        else:
            direct = _stream_direct(llama, request, prompt_tokens)
            mem8, _ = trio.run(_stream_mem8, backend, request)
        results.append(Round(mem8, direct))
    trio.run(backend.aclose)
    llama.close()
    return results


def _report(settings: Settings, results: list[Round]) -> bool:
    """Prints the table and the verdict; True when mem8 meets the target."""
    print(f"model   {models.resolve(settings.embedded_model)[1]}")
    print(f"setup   {settings.embedded_threads} thread(s), temperature 0, seed {DEFAULT_SEED}")
    print()
    print(f"{'round':>5}  {'tokens':>6}  {'mem8 tok/s':>10}  {'direct tok/s':>12}  {'ratio':>6}")
    for number, result in enumerate(results, 1):
        ratio = result.mem8.rate / result.direct.rate
        print(
            f"{number:>5}  {result.mem8.tokens:>6}  {result.mem8.rate:>10.1f}  "
            f"{result.direct.rate:>12.1f}  {ratio:>6.1%}"
        )
    mem8 = statistics.median(r.mem8.rate for r in results)
    direct = statistics.median(r.direct.rate for r in results)
    ratio = mem8 / direct
    print(f"{'median':>5}  {'':>6}  {mem8:>10.1f}  {direct:>12.1f}  {ratio:>6.1%}")
    print()
    same = all(r.mem8.text == r.direct.text and r.mem8.tokens == r.direct.tokens for r in results)
    print(f"same text and token count on both sides: {'yes' if same else 'NO'}")
    passed = ratio >= TARGET
    verdict = "PASS" if passed else "FAIL"
    print(f"mem8/direct = {ratio:.1%} (target >= {TARGET:.0%}): {verdict}")
    return passed and same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llm", description=__doc__)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per completion")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--threads", type=int, default=Settings().embedded_threads, help="llama.cpp CPU threads"
    )
    parser.add_argument(
        "--model", default=models.DEFAULT, help=f"one of {', '.join(models.CATALOGUE)}"
    )
    args = parser.parse_args(argv)
    settings = replace(Settings(), embedded_threads=args.threads, embedded_model=args.model)
    results = _measure(settings, args.tokens, args.rounds)
    return 0 if _report(settings, results) else 1


if __name__ == "__main__":
    sys.exit(main())
