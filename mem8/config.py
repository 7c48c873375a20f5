"""Settings: defaults < mem8.toml < environment < command-line flags, checked once at start."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mem8.encoders import NAMES
from mem8.errors import ConfigError
from mem8.logs import FORMATS as LOG_FORMATS
from mem8.personas import (
    DEFAULT_REPLY_TOKENS,
    TRAIT_NAMES,
    Persona,
    Traits,
    builtin_personas,
)

RUNTIMES = ("local", "ray")
BACKEND_CHOICES = ("auto", "ollama", "openai", "embedded", "scripted")
ENCODER_CHOICES = NAMES
GRID_SIZES = (64, 128, 256, 512, 1024)
CONFIG_FILE = "mem8.toml"
MIN_CONTEXT = 256  # a context smaller than this holds no useful prompt


def _setting(default: Any, env: str, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every knob of the server; each field's metadata names its variable and says what it does."""

    host: str = _setting("127.0.0.1", "MEM8_HOST", "Address to listen on (0.0.0.0 for all).")
    port: int = _setting(8420, "MEM8_PORT", "TCP port of the HTTP server.")
    storage: str = _setting(
        "mem8_openai_api.db", "MEM8_STORAGE", "SQLite file holding memories and state."
    )
    journal: str = _setting(
        "",
        "MEM8_JOURNAL",
        "Journal directory; empty means beside the storage file, 'off' disables it.",
    )
    journal_segment_bytes: int = _setting(
        16 * 1024 * 1024, "MEM8_JOURNAL_SEGMENT_BYTES", "Size at which a journal segment rotates."
    )
    journal_snapshot_bytes: int = _setting(
        16 * 1024 * 1024,
        "MEM8_JOURNAL_SNAPSHOT_BYTES",
        "Journal records written between snapshots at least (a rotation takes one then).",
    )
    journal_keep_segments: int = _setting(
        4, "MEM8_JOURNAL_KEEP", "Journal segments kept; older ones (covered by a snapshot) go."
    )
    grid_size: int = _setting(256, "MEM8_GRID_SIZE", "Side of the square memory grid.")
    grid_tiles: int = _setting(
        2, "MEM8_GRID_TILES", "Regions per side of the grid (2: 4 GridRegion actors)."
    )
    llm_backend: str = _setting(
        "auto",
        "MEM8_LLM_BACKEND",
        "auto, ollama, openai, embedded or scripted (tests): which LLM backend serves.",
    )
    ollama_api_base: str = _setting(
        "http://localhost:11434", "OLLAMA_API_BASE", "Base URL of the Ollama server."
    )
    openai_api_base: str = _setting(
        "", "OPENAI_API_BASE", "Base URL of an OpenAI-compatible upstream (e.g. .../v1)."
    )
    upstream_api_key: str = _setting(
        "", "MEM8_UPSTREAM_API_KEY", "API key sent to the OpenAI-compatible upstream."
    )
    embedded_model: str = _setting(
        "qwen2.5-coder-0.5b",
        "MEM8_EMBEDDED_MODEL",
        "The embedded model: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m, or a GGUF path.",
    )
    embedded_threads: int = _setting(
        1, "MEM8_EMBEDDED_THREADS", "CPU threads of the embedded model."
    )
    embedded_context: int = _setting(
        2048, "MEM8_EMBEDDED_CONTEXT", "Context window (tokens) of the embedded model."
    )
    embedded_logprobs: bool = _setting(
        False,
        "MEM8_EMBEDDED_LOGPROBS",
        "Let the embedded model give logprobs (keeps every logit: context x vocabulary floats).",
    )
    memory_budget: float = _setting(
        0.25,
        "MEM8_MEMORY_BUDGET",
        "Share of the backend's context that recalled memories may fill in a prompt.",
    )
    ollama_context: int = _setting(
        4096,
        "MEM8_OLLAMA_CONTEXT",
        "Context (tokens) of an Ollama model if its persona sets none: its own, at most this.",
    )
    upstream_context: int = _setting(
        4096,
        "MEM8_UPSTREAM_CONTEXT",
        "Context (tokens) of an upstream model if neither its persona nor the upstream says.",
    )
    encoder: str = _setting(
        "mpnet",
        "MEM8_ENCODER",
        "mpnet (all-mpnet-base-v2: the best recall), minilm (all-MiniLM-L6-v2: 6x faster) or "
        "lexical (hashed words, no model): what places and recalls memories.",
    )
    encoder_threads: int = _setting(
        1, "MEM8_ENCODER_THREADS", "CPU threads of the semantic encoder."
    )
    audio_max_seconds: float = _setting(
        1800.0,
        "MEM8_AUDIO_MAX_SECONDS",
        "Longest audio transcribed, checked before and while decoding (else 413).",
    )
    audio_threads: int = _setting(1, "MEM8_AUDIO_THREADS", "CPU threads of speech recognition.")
    extract_seconds: float = _setting(
        120.0, "MEM8_EXTRACT_SECONDS", "Seconds reading one uploaded file may take."
    )
    extract_memory_mb: int = _setting(
        1024, "MEM8_EXTRACT_MEMORY_MB", "Memory (MiB) the child process reading a file may use."
    )
    requests_per_minute: int = _setting(
        0,
        "MEM8_REQUESTS_PER_MINUTE",
        "Requests a key may make in any minute (0: no limit); a key's own limit overrides it.",
    )
    tokens_per_minute: int = _setting(
        0,
        "MEM8_TOKENS_PER_MINUTE",
        "Chat tokens (prompt and reply) a key may use in any minute (0: no limit).",
    )
    streams_per_key: int = _setting(
        0, "MEM8_STREAMS_PER_KEY", "Streamed chats a key may have open at once (0: no limit)."
    )
    insecure: bool = _setting(
        False,
        "MEM8_INSECURE",
        "Serve on a non-loopback address without API keys (anyone who can reach it can read "
        "every memory).",
    )
    file_max_chunks: int = _setting(
        2000,
        "MEM8_FILE_MAX_CHUNKS",
        "Chunks (up to 1,200 characters each) of one uploaded file read into memory; the "
        "rest is stored but not read, and the file's details say so.",
    )
    backend_timeout: float = _setting(
        600.0, "MEM8_BACKEND_TIMEOUT", "Seconds an LLM backend may take to answer."
    )
    ask_timeout: float = _setting(
        30.0, "MEM8_ASK_TIMEOUT", "Seconds a caller waits for an actor to accept a message."
    )
    mailbox_size: int = _setting(64, "MEM8_MAILBOX_SIZE", "Messages an actor's mailbox holds.")
    actor_wire: str = _setting(
        "objects",
        "MEM8_ACTOR_WIRE",
        "objects (pass messages in-process) or msgpack (encode at every hop).",
    )
    runtime: str = _setting(
        "local",
        "MEM8_RUNTIME",
        "local (every actor in this process) or ray (grid regions and personas in Ray actors).",
    )
    ray_address: str = _setting(
        "",
        "MEM8_RAY_ADDRESS",
        "The Ray cluster to join with runtime ray (empty: start a local one).",
    )
    max_body_bytes: int = _setting(
        32 * 1024 * 1024, "MEM8_MAX_BODY_BYTES", "Largest request body accepted (else 413)."
    )
    allowed_hosts: str = _setting(
        "",
        "MEM8_ALLOWED_HOSTS",
        "Host names (comma-separated, '*' any) served besides localhost, 127.0.0.1 and [::1]; "
        "empty: those alone on a loopback address, any Host elsewhere.",
    )
    cors_origins: str = _setting(
        "",
        "MEM8_CORS_ORIGINS",
        "Browser origins (comma-separated, e.g. http://localhost:3000; '*' any) that get CORS "
        "headers; requests from any other origin are refused.",
    )
    max_chat_body_bytes: int = _setting(
        4 * 1024 * 1024,
        "MEM8_MAX_CHAT_BODY_BYTES",
        "Largest chat completion request body (else 413).",
    )
    max_message_chars: int = _setting(
        500_000,
        "MEM8_MAX_MESSAGE_CHARS",
        "Most characters in one chat message (else 400): more than any context holds.",
    )
    window_conversations: int = _setting(
        10_000,
        "MEM8_WINDOW_CONVERSATIONS",
        "Conversations whose rolling window is kept (the least recently used go first).",
    )
    window_chars: int = _setting(
        16_000_000,
        "MEM8_WINDOW_CHARS",
        "Characters all rolling windows hold together (the least recently used go first).",
    )
    window_idle_seconds: float = _setting(
        7 * 86400.0,
        "MEM8_WINDOW_IDLE_SECONDS",
        "Seconds a conversation's window is kept after its last answered request.",
    )
    idempotency_seconds: float = _setting(
        86400.0,
        "MEM8_IDEMPOTENCY_SECONDS",
        "Seconds a chat's Idempotency-Key is remembered (a retry gets the first answer).",
    )
    backlog: int = _setting(
        1024,
        "MEM8_BACKLOG",
        "Connections the kernel queues while the server is busy (hypercorn's default of 100 "
        "overflowed under bursts; the kernel caps it at net.core.somaxconn).",
    )
    shutdown_grace: float = _setting(
        10.0, "MEM8_SHUTDOWN_GRACE", "Seconds in-flight streams get to finish on SIGINT/SIGTERM."
    )
    log_level: str = _setting("INFO", "MEM8_LOG_LEVEL", "Logging level.")
    log_format: str = _setting(
        "text",
        "MEM8_LOG_FORMAT",
        "text (readable lines; a request's as key=value pairs) or json (one JSON object a line).",
    )
    sim_runs: str = _setting(
        "runs",
        "MEM8_SIM_RUNS",
        "Folder whose simulation runs (`mem8 sim run --out`, default runs/NAME-seedN) the "
        "dashboard lists, relative to where the server starts.",
    )
    default_persona: str = _setting(
        "",
        "MEM8_DEFAULT_PERSONA",
        "Persona that answers a model name that is neither a persona nor an alias (empty: such "
        "a name is a 404, as the spec says).",
    )
    aliases: Mapping[str, str] = field(
        default_factory=dict,
        metadata={"doc": "Model names clients already send ([aliases] of mem8.toml): persona ids."},
    )
    personas: Mapping[str, Persona] = field(
        default_factory=builtin_personas,
        metadata={"doc": "Personas: the built-in three plus [personas.ID] tables of mem8.toml."},
    )
    config_path: str = field(default="", metadata={"doc": "The mem8.toml that was read, if any."})

    def journal_dir(self) -> Path | None:
        """Where the journal lives, or None when it is off."""
        if self.journal.lower() == "off":
            return None
        if self.journal:
            return Path(self.journal)
        return Path(self.storage + ".journal")


