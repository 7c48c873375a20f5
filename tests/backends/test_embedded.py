from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from mem8 import errors
from mem8.backends import models
from mem8.backends.base import (
    ChatMessage,
    Finish,
    Generated,
    GenerationRequest,
    TextDelta,
    registry,
)
from mem8.backends.embedded import DEFAULT_SEED, EmbeddedBackend, default_model_path
from mem8.config import Settings

LONG_ANSWER = "Write a long poem about the sea."


SMALL = Settings(embedded_model="smollm2-135m")  # these tests need a model, not its words


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    """One loaded model for the whole module: loading it takes about half a second."""
    shared = EmbeddedBackend(SMALL)
    trio.run(shared.start)
    yield shared
    trio.run(shared.aclose)


def _request(
    text: str, *, max_tokens: int | None = 8, temperature: float = 0.0, seed: int | None = 1
) -> GenerationRequest:
    return GenerationRequest(
        model="mem8-test",
        messages=(ChatMessage("system", "You are terse."), ChatMessage("user", text)),
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )


async def _collect(backend: EmbeddedBackend, request: GenerationRequest) -> list[Generated]:
    return [item async for item in backend.generate(request)]


def _text(items: list[Generated]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextDelta))


def _finish(items: list[Generated]) -> Finish:
    assert isinstance(items[-1], Finish)
    assert not any(isinstance(item, Finish) for item in items[:-1])
    return items[-1]


async def _cpu_seconds_while_idle(seconds: float) -> float:
    """Process CPU time spent while this task sleeps: near zero unless a thread still generates."""
    start = time.process_time()
    await trio.sleep(seconds)
    return time.process_time() - start


@pytest.mark.embedded
def test_a_short_answer_streams_as_deltas_then_one_finish(backend: EmbeddedBackend) -> None:
    items = trio.run(_collect, backend, _request("Name three colours.", max_tokens=12))

    deltas = [item for item in items if isinstance(item, TextDelta)]
    finish = _finish(items)
    assert len(deltas) >= 2
    assert _text(items).strip()
    assert finish.prompt_tokens > 0
    assert 0 < finish.completion_tokens <= 12


