"""A server asked to stop while a long text is being encoded stops within its grace period: the
encoding is left to finish on its own, not waited for (a 500,000-character message held SIGTERM
for minutes when it was)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import httpx
import numpy as np
import numpy.typing as npt

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.encoders.hashed import LexicalEncoder
from tests.support.server import running_server

SLOW = "glacier"
HELD_FOR = 30.0  # seconds the encoder holds a text naming SLOW: far longer than the grace


class HeldEncoder(LexicalEncoder):
    """The lexical encoder, held up on any text naming SLOW until released (or HELD_FOR)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any(SLOW in text for text in texts):
            self.entered.set()
            self.release.wait(HELD_FOR)
        return super().embed_batch(texts)


def test_stopping_does_not_wait_for_an_encoding_in_progress(
    settings: Settings, llm: ScriptedLLM
) -> None:
    encoder = HeldEncoder()
    settings = replace(settings, shutdown_grace=1.0)
    long_message = f"The {SLOW} moved a little today. " * 40  # encoded before recall
    answers: list[object] = []

    def chat(base_url: str) -> None:
        try:
            body = {
                "model": "mem8-technical-v1",
                "messages": [{"role": "user", "content": long_message}],
            }
            answers.append(httpx.post(base_url + "/chat/completions", json=body, timeout=60))
        except httpx.HTTPError as error:
            answers.append(error)

    try:
        with running_server(
            settings, dict.fromkeys(settings.personas, llm), encoder=encoder
        ) as server:
            asking = threading.Thread(target=chat, args=(server.base_url,))
            asking.start()
            assert encoder.entered.wait(30), "the message never reached the encoder"
            began = time.monotonic()
        stopped_in = time.monotonic() - began
        asking.join(30)
    finally:
        encoder.release.set()
    assert stopped_in < 1.0 + 5.0, f"took {stopped_in:.1f} s to stop"
    assert len(answers) == 1, answers
    cut = answers[0]  # the connection closed, or an error: never an answer it could not give
    assert not isinstance(cut, httpx.Response) or cut.status_code != 200, cut.text
