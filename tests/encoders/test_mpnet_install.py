"""Building the MPNet encoder from its installed parts: the same graph every time, and only the
build's four files left behind."""

from __future__ import annotations

import json
from pathlib import Path

from mem8.encoders import mpnet
from mem8.encoders.mpnet_install import SCRATCH, install


def test_a_build_makes_the_installed_graph_again_and_leaves_only_its_files(
    tmp_path: Path,
) -> None:
    """About 10 s and 2 GB of memory: the real weights, joined, checked and converted."""
    (tmp_path / f"{SCRATCH}killed").mkdir()  # what a killed build leaves
    build = mpnet.Build(tmp_path)
    install(build)
    assert sorted(tmp_path.iterdir()) == sorted(build.files())
    assert mpnet.verified(build) == (build.graph, build.tokenizer)
    recorded = json.loads(build.manifest.read_text())
    installed = json.loads(mpnet.installed().manifest.read_text())
    assert recorded["onnx_sha256"] == installed["onnx_sha256"]  # the build is deterministic
    assert "Apache License" in build.notice.read_text()
