"""`bench ray_hop` with a few asks: each hop is timed, in-process first (the ratios' base)."""

from __future__ import annotations

import pytest

from bench import ray_hop

pytest.importorskip("ray", reason="ray is not installed (pip install ray==2.60.0)")


def test_the_bench_times_each_hop(capsys: pytest.CaptureFixture[str]) -> None:
    ray_hop.main(["--asks", "20"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "median ask round trip, 20 asks each, one at a time:"
    hops = [line.split(" us ")[0].rsplit(" ", 1)[0].strip() for line in lines[1:]]
    assert hops == [
        "in-process (objects)",
        "in-process (msgpack)",
        "Ray actor (msgpack)",
        "bare ray.get of a method",
    ]
    assert lines[1].endswith("x     1.0")
