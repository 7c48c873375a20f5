"""The `mem8` command: serve, replay. Errors become a readable line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from mem8 import errors
from mem8.config import BACKEND_CHOICES, load_settings


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
    serve.set_defaults(run=_serve)

    replay = commands.add_parser("replay", help="replay a journal and check it reproduces")
    replay.add_argument("journal", type=Path, help="the journal directory")
    replay.set_defaults(run=_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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


def _serve(arguments: argparse.Namespace) -> int:
    from mem8.server import serve

    overrides = {
        key: getattr(arguments, key, None)
        for key in ("host", "port", "llm_backend", "storage", "journal", "grid_size")
    }
    settings = load_settings(overrides=overrides)
    _configure_logging(settings.log_level)
    trio.run(partial(serve, settings))
    return 0


def _replay(arguments: argparse.Namespace) -> int:
    from mem8.replay import replay

    _configure_logging("WARNING")
    report = trio.run(replay, arguments.journal)
    print(report.summary())
    return 0 if report.ok else 1


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


if __name__ == "__main__":
    sys.exit(main())
