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


# Encoder.name -> the setting that opens it: a journal names the encoder its run used.
_SETTING_OF = {
    "lexical-hash": "lexical",
    "all-MiniLM-L6-v2-int8": "minilm",
    "all-mpnet-base-v2": "mpnet",
}
BEFORE_NAMES = "minilm"  # what a journal written before it named its encoder used


def open_named(name: str | None, threads: int = 1) -> Encoder:
    """The encoder a journal names (Encoder.name; None: one written before journals did)."""
    if name is None:
        return open_encoder(BEFORE_NAMES, threads)
    setting = _SETTING_OF.get(name)
    if setting is None:
        raise ValueError(f"unknown encoder {name!r}")
    return open_encoder(setting, threads)
