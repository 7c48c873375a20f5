"""The log's two formats: key=value pairs that stay one parseable line, and JSON lines."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from mem8.config import load_settings
from mem8.errors import ConfigError
from mem8.logs import FIELDS, JsonLines, key_values


def record(message: str, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "mem8.test", "levelname": "INFO", "msg": message, **extra}
    )


def test_key_values_quote_what_would_break_the_line() -> None:
    line = key_values({"route": "health", "persona": "", "ttft_ms": None, "tenant": 'a b"c'})
    assert line == 'route=health persona="" ttft_ms=- tenant="a b\\"c"'


def test_a_json_line_holds_a_records_fields_or_its_message() -> None:
    fields = {"request_id": "r1", "status": 200}
    with_fields = json.loads(JsonLines().format(record("ignored", **{FIELDS: fields})))
    assert with_fields["request_id"] == "r1" and with_fields["status"] == 200
    assert "message" not in with_fields and with_fields["logger"] == "mem8.test"
    plain = json.loads(JsonLines().format(record("mem8 stopped")))
    assert plain["message"] == "mem8 stopped" and plain["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "unhandled", "exc_info": sys.exc_info()})
    assert "ValueError: boom" in json.loads(JsonLines().format(failed))["exception"]


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="MEM8_LOG_FORMAT"):
        load_settings(cwd=Path("/nonexistent"), environ={"MEM8_LOG_FORMAT": "xml"})
