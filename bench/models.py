"""Which embedded model answers: fixed prompts through each installed model, checked.

Run: ./scripts/manage.sh bench models [--threads N] [--tokens N]

Six prompts a persona gets (two technical questions and a SQL task as the Technical Analyst,
a recalled fact and a worry as the Counselor, a haiku as the Creative Writer) at temperature 0,
the same seed, 200 tokens at most, through llama-cpp-python's chat completion with each GGUF's
own template. Each answer is checked for what a right one holds (the SQL joins, groups, orders
and limits; the fact is named; the haiku has three short lines ...) and for rambling: the share
of its word 4-grams that repeat. Also tokens per second (prompt and answer together) on this
machine: measure it idle."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from mem8.backends import models
from mem8.errors import BackendUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionResponse

TECHNICAL = (
    "You are the Technical Analyst, a persona of high precision and analytical thinking. You "
    "give exact technical explanations, analyse code and solve problems."
)
COUNSELOR = (
    "You are the Empathetic Counselor, a persona of high agreeableness and emotional "
    "intelligence. You offer emotional support, advice and understanding."
)
REMEMBERED = (
    "\n\nWhat you remember from earlier conversations with this person, most relevant first; "
    "use it when it helps:\n- 2 days ago, they said (pleasant): My sister Anna is getting "
    "married in Lisbon on June 3rd and I'm so nervous about my speech!"
)


def _has(*words: str) -> Callable[[str], bool]:
    return lambda text: all(w in text.lower() for w in words)


def _any(*words: str, at_least: int = 1) -> Callable[[str], bool]:
    return lambda text: sum(w in text.lower() for w in words) >= at_least


def _haiku(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return len(lines) == 3 and len(text.split()) <= 25


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    right: Callable[[str], bool]
    what: str  # what a right answer holds


PROMPTS = (
    Prompt(
        TECHNICAL,
        "My name is Priya and I maintain the billing service written in Go. "
        "What is a goroutine leak?",
        lambda t: (
            _has("goroutine")(t)
            and _any("block", "never", "exit", "terminat", "running")(t)
            and "security" not in t.lower()
        ),
        "a goroutine that never ends, not a security flaw",
    ),
    Prompt(
        TECHNICAL,
        "In Python, what does `functools.lru_cache` do? One paragraph.",
        lambda t: _has("cache")(t) and _any("result", "argument", "call")(t),
        "caches results by arguments",
    ),
    Prompt(
        TECHNICAL,
        "Write a SQL query that returns the 3 customers with the highest total order amount "
        "from tables customers(id, name) and orders(customer_id, amount).",
        _has("join", "group by", "order by", "limit 3"),
        "JOIN, GROUP BY, ORDER BY, LIMIT 3",
    ),
    Prompt(
        COUNSELOR + REMEMBERED,
        "In which city is my sister's wedding?",
        _any("lisbon", "lisboa"),
        "Lisbon",
    ),
    Prompt(
        COUNSELOR,
        "I've been feeling overwhelmed at work lately. Any advice?",
        _any("break", "priorit", "talk", "rest", "sleep", "support", "delegat", at_least=2),
        "two kinds of concrete advice",
    ),
    Prompt(
        "You are the Creative Writer, a persona with high openness and creativity.",
        "Write a haiku about memories.",
        _haiku,
        "three short lines",
    ),
)


def repeated_share(text: str) -> float:
    """The share of the answer's word 4-grams seen before in it: 0 for varied prose."""
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _open(name: str, threads: int) -> Llama | None:
    from llama_cpp import Llama

    try:
        path, _ = models.resolve(name)
    except BackendUnavailable as missing:
        print(f"{name}: not installed ({missing.message})")
        return None
    return Llama(model_path=str(path), n_ctx=2048, n_threads=threads, seed=8, verbose=False)


def run(name: str, threads: int, tokens: int) -> None:
    llama = _open(name, threads)
    if llama is None:
        return
    right, rates, repeats = 0, [], []
    for prompt in PROMPTS:
        messages = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        started = time.perf_counter()
        out = cast(
            "CreateChatCompletionResponse",
            llama.create_chat_completion(
                messages=cast("list[ChatCompletionRequestMessage]", messages),
                max_tokens=tokens,
                temperature=0.0,
                seed=8,
            ),
        )
        seconds = time.perf_counter() - started
        text = out["choices"][0]["message"]["content"] or ""
        usage = out["usage"]
        ok = prompt.right(text)
        right += ok
        rates.append(usage["completion_tokens"] / seconds)
        repeats.append(repeated_share(text))
        shown = " ".join(text.split())[:110]
        print(f"  [{'ok' if ok else '--'}] {prompt.what:45} {shown}")
    llama.close()
    rates.sort()
    print(
        f"{name}: {right}/{len(PROMPTS)} right, repeated 4-grams {max(repeats):.0%} at most, "
        f"median {rates[len(rates) // 2]:.1f} answer tokens/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads")
    parser.add_argument("--tokens", type=int, default=200, help="answer tokens at most")
    parser.add_argument("--model", action="append", help="a model name (default: all)")
    arguments = parser.parse_args()
    for name in arguments.model or list(models.CATALOGUE):
        run(name, arguments.threads, arguments.tokens)


if __name__ == "__main__":
    main()
