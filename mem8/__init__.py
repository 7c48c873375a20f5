"""mem8: an OpenAI-compatible server where every model is a persona with wave-based memory."""

from __future__ import annotations

__version__ = "0.1.0"
