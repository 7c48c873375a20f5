"""How numba's parallel kernels share the cores: set where a process starts, before its first
parallel kernel runs (importing the grid changes nothing)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def configure_threads(environ: MutableMapping[str, str] = os.environ) -> None:
    """GNU OpenMP's workers spin between parallel regions; on a 2-core machine that starves the
    rest of a recall (measured: 8 ms -> 0.6 ms per recall at 100k memories), so they wait
    passively, unless the environment already says otherwise. OpenMP reads it once, when
    numba first starts its threads."""
    environ.setdefault("OMP_WAIT_POLICY", "passive")