def setting_fields() -> list[dataclasses.Field[Any]]:
    """The settings that come from the environment (all but personas and config_path)."""
    return [f for f in dataclasses.fields(Settings) if "env" in f.metadata]


def load_settings(
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds the settings from defaults, the config file, the environment and flag overrides."""
    environ = os.environ if environ is None else environ
    path = _config_path(cwd or Path.cwd(), environ)
    values: dict[str, Any] = {}
    personas = builtin_personas()
    if path is not None:
        document = _read_toml(path)
        values.update(_server_table(path, document))
        personas.update(_persona_tables(path, document))
        values["aliases"] = _alias_table(path, document, personas)
        values["config_path"] = str(path)
    for f in setting_fields():
        if f.metadata["env"] in environ:
            values[f.name] = _coerce(f, environ[f.metadata["env"]], f"${f.metadata['env']}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(_field(name), value, f"--{name.replace('_', '-')}")
    settings = Settings(**values, personas=personas)
    _validate(settings)
    return settings


def _config_path(cwd: Path, environ: Mapping[str, str]) -> Path | None:
    if environ.get("MEM8_CONFIG"):
        path = Path(environ["MEM8_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"MEM8_CONFIG names {path}, which is not a readable file")
        return path
    candidate = cwd / CONFIG_FILE
    return candidate if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the file: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


def _server_table(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    unknown = set(document) - {"server", "personas", "aliases"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown table {sorted(unknown)[0]!r} (expected server, personas, aliases)"
        )
    table = document.get("server", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'server' must be a table")
    return {
        name: _coerce(_field(name, path), v, f"{path}: server.{name}") for name, v in table.items()
    }


def _field(name: str, path: Path | None = None) -> dataclasses.Field[Any]:
    for f in setting_fields():
        if f.name == name:
            return f
    where = f"{path}: server.{name}" if path else name
    raise ConfigError(f"{where}: unknown setting")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(f: dataclasses.Field[Any], value: Any, where: str) -> Any:
    kind: Any = type(f.default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    try:
        result = kind(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from error
    if isinstance(result, float) and not math.isfinite(result):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return result


def _persona_tables(path: Path, document: dict[str, Any]) -> dict[str, Persona]:
    tables = document.get("personas", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'personas' must be a table of [personas.ID] tables")
    return {pid: persona_from_table(path, pid, table) for pid, table in tables.items()}


def _alias_table(
    path: Path, document: dict[str, Any], personas: Mapping[str, Persona]
) -> dict[str, str]:
    """[aliases]: a model name clients send (`"gpt-4o-mini"`) to the persona that answers it."""
    table = document.get("aliases", {})
    if not isinstance(table, dict):
        raise ConfigError(f'{path}: \'aliases\' must be a table of "model name" = "persona id"')
    for alias, target in table.items():
        where = f"{path}: aliases.{alias}"
        if not alias.strip() or alias != alias.strip():
            raise ConfigError(f"{where}: an alias must be non-empty, without outer spaces")
        if alias in personas:
            raise ConfigError(f"{where}: already a persona's id; an alias cannot hide it")
        if not isinstance(target, str) or target not in personas:
            raise ConfigError(
                f"{where}: must name a persona ({', '.join(sorted(personas))}), got {target!r}"
            )
    return dict(table)


_PERSONA_KEYS = {
    "max_tokens",
    "context",
    "name",
    "traits",
    "model",
    "temperature",
    "interest_threshold",
    "below_threshold",
    "system_prompt",
}


def persona_from_table(path: Path, pid: str, table: Any) -> Persona:
    """A persona as a [personas.ID] table of `path` defines it (ConfigError naming the key)."""
    where = f"{path}: personas.{pid}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    if not pid or any(c.isspace() or c == "/" for c in pid):
        raise ConfigError(f"{where}: the persona id must be non-empty, without spaces or '/'")
    unknown = set(table) - _PERSONA_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
    for key in ("name", "traits", "model", "temperature"):
        if key not in table:
            raise ConfigError(f"{where}.{key}: missing (required)")
    name = _string(table["name"], f"{where}.name")
    model = _string(table["model"], f"{where}.model")
    temperature = _number(table["temperature"], f"{where}.temperature", 0.0, 2.0)
    threshold = _number(table.get("interest_threshold", 0.7), f"{where}.interest_threshold", 0, 1)
    below = table.get("below_threshold", "respond")
    if below not in ("respond", "subconscious"):
        raise ConfigError(
            f"{where}.below_threshold: must be 'respond' or 'subconscious', got {below!r}"
        )
    prompt = table.get("system_prompt", f"You are {name}.")
    max_tokens = _whole(table.get("max_tokens", DEFAULT_REPLY_TOKENS), f"{where}.max_tokens", 1)
    context = table.get("context")
    if context is not None:
        context = _whole(context, f"{where}.context", MIN_CONTEXT)
    return Persona(
        id=pid,
        name=name,
        traits=_traits(table["traits"], f"{where}.traits"),
        model=model,
        temperature=temperature,
        system_prompt=_string(prompt, f"{where}.system_prompt"),
        interest_threshold=threshold,
        below_threshold=below,
        max_tokens=max_tokens,
        context=context,
        created=int(path.stat().st_mtime),
    )


def _traits(value: Any, where: str) -> Traits:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table of the Big Five ({', '.join(TRAIT_NAMES)})")
    unknown = set(value) - set(TRAIT_NAMES)
    if unknown:
        raise ConfigError(
            f"{where}.{sorted(unknown)[0]}: unknown trait (expected {', '.join(TRAIT_NAMES)})"
        )
    return Traits(**{k: _number(v, f"{where}.{k}", 0.0, 1.0) for k, v in value.items()})


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _whole(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: must be a whole number, got {value!r}")
    if value < low:
        raise ConfigError(f"{where}: must be at least {low}, got {value!r}")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}: must be between {low} and {high}, got {value!r}")
    return float(value)


def _validate(settings: Settings) -> None:
    if settings.llm_backend not in BACKEND_CHOICES:
        raise ConfigError(
            f"llm_backend (MEM8_LLM_BACKEND): must be one of {', '.join(BACKEND_CHOICES)}, "
            f"got {settings.llm_backend!r}"
        )
    if settings.encoder not in ENCODER_CHOICES:
        raise ConfigError(
            f"encoder (MEM8_ENCODER): must be one of {', '.join(ENCODER_CHOICES)}, "
            f"got {settings.encoder!r}"
        )
    if settings.actor_wire not in ("objects", "msgpack"):
        raise ConfigError(
            f"actor_wire (MEM8_ACTOR_WIRE): must be objects or msgpack, got {settings.actor_wire!r}"
        )
    if settings.runtime not in RUNTIMES:
        raise ConfigError(
            f"runtime (MEM8_RUNTIME): must be {' or '.join(RUNTIMES)}, got {settings.runtime!r}"
        )
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"log_format (MEM8_LOG_FORMAT): must be text or json, got {settings.log_format!r}"
        )
    if settings.grid_size not in GRID_SIZES:
        raise ConfigError(
            f"grid_size (MEM8_GRID_SIZE): must be one of {', '.join(map(str, GRID_SIZES))}, "
            f"got {settings.grid_size}"
        )
    if settings.grid_tiles not in (1, 2, 4, 8) or settings.grid_size % settings.grid_tiles:
        raise ConfigError(
            f"grid_tiles (MEM8_GRID_TILES): must be 1, 2, 4 or 8, got {settings.grid_tiles}"
        )
    if settings.backlog < 1:
        raise ConfigError(f"backlog (MEM8_BACKLOG): must be at least 1, got {settings.backlog}")
    if not 0 <= settings.port < 65536:  # 0: any free port
        raise ConfigError(f"port (MEM8_PORT): must be between 0 and 65535, got {settings.port}")
    positive = (
        "embedded_threads",
        "embedded_context",
        "ollama_context",
        "upstream_context",
        "encoder_threads",
        "audio_max_seconds",
        "audio_threads",
        "extract_seconds",
        "extract_memory_mb",
        "file_max_chunks",
        "mailbox_size",
        "max_body_bytes",
        "journal_segment_bytes",
        "journal_snapshot_bytes",
        "journal_keep_segments",
        "backend_timeout",
        "ask_timeout",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            env = _field(name).metadata["env"]
            raise ConfigError(f"{name} ({env}): must be positive, got {getattr(settings, name)}")
    for name in ("requests_per_minute", "tokens_per_minute", "streams_per_key"):
        if getattr(settings, name) < 0:
            env = _field(name).metadata["env"]
            raise ConfigError(f"{name} ({env}): must be 0 (no limit) or more")
    if not 0.0 <= settings.memory_budget <= 1.0:
        raise ConfigError(
            f"memory_budget (MEM8_MEMORY_BUDGET): must be between 0 and 1, got "
            f"{settings.memory_budget}"
        )
    if settings.default_persona and settings.default_persona not in settings.personas:
        raise ConfigError(
            f"default_persona (MEM8_DEFAULT_PERSONA): must name a persona "
            f"({', '.join(sorted(settings.personas))}), got {settings.default_persona!r}"
        )
    if settings.llm_backend == "openai" and not settings.openai_api_base:
        raise ConfigError(
            "llm_backend 'openai' needs an upstream: set OPENAI_API_BASE or server.openai_api_base"
        )
