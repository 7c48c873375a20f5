"""`mem8 sim sweep`: a run per value and seed, each in its own directory, and their figures
with the spread across seeds in sweep.json, sweep.html and a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mem8 import cli
from mem8.errors import ConfigError
from mem8.sim import sweep
from mem8.sim.scenario import load


def test_a_sweep_runs_each_value_and_seed_and_sums_them_up(
    scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    vary = ["--vary", "bob.openness=0.2..0.8:2", "--seeds", "2", "--jobs", "2"]
    assert cli.main(["sim", "sweep", str(scenario_file), *vary, "--out", str(out)]) == 0
    document = json.loads((out / sweep.SWEEP_JSON).read_text(encoding="utf-8"))
    assert document["seeds"] == [3, 4]
    assert document["vary"] == [{"persona": "bob", "name": "openness", "values": [0.2, 0.8]}]
    assert [(r["values"], r["seed"]) for r in document["runs"]] == [
        ({"bob.openness": 0.2}, 3),
        ({"bob.openness": 0.2}, 4),
        ({"bob.openness": 0.8}, 3),
        ({"bob.openness": 0.8}, 4),
    ]
    for run in document["runs"]:
        record = json.loads((out / run["dir"] / "run.json").read_text(encoding="utf-8"))
        assert record["varied"] == run["values"] and record["seed"] == run["seed"]
        assert set(run["metrics"]["personas"]) == {"ada", "bob"}
    assert [p["values"] for p in document["points"]] == [
        {"bob.openness": 0.2},
        {"bob.openness": 0.8},
    ]
    for point in document["points"]:
        for figures in point["personas"].values():
            assert set(figures) == {"memories", "interest", "remembered"}
            assert set(figures["interest"]) == {"mean", "sd", "min", "max", "n"}
            assert figures["interest"]["n"] == 2
        assert 0.0 <= point["expectations"]["mean"] <= 1.0
    assert isinstance(document["same_across_seeds"], bool)
    page = (out / sweep.SWEEP_HTML).read_text(encoding="utf-8")
    assert page.count("<svg") == 4
    shown = capsys.readouterr().out
    assert shown.splitlines()[2].split() == [
        "bob.openness", "persona", "memories", "at", "the", "end", "mean", "interest", "share",
        "of", "lines", "remembered", "expectations", "held",
    ]  # fmt: skip


def test_a_vary_names_n_values_from_a_to_b(scenario_file: Path) -> None:
    scenario = load(scenario_file)
    assert sweep.parse_vary("bob.openness=0..1:5", scenario).values == (0, 0.25, 0.5, 0.75, 1)
    assert sweep.parse_vary("ada.temperature=1.5..1.5:1", scenario).values == (1.5,)
    for bad in (
        "bob.openness=0..1",
        "carl.openness=0..1:2",
        "bob.name=0..1:2",
        "bob.openness=0..2:3",
    ):
        with pytest.raises(ConfigError):
            sweep.parse_vary(bad, scenario)


def test_the_figures_spread_across_seeds() -> None:
    assert sweep.spread([1.0, 3.0, None]) == {
        "mean": 2.0,
        "sd": 2**0.5,
        "min": 1.0,
        "max": 3.0,
        "n": 2,
    }
    assert sweep.spread([None]) is None
    assert sweep.spread([0.5])["sd"] == 0.0  # type: ignore[index]
