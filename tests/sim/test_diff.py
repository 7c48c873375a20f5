"""`mem8 sim diff`: a run against itself is identical (0); against a fork with a changed trait
it names the first line that differs (1); a directory that holds no run is a 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mem8 import cli
from mem8.sim import diff


def test_a_run_and_itself_are_identical(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sim", "diff", str(run_dir), str(run_dir)]) == 0
    assert capsys.readouterr().out.startswith("identical: 15 lines")


def test_a_fork_with_a_changed_trait_parts_at_its_change(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fork = tmp_path / "fork"
    at = ["--at", "4", "--set", "bob.openness=0", "--out", str(fork)]
    assert cli.main(["sim", "fork", str(run_dir), *at]) in (0, 1)
    capsys.readouterr()
    assert cli.main(["sim", "diff", str(run_dir), str(fork)]) == 1
    shown = capsys.readouterr().out
    original = (run_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(original) if json.loads(line)["step"] >= 4)
    assert f"they part at line {index + 1} (step 4, 2024-05-01 13:00):" in shown
    assert f"  {fork}  change bob: openness=0\n" in shown
    assert "\nbob " in shown and "\nada " in shown  # a row for each persona

    found = diff.compare(diff.read(run_dir), diff.read(fork))
    assert found.parting is not None and found.parting.second is not None
    assert found.parting.index == index and found.parting.second["kind"] == "change"
    assert found.lines == (len(original), len(original) + 1)
    assert json.loads(json.dumps(found.to_json()))["identical"] is False
    assert f"Forked from {run_dir.resolve()} at step 4 with bob.openness=0." in (
        fork / "report.html"
    ).read_text(encoding="utf-8")


def test_a_directory_without_a_run_is_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sim", "diff", str(run_dir), str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
