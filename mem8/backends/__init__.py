"""LLM backends behind one contract (base.py); `register_builtins` registers the built-in kinds."""

from __future__ import annotations

import importlib

BUILTIN_MODULES = (
    "mem8.backends.ollama",
    "mem8.backends.openai_upstream",
    "mem8.backends.embedded",
    "mem8.backends.fake",  # "scripted": the test double, chosen only by name, never by auto
)


def register_builtins() -> None:
    """Imports the built-in backends, each of which registers itself like a plug-in would."""
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
