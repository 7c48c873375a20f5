"""Embedded models from packages: parts joined in order, checked by SHA-256 before loading."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mem8 import errors
from mem8.backends import models

LOCK = Path(__file__).resolve().parents[2] / "requirements-models.lock"


@pytest.fixture
def parted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[models.Model]:
    """A model of three part packages on sys.path, joined into tmp_path."""
    pieces = [b"GGUF" + bytes(range(256)) * 40, b"second part" * 300, b"the end"]
    for i, piece in enumerate(pieces, 1):
        data = tmp_path / "site" / f"fakepart{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(piece)
    whole = b"".join(pieces)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("MEM8_MODEL_DIR", str(tmp_path / "models"))
    yield models.Model(
        name="fake",
        title="Fake-1B",
        filename="fake.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        parts=("fakepart1", "fakepart2", "fakepart3"),
        licence="Qwen2.5-Coder-Apache-2.0.txt",
    )
    for i in range(1, 4):
        sys.modules.pop(f"fakepart{i}", None)


def test_the_parts_join_in_order_into_the_release_s_file(parted: models.Model) -> None:
    path = models.join(parted)
    assert path == Path(models.model_dir()) / "fake.gguf"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == parted.sha256
    assert models.verified(parted, path) == path
    assert "Apache License" in (path.parent / "fake.LICENSE.txt").read_text()


def test_parts_that_do_not_hash_to_the_release_are_refused(parted: models.Model) -> None:
    wrong = replace(parted, sha256="0" * 64)
    with pytest.raises(errors.BackendUnavailable, match="not the release"):
        models.join(wrong)
    assert not wrong.joined().exists()  # nothing half-joined is left to load


def test_a_changed_file_is_refused_before_loading(parted: models.Model) -> None:
    path = models.join(parted)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(errors.BackendUnavailable, match="SHA-256"):
        models.verified(parted, path)


def test_a_missing_model_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = ("no_such_part_pkg", "no_such_2")
    absent = replace(models.CATALOGUE["qwen2.5-coder-1.5b"], parts=parts)
    monkeypatch.setitem(models.CATALOGUE, "qwen2.5-coder-1.5b", absent)
    monkeypatch.setenv("MEM8_MODEL_DIR", "/nonexistent")
    with pytest.raises(errors.BackendUnavailable) as raised:
        models.resolve("qwen2.5-coder-1.5b")
    assert "no-such-part-pkg" in raised.value.message
    assert "MEM8_EMBEDDED_MODEL=qwen2.5-coder-1.5b ./scripts/manage.sh openai-api" in (
        raised.value.message
    )


def test_every_part_of_every_model_is_hash_pinned_in_the_lock() -> None:
    line = re.compile(r"^([a-z0-9-]+)==\S+ --hash=sha256:[0-9a-f]{64}$", re.MULTILINE)
    pinned = set(line.findall(LOCK.read_text()))
    for model in models.CATALOGUE.values():
        for part in model.parts:
            assert part.replace("_", "-") in pinned, (model.name, part)
