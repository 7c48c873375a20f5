"""`mem8 sim`: every shipped scenario runs with the scripted backend and its expectations hold;
runs are byte for byte the same, in any tiling; replay needs no model; a fork keeps its prefix
and a changed trait changes what is remembered; a bad scenario is a clean exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mem8.cli import main

SIMS = Path(__file__).resolve().parents[2] / "sims"
SCENARIOS = sorted(p.name for p in SIMS.glob("*.toml"))


def sim(*arguments: str | Path) -> int:
    return main(["sim", *map(str, arguments)])


def lines(run: Path) -> list[dict[str, object]]:
    text = (run / "transcript.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def digests(run: Path) -> dict[str, str]:
    found: dict[str, str] = json.loads((run / "run.json").read_text())["digests"]
    return found


def test_at_least_four_scenarios_ship() -> None:
    assert len(SCENARIOS) >= 4


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_shipped_scenario_holds_its_expectations_and_replays(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert sim("run", SIMS / scenario, "--out", run, "--backend", "scripted") == 0
    verdicts = json.loads((run / "expectations.json").read_text())
    assert verdicts and all(v["held"] for v in verdicts)
    assert (run / "transcript.md").is_file() and (run / "journal").is_dir()
    assert sim("replay", run) == 0
    assert "SIM REPLAY OK" in capsys.readouterr().out


def test_two_runs_are_byte_for_byte_the_same_and_any_tiling_ends_alike(tmp_path: Path) -> None:
    scenario = SIMS / "dinner-party.toml"
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "one-region"]
    assert sim("run", scenario, "--out", runs[0]) == 0
    assert sim("run", scenario, "--out", runs[1]) == 0
    assert sim("run", scenario, "--out", runs[2], "--tiles", 1) == 0
    for name in ("transcript.jsonl", "sim.db", "run.json", "transcript.md"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    for segment in sorted((runs[0] / "journal").iterdir()):
        assert segment.read_bytes() == (runs[1] / "journal" / segment.name).read_bytes()
    assert (runs[0] / "transcript.jsonl").read_bytes() == (
        runs[2] / "transcript.jsonl"
    ).read_bytes()
    assert digests(runs[0])["sim"] == digests(runs[2])["sim"]


def test_another_seed_only_reorders_what_happens_at_the_same_moment(tmp_path: Path) -> None:
    scenario = SIMS / "knowledge-update.toml"
    assert sim("run", scenario, "--out", tmp_path / "a") == 0
    assert sim("run", scenario, "--out", tmp_path / "b", "--seed", 99) == 0
    texts = [[str(x["text"]) for x in lines(tmp_path / r)] for r in ("a", "b")]
    assert texts[0] == texts[1]  # nothing happens at the same moment in this scenario
    ids = [[x.get("request_id") for x in lines(tmp_path / r)] for r in ("a", "b")]
    assert ids[0] != ids[1]  # but the seed names the requests (and seeds the model)


def test_a_fork_keeps_the_prefix_and_a_changed_threshold_changes_what_is_remembered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, fork = tmp_path / "run", tmp_path / "fork"
    assert sim("run", SIMS / "counselor-six-weeks.toml", "--out", run) == 0
    at = 100  # after the first session, before the second
    changed = "counselor.interest_threshold=0.95"
    sim("fork", run, "--at", at, "--set", changed, "--out", fork)
    assert f"prefix up to step {at}:" in capsys.readouterr().out
    before = [x for x in lines(run) if int(str(x["step"])) < at]
    assert lines(fork)[: len(before)] == before
    after = [x for x in lines(run) if int(str(x["step"])) >= at]
    forked = lines(fork)[len(before) :]
    assert forked[0]["kind"] == "change"
    kept = [x for x in after if x.get("conscious")]
    assert kept, "the original remembered something after the fork's step"
    assert not [x for x in forked if x.get("conscious")]  # nothing clears 0.95


ONE_PERSONA = (
    "[sim]\nstart = 2026-01-01T00:00:00Z\nsteps = 3\n[personas.p]\nlike = 'mem8-counselor-v1'\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sim]\nstart = 2026-01-01T00:00:00Z\nsteps = 3\nfoo = 1\n", "sim.foo: unknown key"),
        (
            ONE_PERSONA + "[[say]]\nat = '+1h'\nfrom = 'Sam'\nto = 'nobody'\ntext = 'hi'\n",
            "say[0].to: 'nobody' is not a persona of this scenario",
        ),
        (
            ONE_PERSONA + "[[say]]\nat = '+9h'\nfrom = 'Sam'\nto = 'p'\ntext = 'hi'\n",
            "say[0].at: happens outside the run",
        ),
        ("[sim]\nstart = 'soon'\nsteps = 3\n", "sim.start: must be a date-time"),
        ("not toml = = =", "not valid TOML"),
        (
            "[sim]\nstart = 2026-01-01T00:00:00Z\nsteps = 3\n[personas.p]\nname = 'P'\n",
            "personas.p.traits: missing (required)",
        ),
    ],
)
def test_a_bad_scenario_is_exit_2_naming_the_file_and_key(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    assert sim("run", scenario, "--out", tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert str(scenario) in error and message in error


def test_a_run_directory_is_not_overwritten_without_force(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert sim("run", SIMS / "knowledge-update.toml", "--out", run) == 0
    assert sim("run", SIMS / "knowledge-update.toml", "--out", run) == 2
    assert sim("run", SIMS / "knowledge-update.toml", "--out", run, "--force") == 0


def test_a_replay_refuses_a_scenario_that_changed(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text((SIMS / "knowledge-update.toml").read_text())
    run = tmp_path / "run"
    assert sim("run", scenario, "--out", run) == 0
    scenario.write_text(scenario.read_text() + "\n# edited\n")
    assert sim("replay", run) == 2


def test_a_short_run_with_the_embedded_model_replays_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real model's words are not asserted: that it answered, and that the run replays."""
    monkeypatch.setenv("MEM8_EMBEDDED_MODEL", "smollm2-135m")
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        "[sim]\nstart = 2026-01-01T09:00:00Z\nstep = '1h'\nsteps = 48\nbackend = 'embedded'\n"
        "[personas.tech]\nlike = 'mem8-technical-v1'\nmax_tokens = 16\ninterest_threshold = 0.2\n"
        "[[say]]\nat = '+1h'\nfrom = 'Kim'\nto = 'tech'\n"
        "text = 'Our billing service is written in Go and leaks goroutines.'\n"
        "[[say]]\nat = '+1d'\nfrom = 'Kim'\nto = 'tech'\ntext = 'Which language is billing in?'\n"
        "[[expect]]\nrecall = { persona = 'tech', query = 'billing language', contains = 'Go' }\n"
    )
    run = tmp_path / "run"
    assert sim("run", scenario, "--out", run) == 0
    replies = [x for x in lines(run) if x["kind"] == "reply"]
    assert len(replies) == 2 and all(str(x["text"]).strip() for x in replies)
    assert sim("replay", run) == 0
    assert "SIM REPLAY OK" in capsys.readouterr().out
