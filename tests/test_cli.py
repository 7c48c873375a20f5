"""The `mem8` command as users run it: a real process, real flags, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.backends.wire_servers import OllamaServer, Script, running
from tests.support.processes import free_port, mem8_serve, wait_healthy


def test_a_bad_config_file_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "mem8.toml").write_text("[personas.p]\nname = 'P'\n")
    done = subprocess.run(
        [sys.executable, "-m", "mem8", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEM8_STORAGE": str(tmp_path / "mem8.db")},
    )
    assert done.returncode == 2
    assert "mem8.toml" in done.stderr and "personas.p" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_takes_port_and_backend_flags_and_sigterm_drains_a_stream(tmp_path: Path) -> None:
    """An Ollama that has the persona's model serves it; SIGTERM lets the open stream finish."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    script = Script(tokens=tuple(f" word{i}" for i in range(40)), token_delay=0.05)
    with (
        running(OllamaServer(script)) as ollama,
        mem8_serve(
            tmp_path,
            "--port",
            str(port),
            "--backend",
            "ollama",
            env={"OLLAMA_API_BASE": ollama.url, "MEM8_SHUTDOWN_GRACE": "20"},
        ) as process,
    ):
        wait_healthy(root, process)
        body = {
            "model": "mem8-creative-v1",
            "stream": True,
            "messages": [{"role": "user", "content": "a long story please"}],
        }
        with httpx.stream("POST", root + "/v1/chat/completions", json=body, timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("data: ")
            process.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert process.wait(30) == 0
        output = process.stdout.read() if process.stdout else ""
    assert "SIGTERM" in output
    assert "persona mem8-creative-v1 is served by ollama" in output
    assert (tmp_path / "mem8.db.journal").is_dir()


@pytest.mark.parametrize("variable", ["MEM8_PORT"])
def test_the_port_comes_from_the_environment(tmp_path: Path, variable: str) -> None:
    port = free_port()
    ollama = OllamaServer(Script(), models=("llama2:latest", "codellama:latest"))
    with (
        running(ollama),
        mem8_serve(tmp_path, env={variable: str(port), "OLLAMA_API_BASE": ollama.url}) as process,
    ):
        wait_healthy(f"http://127.0.0.1:{port}", process)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        output = process.stdout.read() if process.stdout else ""
    assert "persona mem8-technical-v1 is served by ollama:codellama:latest" in output
