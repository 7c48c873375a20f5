"""A tiny scenario (scripted backend, lexical encoder: seconds a run) and a run of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mem8 import cli

TINY = """
[sim]
name = "tiny"
seed = 3
start = 2024-05-01T09:00:00Z
step = "1h"
steps = 12
backend = "scripted"
encoder = "lexical"

[personas.ada]
like = "mem8-counselor-v1"

[personas.bob]
like = "mem8-creative-v1"

[[plant]]
at = 2024-05-01T09:00:00Z
persona = "ada"
text = "Ada grew up in Lisbon and loves the sea."

[[say]]
at = "+1h"
every = "3h"
times = 3
from = "Carol"
to = "ada"
text = "How are you feeling today? I am worried about my exams next week!"

[[conversation]]
at = "+2h"
every = "4h"
times = 2
between = ["ada", "bob"]
opening = "Have you been to the sea lately? Tell me about Lisbon."
turns = 3

[[expect]]
recall = { persona = "ada", query = "Lisbon", contains = "Lisbon" }

[[expect]]
interest = { persona = "bob", min = 0.0, max = 0.6 }

[script]
ada = ["I hear you. Tell me more about it.", "The sea is calm today, and so am I."]
bob = ["Wild idea: let's paint the waves!", "I would rather build a boat."]
"""


@pytest.fixture(scope="session")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def run_dir(scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the tiny scenario, shared: tests read it and never change it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert cli.main(["sim", "run", str(scenario_file), "--out", str(out)]) in (0, 1)
    return out
