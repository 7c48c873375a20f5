"""Text encoders behind one contract (base.py): what places memories and finds them again."""

from __future__ import annotations

import functools

from mem8.encoders.base import Encoder


@functools.cache
def open_encoder(name: str, threads: int = 1) -> Encoder:
    """The encoder a setting names, loaded once per process (encoders hold no state)."""
    if name == "lexical":
        from mem8.encoders.hashed import LexicalEncoder

        return LexicalEncoder()
    from mem8.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder(threads)
