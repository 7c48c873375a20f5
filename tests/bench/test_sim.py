"""`bench sim` with tiny sizes: its generated scenario, and its figures as JSON; its Ray mode on
a tiny scenario and one worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import sim
from tests.sim.conftest import TINY


def test_the_generated_scenario_talks_in_pairs_for_the_turns_asked() -> None:
    plan = sim.scenario(5, 10, 0.0, 13, "lexical")
    assert sorted(plan.personas) == ["p000", "p001", "p002", "p003", "p004"]
    talks = [event.action for event in plan.events]
    assert sum(talk.turns for talk in talks) == 10  # type: ignore[union-attr]
    assert all(talk.first != talk.second for talk in talks)  # type: ignore[union-attr]
    assert plan.events[-1].at < plan.end
    assert sim.scenario(5, 10, 0.0, 13, "lexical") == plan  # seeded


def test_the_bench_measures_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    sim.main(["--sizes", "2:8,3:12", "--encoder-turns", "0", "--json"])
    found = json.loads(capsys.readouterr().out)
    assert found["encoder"] is None
    assert [(r["personas"], r["turns"]) for r in found["sizes"]] == [(2, 8), (3, 12)]
    for figures in found["sizes"]:
        assert figures["memories"] == 2 * figures["turns"]  # threshold 0: every turn remembered
        assert figures["turns_per_second"] > 0 and figures["peak_rss_mb"] > 0
        assert 0.0 < figures["mem8_share"] <= 1.0
        assert figures["buckets"][0]["memories"] == [0, 1000]


def test_the_report_prints_the_anchor_and_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    figures = sim.measure(2, 8, 0.0, 13, "lexical")
    sim.report([figures], {"encoder": "mpnet", "error": "not installed"})
    shown = capsys.readouterr().out
    assert "Smallville took 13 hours for 3,665 steps" in shown
    assert "run --sizes 10:10000" in shown
    assert "encoder mpnet: not measured (not installed)" in shown


def test_the_ray_mode_rates_whole_scenarios_against_this_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(TINY, encoding="utf-8")
    arguments = ["--runtime", "ray", "--scenarios", str(tiny), "--repeat", "2", "--rounds", "1"]
    sim.main([*arguments, "--workers", "1", "--json"])
    found = json.loads(capsys.readouterr().out)
    assert found["scenarios"] == ["tiny"] and found["batch"] == 2
    (row,) = found["rounds"]
    assert row["in_process"] > 0 and row["ray"]["1"] > 0 and row["start"]["1"] > 0
    assert found["median"]["ratio"]["1"] == row["ray"]["1"] / row["in_process"]
