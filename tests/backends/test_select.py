"""The backend choice: auto uses Ollama where it answers and has the model, else embedded."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import trio

from mem8.backends.select import choose_backends
from mem8.config import Settings
from tests.backends.wire_servers import OllamaServer, Script, closed_port_url, running


def names(settings: Settings) -> dict[str, str]:
    return {pid: backend.name for pid, backend in trio.run(choose_backends, settings).items()}


def test_auto_uses_ollama_for_the_models_it_has(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with running(OllamaServer(Script(), models=("llama2:latest",))) as ollama:
        caplog.set_level(logging.INFO)
        chosen = names(dataclasses.replace(settings, ollama_api_base=ollama.url))
    assert chosen == {
        "mem8-creative-v1": "ollama",
        "mem8-counselor-v1": "ollama",
        "mem8-technical-v1": "embedded",
    }
    assert "Ollama lacks codellama:latest" in caplog.text
    assert "persona mem8-technical-v1 is served by embedded" in caplog.text


def test_auto_without_ollama_uses_the_embedded_model(settings: Settings) -> None:
    chosen = names(dataclasses.replace(settings, ollama_api_base=closed_port_url()))
    assert set(chosen.values()) == {"embedded"}


@pytest.mark.parametrize("forced", ["ollama", "embedded"])
def test_a_forced_backend_serves_every_persona(settings: Settings, forced: str) -> None:
    chosen = names(
        dataclasses.replace(settings, llm_backend=forced, ollama_api_base=closed_port_url())
    )
    assert set(chosen.values()) == {forced}
