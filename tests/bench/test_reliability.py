"""`bench reliability` runs against a real server: its cheapest parts, with tiny sizes."""

from __future__ import annotations

import json

import pytest

from bench import reliability


def test_the_crash_and_rate_parts_run_and_report(capsys: pytest.CaptureFixture[str]) -> None:
    flags = "--only crash,rate --encoder lexical --json --crash-chats 20 --crash-concurrency 4"
    flags += " --rate-concurrency 1 --rate-seconds 2"
    assert reliability.main(flags.split()) == 0
    figures = json.loads(capsys.readouterr().out)
    crash, rate = figures["crash"], figures["rate"]
    assert figures["setup"]["encoder"] == "lexical"
    assert crash["tried"] >= crash["acknowledged"] >= 10
    assert crash["acknowledged_but_missing"] == 0 and crash["duplicates"] == 0
    assert crash["replay_exit_code"] == 0, crash["replay_summary"]
    assert "runs verified: 2 (restarts: 1, after a crash: 1)" in crash["replay_summary"]
    assert rate["writing_c1_chats_per_s"] > 0 and rate["non_writing_c1_chats_per_s"] > 0
