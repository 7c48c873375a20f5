"""`mem8 sim sweep --runtime ray`: the runs as Ray tasks on a local cluster give the sweep the
local processes give; a cluster that cannot be had is a one-line error, exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from mem8 import cli
from mem8.sim import outputs, sweep

VARY = ["--vary", "bob.openness=0.2..0.8:2", "--seeds", "1", "--jobs", "2"]


def test_a_sweep_on_a_local_ray_cluster_is_the_local_sweep(
    scenario_file: Path, tmp_path: Path
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert cli.main(["sim", "sweep", str(scenario_file), *VARY, "--out", str(local)]) == 0
    # The sweep starts a local cluster of --jobs CPUs and stops it at the end.
    ray_sweep = ["sim", "sweep", str(scenario_file), *VARY, "--runtime", "ray"]
    assert cli.main([*ray_sweep, "--out", str(on_ray)]) == 0
    document = (local / sweep.SWEEP_JSON).read_text(encoding="utf-8")
    assert (on_ray / sweep.SWEEP_JSON).read_text(encoding="utf-8") == document
    for run in json.loads(document)["runs"]:
        transcript = (local / run["dir"] / outputs.TRANSCRIPT).read_bytes()
        assert (on_ray / run["dir"] / outputs.TRANSCRIPT).read_bytes() == transcript
    assert not ray.is_initialized()


def test_an_unreachable_ray_address_is_a_one_line_error(
    scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:  # a port nothing listens on once it is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = tmp_path / "sweep"
    ray_sweep = ["sim", "sweep", str(scenario_file), *VARY, "--out", str(out), "--runtime", "ray"]
    assert cli.main([*ray_sweep, "--ray-address", f"127.0.0.1:{port}"]) == 2
    shown = capsys.readouterr().err.splitlines()
    assert shown == [
        f"mem8 sim: --ray-address 127.0.0.1:{port}: no Ray cluster answers there "
        "([Errno 111] Connection refused)"
    ]
    assert not out.exists()  # told before anything ran
    assert cli.main([*ray_sweep, "--ray-address", "nowhere"]) == 2
    assert cli.main([*ray_sweep[:-2], "--ray-address", f"127.0.0.1:{port}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mem8 sim: --ray-address nowhere: must be HOST:PORT or auto",
        "mem8 sim: --ray-address needs --runtime ray",
    ]


def test_ray_is_imported_only_by_a_sweep_that_asks_for_it() -> None:
    loaded = "import sys, mem8.cli, mem8.sim.sweep; print('ray' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
