"""The encoding actor: texts in, their waves out (mem8/encoders/wave.py), what /v1/embeddings
exposes. It reads no memory and writes none. Each Embed is answered apart, on a worker thread,
so a long input encodes while the event loop and the other requests go on."""

from __future__ import annotations

import trio

from mem8 import errors
from mem8.actors.messages import Embed, Embedded
from mem8.actors.percepts import encoder_calls
from mem8.actors.runtime import Actor, Reply, handles
from mem8.encoders.base import Encoder
from mem8.encoders.wave import to_wave


class EncodingActor(Actor):
    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    @handles(Embed)
    async def on_embed(self, message: Embed, reply: Reply) -> None:
        if not self.encoder.semantic:
            raise errors.BackendUnavailable(
                f"Embeddings need the semantic encoder, not {self.encoder.name}: "
                "set MEM8_ENCODER=mpnet (or minilm)"
            )
        self.answer_apart(message, reply, lambda owned: self._answer(message, owned))

    async def _answer(self, message: Embed, reply: Reply) -> None:
        waves, tokens = await trio.to_thread.run_sync(
            waves_of, self.encoder, message, abandon_on_cancel=True, limiter=encoder_calls()
        )
        await reply.send(Embedded(message.request_id, waves, tokens))


def waves_of(encoder: Encoder, message: Embed) -> tuple[bytes, int]:
    """Counts, checks and encodes: all of it slow enough for a worker thread."""
    counts = encoder.count_tokens(message.texts)
    _check_tokens(counts, message.max_input_tokens, message.max_request_tokens)
    waves = to_wave(encoder.embed_batch(message.texts), message.dimensions)
    return waves.astype("<f4").tobytes(), sum(counts)


def _check_tokens(counts: list[int], per_input: int, per_request: int) -> None:
    for i, count in enumerate(counts):
        if count > per_input:
            raise errors.InvalidRequest(
                f"input[{i}] has {count} tokens; at most {per_input} are allowed", param="input"
            )
    if sum(counts) > per_request:
        raise errors.InvalidRequest(
            f"'input' has {sum(counts)} tokens in all; at most {per_request} are allowed",
            param="input",
        )
