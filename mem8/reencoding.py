"""A store's memories follow the encoder: when the configured encoder is not the one that made
their vectors, every memory is encoded again (and re-centred on the grid) before the system
starts, so recall never compares vectors of two encoders.

The store names its encoder in a state row. A store from before that row existed is taken to
be the configured encoder's when all its vectors have that encoder's length (MiniLM's 384 or
the hashed words' 256), else it is encoded again. A crash half-way leaves the row as it was, so
the next start encodes everything again: the result is the same."""

from __future__ import annotations

import logging
import time

from mem8.encoders.base import Encoder
from mem8.errors import ConfigError
from mem8.grid.placement import Placer
from mem8.storage.sqlite import ENCODER_STATE, GRID_STATE, MemoryStore

log = logging.getLogger(__name__)
BATCH = 256  # memories encoded and written per transaction
PROGRESS_SECONDS = 10.0  # how often a long re-encoding says how far it is


def made_by(store: MemoryStore, encoder: Encoder) -> bool:
    """Whether the store's vectors are this encoder's."""
    recorded = store.get_state(ENCODER_STATE)
    if recorded is not None:
        return recorded.decode() == encoder.name
    return store.vector_sizes() <= {encoder.dimensions}


def check_encoder(store: MemoryStore, encoder: Encoder) -> None:
    """Refuses a store another encoder made, for a reader that must not change it (the CLI
    beside a server)."""
    if not made_by(store, encoder):
        recorded = store.get_state(ENCODER_STATE)
        maker = recorded.decode() if recorded else "another encoder"
        raise ConfigError(
            f"the memories in this store were encoded by {maker}, not {encoder.name} "
            "(MEM8_ENCODER): use that encoder, or start the server with this one once to "
            "encode them again"
        )


def follow_encoder(store: MemoryStore, encoder: Encoder, placer: Placer) -> int:
    """Encodes the store's memories again if another encoder made them (the saved field goes
    too: it is rebuilt from the memories); returns how many were encoded."""
    if made_by(store, encoder):
        store.put_state(ENCODER_STATE, encoder.name.encode())
        return 0
    total = store.stats().memories
    log.info(
        "encoding %d memories again with %s (they were made by another encoder)",
        total,
        encoder.name,
    )
    done, seq, said = 0, 0, time.monotonic()
    while rows := store.texts_after(seq, BATCH):
        vectors = encoder.embed_batch([text for _, text in rows])
        centres = [placer.place(v, "", "text") for v in vectors]
        store.replace_vectors(
            [(s, v, c.x, c.y) for (s, _), v, c in zip(rows, vectors, centres, strict=True)]
        )
        seq, done = rows[-1][0], done + len(rows)
        if time.monotonic() - said >= PROGRESS_SECONDS:
            log.info("encoded %d of %d memories", done, total)
            said = time.monotonic()
    store.delete_states([GRID_STATE])
    store.put_state(ENCODER_STATE, encoder.name.encode())
    log.info("encoded %d memories with %s", done, encoder.name)
    return done
