"""Text encoders behind one contract (base.py): what places memories and finds them again."""

from __future__ import annotations

import functools

from mem8.encoders.base import Encoder

NAMES = ("minilm", "mpnet", "lexical")


@functools.cache
def open_encoder(name: str, threads: int = 1) -> Encoder:
    """The encoder a setting names (one of NAMES), loaded once per process (encoders hold no
    state)."""
    if name == "lexical":
        from mem8.encoders.hashed import LexicalEncoder

        return LexicalEncoder()
    if name == "mpnet":
        from mem8.encoders.mpnet import MPNetEncoder

        return MPNetEncoder(threads)
    if name == "minilm":
        from mem8.encoders.minilm import MiniLMEncoder

        return MiniLMEncoder(threads)
    raise ValueError(f"no encoder is called {name!r}: the names are {', '.join(NAMES)}")