@pytest.mark.embedded
def test_token_counts_match_llama_cpp_usage(backend: EmbeddedBackend) -> None:
    from llama_cpp import Llama

    request = _request("Say hello.", max_tokens=40)
    items = trio.run(_collect, backend, request)
    path = str(models.resolve("smollm2-135m")[0])
    direct = Llama(model_path=path, n_threads=1, n_ctx=2048, seed=DEFAULT_SEED, verbose=False)
    reply = direct.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in request.messages],  # type: ignore[misc]
        temperature=0.0,
        top_p=1.0,
        max_tokens=40,
        seed=1,
    )
    direct.close()

    usage = reply["usage"]  # type: ignore[index]
    finish = _finish(items)
    assert (finish.prompt_tokens, finish.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert _text(items) == reply["choices"][0]["message"]["content"]  # type: ignore[index]
    assert backend.counter("any").prompt(request.messages) == usage["prompt_tokens"]


@pytest.mark.embedded
def test_the_counter_counts_text_as_the_model_tokenizes_it(backend: EmbeddedBackend) -> None:
    counter = backend.counter("any")
    short, longer = counter.text("Lisbon"), counter.text("Lisbon, in June, with my sister Anna.")
    assert 0 < short < longer < 20
    one = counter.prompt([ChatMessage("user", "hi")])
    two = counter.prompt([ChatMessage("user", "hi"), ChatMessage("assistant", "hello")])
    assert one < two


def test_the_context_is_the_loaded_one_or_a_persona_s_smaller_one() -> None:
    backend = EmbeddedBackend(Settings(embedded_context=2048))

    assert trio.run(backend.context_window, "any", None) == 2048
    assert trio.run(backend.context_window, "any", 1024) == 1024
    assert trio.run(backend.context_window, "any", 8192) == 2048


@pytest.mark.embedded
def test_max_tokens_stops_with_length(backend: EmbeddedBackend) -> None:
    finish = _finish(trio.run(_collect, backend, _request(LONG_ANSWER, max_tokens=5)))

    assert finish.finish_reason == "length"
    assert finish.completion_tokens == 5


@pytest.mark.embedded
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_the_same_seed_gives_the_same_text(backend: EmbeddedBackend, temperature: float) -> None:
    request = _request(LONG_ANSWER, max_tokens=16, temperature=temperature, seed=42)

    first = trio.run(_collect, backend, request)
    second = trio.run(_collect, backend, request)

    assert _text(first) == _text(second)
    assert _text(first)


@pytest.mark.embedded
def test_closing_the_stream_early_stops_generation(backend: EmbeddedBackend) -> None:
    async def scenario() -> tuple[float, float, list[Generated]]:
        stream = backend.generate(_request(LONG_ANSWER, max_tokens=1000))
        assert isinstance(await stream.__anext__(), TextDelta)
        assert isinstance(await stream.__anext__(), TextDelta)
        started = time.perf_counter()
        await stream.aclose()
        closing = time.perf_counter() - started
        idle_cpu = await _cpu_seconds_while_idle(0.5)
        with trio.fail_after(10):
            after = await _collect(backend, _request("Say hi.", max_tokens=3))
        return closing, idle_cpu, after

    closing, idle_cpu, after = trio.run(scenario)

    assert closing < 1.0  # at most the one token in flight
    assert idle_cpu < 0.2  # a thread still generating would burn ~0.5 s of CPU here
    assert _finish(after).completion_tokens > 0


@pytest.mark.embedded
def test_a_cancelled_consumer_stops_generation(backend: EmbeddedBackend) -> None:
    async def scenario() -> tuple[int, float, list[Generated]]:
        received = 0
        with trio.CancelScope() as scope:
            async for _ in backend.generate(_request(LONG_ANSWER, max_tokens=1000)):
                received += 1
                if received == 2:
                    scope.cancel()
        idle_cpu = await _cpu_seconds_while_idle(0.5)
        with trio.fail_after(10):
            after = await _collect(backend, _request("Say hi.", max_tokens=3))
        return received, idle_cpu, after

    received, idle_cpu, after = trio.run(scenario)

    assert received == 2
    assert idle_cpu < 0.2
    assert _finish(after).completion_tokens > 0


@pytest.mark.embedded
def test_concurrent_requests_take_turns(backend: EmbeddedBackend) -> None:
    results: list[list[Generated]] = []

    async def one(text: str) -> None:
        results.append(await _collect(backend, _request(text, max_tokens=4)))

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "Name a fruit.")
            nursery.start_soon(one, "Name a river.")

    trio.run(scenario)

    assert len(results) == 2
    assert all(_finish(items).completion_tokens > 0 for items in results)


@pytest.mark.embedded
def test_a_prompt_longer_than_the_context_is_an_invalid_request(backend: EmbeddedBackend) -> None:
    with pytest.raises(errors.ContextLengthExceeded) as raised:
        trio.run(_collect, backend, _request("sea " * 3000))

    assert raised.value.param == "messages" and raised.value.code == "context_length_exceeded"
    assert "2048" in raised.value.message
    assert "tokens" in raised.value.message


def test_a_missing_model_file_is_backend_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    backend = EmbeddedBackend(Settings(embedded_model=str(missing)))

    with pytest.raises(errors.BackendUnavailable) as raised:
        trio.run(_collect, backend, _request("Hi"))

    assert str(missing) in raised.value.message
    assert "./scripts/manage.sh openai-api" in raised.value.message


def test_describe_names_the_model_and_threads() -> None:
    backend = EmbeddedBackend(Settings(embedded_threads=2))

    assert backend.describe("any") == (
        "embedded Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) (llama.cpp, 2 threads)"
    )
    assert trio.run(backend.has_model, "whatever-persona")
    named = EmbeddedBackend(Settings(embedded_model="/models/Mistral-7B-Instruct.Q4_K_M.gguf"))
    assert named.describe("any") == "embedded Mistral-7B-Instruct (llama.cpp, 1 thread)"


def test_the_registry_builds_it() -> None:
    assert isinstance(registry.create("embedded", Settings()), EmbeddedBackend)


def test_the_default_model_is_qwen_coder_0_5b_checked_by_its_hash() -> None:
    path = default_model_path()

    assert path.name == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert path.stat().st_size == models.CATALOGUE["qwen2.5-coder-0.5b"].size
    assert (path.parent / "qwen2.5-coder-0.5b-instruct-q4_k_m.LICENSE.txt").is_file()
