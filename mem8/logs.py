"""How mem8 logs: readable lines, or one JSON object a line for a log collector
(MEM8_LOG_FORMAT=json). A record may carry fields of its own (a request's line is made of
them): JSON shows them as keys, a readable line as key=value pairs."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = "mem8_fields"  # the attribute of a record that holds its fields


def configure(level: str, log_format: str = "text") -> None:
    """The root logger's one handler, on stderr, in the format asked for."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def fields(record: logging.LogRecord) -> Mapping[str, object]:
    found: Mapping[str, object] = getattr(record, FIELDS, {})
    return found


def key_values(values: Mapping[str, object]) -> str:
    """`name=value ...`; None is shown as '-', a value that is empty or holds a space, '"' or
    '=' is quoted."""
    return " ".join(f"{name}={_shown(value)}" for name, value in values.items())


def _shown(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c in text for c in ' "=\\\n'):
        return json.dumps(text)
    return text


class JsonLines(logging.Formatter):
    """A record as one JSON object: time (UTC), level, logger, then its fields if it has
    them (they are its message), else its message; and a traceback if one is attached."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        line.update(fields(record) or {"message": record.getMessage()})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
