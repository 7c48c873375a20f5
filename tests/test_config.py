"""Settings: defaults < mem8.toml < environment < flags; bad files name the file and key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mem8.config import Settings, load_settings, setting_fields
from mem8.errors import ConfigError
from mem8.personas import Traits
from mem8.server import hypercorn_config

SCIENTIST = (
    "[personas.mem8-scientist-v1]\n"
    'name = "Research Scientist"\n'
    "traits = { openness = 0.95, conscientiousness = 0.85, extraversion = 0.3, "
    "agreeableness = 0.6, neuroticism = 0.2 }\n"
    'model = "llama2:latest"\n'
    "temperature = 0.5\n"
    "interest_threshold = 0.7\n"
    'below_threshold = "subconscious"\n'
    'system_prompt = "You are a careful scientist."\n'
)
README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_spec_personas_are_built_in() -> None:
    personas = load_settings(cwd=Path("/nonexistent"), environ={}).personas
    creative = personas["mem8-creative-v1"]
    assert (creative.model, creative.temperature) == ("llama2:latest", 0.9)
    assert creative.traits == Traits(openness=0.9, conscientiousness=0.7, extraversion=0.6)
    technical = personas["mem8-technical-v1"]
    assert (technical.model, technical.temperature) == ("codellama:latest", 0.3)
    assert technical.traits == Traits(conscientiousness=0.9, openness=0.7, extraversion=0.4)
    counselor = personas["mem8-counselor-v1"]
    assert (counselor.model, counselor.temperature) == ("llama2:latest", 0.7)
    assert counselor.traits == Traits(agreeableness=0.95, openness=0.8, conscientiousness=0.8)


def test_a_persona_is_added_by_config(tmp_path: Path) -> None:
    (tmp_path / "mem8.toml").write_text(SCIENTIST)
    settings = load_settings(cwd=tmp_path, environ={})
    scientist = settings.personas["mem8-scientist-v1"]
    assert scientist.name == "Research Scientist"
    assert scientist.traits.openness == 0.95 and scientist.traits.neuroticism == 0.2
    assert scientist.below_threshold == "subconscious"
    assert scientist.system_prompt == "You are a careful scientist."
    assert len(settings.personas) == 4


def test_mem8_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(SCIENTIST)
    settings = load_settings(cwd=Path("/nonexistent"), environ={"MEM8_CONFIG": str(path)})
    assert "mem8-scientist-v1" in settings.personas


def test_environment_beats_file_and_flags_beat_environment(tmp_path: Path) -> None:
    (tmp_path / "mem8.toml").write_text("[server]\nport = 9000\ngrid_size = 512\n")
    assert load_settings(cwd=tmp_path, environ={}).port == 9000
    environ = {"MEM8_PORT": "9100", "OLLAMA_API_BASE": "http://ollama:1"}
    settings = load_settings(cwd=tmp_path, environ=environ)
    assert (settings.port, settings.grid_size, settings.ollama_api_base) == (
        9100,
        512,
        "http://ollama:1",
    )
    assert load_settings(cwd=tmp_path, environ=environ, overrides={"port": 9200}).port == 9200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[personas.x\n", "not valid TOML"),
        ("[personas.p]\nname='P'\nmodel='m'\ntemperature=0.5\n", r"personas\.p\.traits: missing"),
        (
            "[personas.p]\nname='P'\nmodel='m'\ntemperature=5\ntraits={openness=0.5}\n",
            r"personas\.p\.temperature: must be between",
        ),
        (
            "[personas.p]\nname='P'\nmodel='m'\ntemperature=0.5\ntraits={openness=2}\n",
            r"personas\.p\.traits\.openness: must be between",
        ),
        (
            "[personas.p]\nname='P'\nmodel='m'\ntemperature=0.5\ntraits={charm=0.5}\n",
            r"personas\.p\.traits\.charm: unknown trait",
        ),
        (
            "[personas.p]\nname='P'\nmodel='m'\ntemperature=0.5\ntraits={}\ncolour='red'\n",
            r"personas\.p\.colour: unknown key",
        ),
        (
            "[personas.p]\nname='P'\nmodel='m'\ntemperature=0.5\ntraits={}\n"
            "below_threshold='sulk'\n",
            r"personas\.p\.below_threshold",
        ),
        ("[server]\nport = 'eighty'\n", r"server\.port: expected int"),
        ("[server]\nspeed = 3\n", r"server\.speed: unknown setting"),
        ("[server]\ngrid_size = 300\n", r"grid_size .*must be one of"),
        ("[extras]\n", "unknown table 'extras'"),
        (
            "[aliases]\n'gpt-4o-mini' = 'mem8-nobody'\n",
            r"aliases\.gpt-4o-mini: must name a persona",
        ),
        ("[aliases]\n'gpt-4o-mini' = 3\n", r"aliases\.gpt-4o-mini: must name a persona"),
        (
            "[aliases]\n'mem8-creative-v1' = 'mem8-technical-v1'\n",
            r"aliases\.mem8-creative-v1: already a persona's id",
        ),
        ("aliases = 'gpt'\n", "'aliases' must be a table"),
    ],
)
def test_a_bad_file_names_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "mem8.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=tmp_path, environ={})
    assert re.search(message, caught.value.message), caught.value.message
    if "grid_size" not in message:
        assert str(tmp_path / "mem8.toml") in caught.value.message


def test_bad_environment_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"\$MEM8_PORT: expected int"):
        load_settings(cwd=Path("/nonexistent"), environ={"MEM8_PORT": "http"})
    with pytest.raises(ConfigError, match="MEM8_LLM_BACKEND"):
        load_settings(cwd=Path("/nonexistent"), environ={"MEM8_LLM_BACKEND": "gpt"})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for f in setting_fields():
        assert f"| {f.name} | `{f.metadata['env']}` |" in readme, f.name
    assert {f.name for f in dataclasses.fields(Settings)} - {f.name for f in setting_fields()} == {
        "personas",
        "aliases",
        "config_path",
    }


def test_aliases_name_personas_and_the_default_persona_is_off_by_default(tmp_path: Path) -> None:
    (tmp_path / "mem8.toml").write_text(
        SCIENTIST + '[aliases]\n"gpt-4o-mini" = "mem8-scientist-v1"\n'
        '"text-embedding-3-small" = "mem8-technical-v1"\n'
    )
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.aliases == {
        "gpt-4o-mini": "mem8-scientist-v1",
        "text-embedding-3-small": "mem8-technical-v1",
    }
    assert settings.default_persona == ""
    chosen = load_settings(cwd=tmp_path, environ={"MEM8_DEFAULT_PERSONA": "mem8-scientist-v1"})
    assert chosen.default_persona == "mem8-scientist-v1"
    with pytest.raises(ConfigError, match=r"default_persona \(MEM8_DEFAULT_PERSONA\): must name"):
        load_settings(cwd=tmp_path, environ={"MEM8_DEFAULT_PERSONA": "gpt-4o"})


def test_the_listen_backlog_is_a_setting_that_reaches_hypercorn() -> None:
    assert hypercorn_config(load_settings(cwd=Path("/nonexistent"), environ={})).backlog == 1024
    chosen = load_settings(cwd=Path("/nonexistent"), environ={"MEM8_BACKLOG": "4096"})
    assert hypercorn_config(chosen).backlog == 4096
    with pytest.raises(ConfigError, match="backlog"):
        load_settings(cwd=Path("/nonexistent"), environ={"MEM8_BACKLOG": "0"})
