"""report.html: a chart per measure and persona, the grid's pictures beside it, the
expectations' verdicts, and the same bytes for the same run."""

from __future__ import annotations

import re
from pathlib import Path

from mem8 import cli
from mem8.sim import report


def test_the_report_draws_each_persona_and_the_grid(run_dir: Path) -> None:
    page = (run_dir / report.REPORT).read_text(encoding="utf-8")
    # the overview, then interest, emotion and memory for each of the two personas
    assert page.count("<svg") == 1 + 3 * 2
    for title in ("Interest in what it heard", "Emotion of what it heard", "Memories and"):
        assert page.count(f'class="title">{title}') == 2
    pictures = re.findall(r'<img src="([^"]+)"', page)
    assert pictures == ["field-1.png", "field-2.png", "field-3.png", "field-4.png"]
    for name in pictures:
        assert (run_dir / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert '<a href="transcript.md">' in page
    assert "Expectations: 2 of 2 held" in page
    assert page.count("<td class=pass>PASS</td>") == 2


def test_an_equal_run_writes_a_byte_equal_report(
    run_dir: Path, scenario_file: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    assert cli.main(["sim", "run", str(scenario_file), "--out", str(again)]) == 0
    for name in (report.REPORT, "field-1.png", "field-4.png"):
        assert (again / name).read_bytes() == (run_dir / name).read_bytes(), name
