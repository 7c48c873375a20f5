"""numba's threads are configured where a process starts, never by importing the grid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mem8.grid.threads import configure_threads


def test_openmp_workers_wait_passively_unless_told_otherwise() -> None:
    fresh: dict[str, str] = {}
    configure_threads(fresh)
    assert fresh == {"OMP_WAIT_POLICY": "passive"}
    chosen = {"OMP_WAIT_POLICY": "active"}
    configure_threads(chosen)
    assert chosen == {"OMP_WAIT_POLICY": "active"}


def test_importing_the_grid_leaves_the_environment_alone() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    script = "import os, mem8.grid.kernels; print(os.environ.get('OMP_WAIT_POLICY'))"
    found = subprocess.run(
        [sys.executable, "-c", script], env=environ, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "None"
