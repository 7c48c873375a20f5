"""The `mem8` command: serve, replay, and look into the storage file (status, memory, performance,
grid png). Errors become a readable line and an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import trio

from mem8 import cli_memory, errors, heatmap, logs
from mem8.config import BACKEND_CHOICES, RUNTIMES, Settings, load_settings
from mem8.encoders import open_encoder
from mem8.grid.dynamics import DAY
from mem8.grid.threads import configure_threads
from mem8.memory import MODALITIES, Memory
from mem8.reencoding import check_encoder
from mem8.storage.sqlite import MemoryStore

ANONYMOUS = "anonymous"  # the tenant of a call with no key (mem8.http.context.ANONYMOUS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mem8", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the OpenAI-compatible API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; MEM8_HOST)")
    serve.add_argument("--port", type=int, help="TCP port (default 8420; MEM8_PORT)")
    serve.add_argument(
        "--backend",
        dest="llm_backend",
        choices=BACKEND_CHOICES,
        help="LLM backend for every persona (default auto; MEM8_LLM_BACKEND)",
    )
    serve.add_argument("--storage", help="SQLite storage file (MEM8_STORAGE)")
    serve.add_argument("--journal", help="journal directory, or 'off' (MEM8_JOURNAL)")
    serve.add_argument("--grid-size", dest="grid_size", type=int, help="grid side (MEM8_GRID_SIZE)")
    serve.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        help="serve a non-loopback address without API keys (MEM8_INSECURE)",
    )
    serve.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="where grid regions and personas run: here, or in Ray actors (MEM8_RUNTIME)",
    )
    serve.add_argument(
        "--ray-address",
        dest="ray_address",
        help="the Ray cluster to join (default: start a local one; MEM8_RAY_ADDRESS)",
    )
    serve.set_defaults(run=_serve)

    mcp = commands.add_parser(
        "mcp",
        help="serve the memory to an MCP client over stdio (a running server has it on /mcp)",
        parents=[_storage_flag()],
    )
    mcp.add_argument(
        "--tenant",
        default=os.environ.get("MEM8_MCP_TENANT", ANONYMOUS),
        help="whose memory: a key's name, or without keys the tenant a bearer key names "
        f"(default: MEM8_MCP_TENANT, else '{ANONYMOUS}', the tenant of a call with no key)",
    )
    mcp.set_defaults(run=_mcp)

    replay = commands.add_parser("replay", help="replay a journal and check it reproduces")
    replay.add_argument("journal", type=Path, help="the journal directory")
    replay.set_defaults(run=_replay)

    storage = _storage_flag()
    status = commands.add_parser(
        "status", parents=[storage], help="memories, active patterns, grid use, decay, size"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)
    _add_memory_commands(commands.add_parser("memory", help="list, search, forget, export"))
    performance = commands.add_parser(
        "performance", parents=[storage, _grid_flag()], help="quick timings on this machine"
    )
    performance.add_argument("--json", action="store_true", help="machine-readable output")
    performance.set_defaults(run=_performance)
    _add_grid_commands(commands.add_parser("grid", help="pictures of the memory grid"))
    _add_key_commands(
        commands.add_parser("keys", help="API keys: create, list, revoke, rotate, limit")
    )
    simulation = commands.add_parser("sim", help="scripted multi-persona simulations (sims/)")
    _add_sim_commands(simulation)
    return parser


def _add_key_commands(parser: argparse.ArgumentParser) -> None:
    from mem8 import cli_keys

    cli_keys.add_commands(parser)


def _add_sim_commands(parser: argparse.ArgumentParser) -> None:
    from mem8.sim import commands

    commands.add_commands(parser)
    parser.set_defaults(run=commands.main)


def _storage_flag() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--storage", help="SQLite storage file (MEM8_STORAGE)")
    return flags


def _grid_flag() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--grid-size", dest="grid_size", type=int, help="grid side (MEM8_GRID_SIZE)")
    return flags


def _filter_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--persona", help="only this persona")
    flags.add_argument("--user", help="only this end user")
    flags.add_argument("--tenant", help="only this tenant (default: every tenant)")
    flags.add_argument("--modality", choices=MODALITIES, help="only this modality")
    return flags


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


_FORGET_NOTE = (
    "The memory actor of a system run headless forgets it, as the server's would. A running "
    "server keeps the memory in its in-memory grid index until it restarts, and its journal "
    "does not see this deletion: while serving, forget through DELETE /v1/memories/{id} instead."
)


def _add_memory_commands(memory: argparse.ArgumentParser) -> None:
    actions = memory.add_subparsers(dest="action", required=True)
    storage, filters = _storage_flag(), _filter_flags()
    listing = actions.add_parser(
        "list", parents=[storage, filters], help="the newest memories, newest last"
    )
    listing.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="a JSON array of memory objects")
    listing.set_defaults(run=_memory_list)
    search = actions.add_parser(
        "search", parents=[storage, filters], help="memories resonating with a text, best first"
    )
    search.add_argument("query", help="the text to search for")
    search.add_argument("--limit", type=_positive, default=10, help="how many (default 10)")
    search.add_argument("--json", action="store_true", help="a JSON array of memory objects")
    search.set_defaults(run=_memory_search)
    forget = actions.add_parser(
        "forget", parents=[storage], help="delete one memory", description=_FORGET_NOTE
    )
    forget.add_argument("memory_id", metavar="ID", help="the memory's id")
    forget.add_argument("--tenant", help="its tenant (default: found by the id)")
    forget.set_defaults(run=_memory_forget)
    export = actions.add_parser(
        "export", parents=[storage, filters], help="memories as JSONL, with tenant and vector"
    )
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(run=_memory_export)


def _add_grid_commands(grid: argparse.ArgumentParser) -> None:
    actions = grid.add_subparsers(dest="action", required=True)
    picture = actions.add_parser(
        "png",
        parents=[_storage_flag(), _grid_flag()],
        help="a heatmap of |field| with the memories' centres marked",
    )
    picture.add_argument(
        "--output", type=Path, default=Path("grid.png"), help="PNG file (default grid.png)"
    )
    picture.add_argument(
        "--scale", type=_positive, help="pixels per cell (default: about 768 pixels a side)"
    )
    picture.set_defaults(run=_grid_png)


def main(argv: Sequence[str] | None = None) -> int:
    configure_threads()  # this process's numba threads, before any kernel runs
    arguments = _parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except errors.ConfigError as error:
        print(f"mem8: configuration error: {error.message}", file=sys.stderr)
        return 2
    except errors.Mem8Error as error:
        print(f"mem8: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mem8 memory export | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _serve(arguments: argparse.Namespace) -> int:
    from mem8.server import serve

    overrides = {
        key: getattr(arguments, key, None)
        for key in (
            "host",
            "port",
            "llm_backend",
            "storage",
            "journal",
            "grid_size",
            "insecure",
            "runtime",
            "ray_address",
        )
    }
    settings = load_settings(overrides=overrides)
    logs.configure(settings.log_level, settings.log_format)
    logging.getLogger("mem8").info(
        "configuration: %s", settings.config_path or "built-in defaults (no mem8.toml)"
    )
    trio.run(partial(serve, settings))
    return 0


def _mcp(arguments: argparse.Namespace) -> int:
    """The memory as MCP tools over stdin/stdout, in a headless system beside any server: it
    keeps no journal and leaves the saved state alone, and a server on the same store recalls
    what it keeps from its next start on."""
    from mem8.http.mcp import memory_server, stdio_tenant
    from mem8.system import open_system

    logs.configure("WARNING")  # stderr: stdout carries the protocol
    settings = _settings(arguments)

    async def run() -> None:
        async with open_system(settings, journal=False, persist=False, chat=False) as system:
            await memory_server(system, stdio_tenant(arguments.tenant)).run_stdio_async()

    trio.run(run)
    return 0


def _replay(arguments: argparse.Namespace) -> int:
    from mem8.replay import replay

    logs.configure("WARNING")
    report = trio.run(replay, arguments.journal)
    print(report.summary())
    return 0 if report.ok else 1


# --- looking into the storage file ---------------------------------------------------------------


def _settings(arguments: argparse.Namespace) -> Settings:
    overrides = {key: getattr(arguments, key, None) for key in ("storage", "grid_size")}
    return load_settings(overrides=overrides)


@contextmanager
def _opened(settings: Settings) -> Iterator[MemoryStore]:
    with cli_memory.open_existing(Path(settings.storage)) as store:
        yield store


def _filter(arguments: argparse.Namespace) -> cli_memory.MemoryFilter:
    return cli_memory.MemoryFilter(
        tenant=arguments.tenant,
        persona=arguments.persona,
        user=arguments.user,
        modality=arguments.modality,
    )


def _status(arguments: argparse.Namespace) -> int:
    with _opened(_settings(arguments)) as store:
        report = cli_memory.status(store, time.time())
    if arguments.json:
        _print_json(report.as_json())
    else:
        print("\n".join(_status_lines(report)))
    return 0


def _status_lines(report: cli_memory.Status) -> list[str]:
    stats = report.stats
    modalities = ", ".join(f"{name} {count}" for name, count in stats.by_modality.items())
    personas = ", ".join(f"{name} {count}" for name, count in stats.by_persona.items()) or "none"
    decaying = stats.memories - stats.consolidated
    decay = (
        "none (no memory still decays)"
        if stats.average_tau is None
        else f"{stats.average_tau / DAY:.1f} days (time constant, over the {decaying} "
        "memories that still decay)"
    )
    return [
        f"storage        {report.path} ({_size(stats.size_bytes)}, file + WAL)",
        f"memories       {stats.memories} ({modalities})",
        f"  by persona   {personas}",
        f"active         {report.active_patterns} patterns (decayed less than "
        f"{1 - cli_memory.ACTIVE_FADING:.0%})",
        f"consolidated   {stats.consolidated} (never decay)",
        f"average decay  {decay}",
        f"grid           {_grid_use(report)}",
    ]


def _grid_use(report: cli_memory.Status) -> str:
    field = report.field
    if field is None or report.utilisation is None:
        return "no field saved (the server saves it at a clean stop)"
    share = f"{report.utilisation:.1%}"
    return (
        f"{share} of cells in use (|field| above {cli_memory.OCCUPIED_SHARE:.0%} of its peak), "
        f"{field.grid_size} x {field.grid_size} in {field.tiles} x {field.tiles} regions, "
        "as saved at the last clean stop"
    )


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _memory_list(arguments: argparse.Namespace) -> int:
    with _opened(_settings(arguments)) as store:
        memories = cli_memory.newest(store, _filter(arguments), arguments.limit)
    if arguments.json:
        _print_json([cli_memory.shown(memory) for memory in memories])
    elif memories:
        print(_table(_MEMORY_HEADER, [_memory_row(memory) for memory in memories]))
    else:
        print("no memories match")
    return 0


def _memory_search(arguments: argparse.Namespace) -> int:
    settings = _settings(arguments)
    encoder = open_encoder(settings.encoder, settings.encoder_threads)
    with _opened(settings) as store:
        check_encoder(store, encoder)
        hits = cli_memory.search(
            store, encoder, arguments.query, _filter(arguments), arguments.limit, time.time()
        )
    if arguments.json:
        _print_json([cli_memory.shown(memory, score) for memory, score in hits])
    elif hits:
        rows = [[f"{score:.3f}", *_memory_row(memory)] for memory, score in hits]
        print(_table(("score", *_MEMORY_HEADER), rows))
    else:
        print("no memories match")
    return 0


def _memory_forget(arguments: argparse.Namespace) -> int:
    logs.configure("WARNING")  # the headless system's start is not news
    settings = _settings(arguments)
    tenant = trio.run(cli_memory.forget, settings, arguments.memory_id, arguments.tenant)
    print(f"forgot {arguments.memory_id} (tenant {tenant})")
    return 0


def _memory_export(arguments: argparse.Namespace) -> int:
    with _opened(_settings(arguments)) as store:
        memories = cli_memory.matching(store, _filter(arguments))
        if arguments.output is None:
            _write_lines(sys.stdout, cli_memory.export_lines(memories))
            return 0
        with _created(arguments.output) as output:
            count = _write_lines(output, cli_memory.export_lines(memories))
    print(f"exported {count} memories to {arguments.output}")
    return 0


def _write_lines(output: TextIO, lines: Iterator[str]) -> int:
    count = 0
    for line in lines:
        output.write(line + "\n")
        count += 1
    return count


@contextmanager
def _created(path: Path) -> Iterator[TextIO]:
    try:
        output = path.open("w", encoding="utf-8")
    except OSError as error:
        raise errors.Mem8Error(f"Cannot write {path}: {error.strerror}") from error
    with output:
        yield output


_MEMORY_HEADER = ("id", "created", "persona", "user", "modality", "imp", "v/a/d", "text")


def _memory_row(memory: Memory) -> list[str]:
    emotion = memory.emotion
    return [
        memory.id,
        datetime.fromtimestamp(memory.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        memory.scope.persona,
        memory.scope.user,
        memory.modality,
        f"{memory.importance:.2f}",
        f"{emotion.valence:+.2f}/{emotion.arousal:.2f}/{emotion.dominance:.2f}",
        _excerpt(memory.text),
    ]


def _excerpt(text: str, length: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]]
        )
        for line in lines
    )


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _performance(arguments: argparse.Namespace) -> int:
    settings = _settings(arguments)
    encoder = open_encoder(settings.encoder, settings.encoder_threads)
    with _opened(settings) as store:
        report = cli_memory.performance(store, encoder, settings.grid_size, settings.grid_tiles)
    if arguments.json:
        _print_json(report.as_json())
    else:
        print("\n".join(_performance_lines(report, settings)))
    return 0


def _performance_lines(report: cli_memory.Performance, settings: Settings) -> list[str]:
    recall = report.recall
    return [
        f"storage      {settings.storage}",
        f"encoder      {report.texts_per_second:,.0f} texts/s ({report.encoder}, "
        f"{report.dimensions} dimensions)",
        f"recall       p50 {recall.p50 * 1e3:.3f} ms, p99 {recall.p99 * 1e3:.3f} ms: brute force "
        f"over {recall.memories:,} {recall.source}",
        f"grid step    {_grid_timing(report.grid)}",
    ]


def _grid_timing(grid: cli_memory.GridTiming) -> str:
    if grid.step is None or grid.first_call is None:
        return grid.unavailable or "grid kernels unavailable"
    edge = grid.grid_size // grid.tiles
    return (
        f"{grid.step * 1e3:.3f} ms per propagate step of the {grid.grid_size} x {grid.grid_size} "
        f"grid ({grid.tiles * grid.tiles} regions of {edge} x {edge}); first step "
        f"{grid.first_call:.2f} s (numba compiling or loading its cache)"
    )


def _grid_png(arguments: argparse.Namespace) -> int:
    settings = _settings(arguments)
    with _opened(settings) as store:
        view = cli_memory.field_view(store, settings.grid_size)
    scale = arguments.scale or heatmap.default_scale(settings.grid_size)
    image = heatmap.heatmap(view.magnitude, view.centres, scale)
    try:
        arguments.output.write_bytes(heatmap.png(image))
    except OSError as error:
        raise errors.Mem8Error(f"Cannot write {arguments.output}: {error.strerror}") from error
    height, width, _ = image.shape
    print(
        f"wrote {arguments.output} ({width} x {height} pixels, {scale} per cell): |field| "
        f"{view.origin}, log scale, {len(view.centres)} memories marked with red crosses"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
