"""Sentence encoders that run a transformer in ONNX and average its token vectors.

What they share: texts are tokenised, cut into windows of the model's length (a long text is
read whole, not cut short), encoded in batches of similar length so padding costs little, and
each text's token vectors are averaged over all its windows, then made unit length. A subclass
names its files and says how its graph takes a padded batch (`_feeds`)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.encoders.base import Encoder
from mem8.encoders.cache import VectorCache

BATCH = 32
# Recent texts' vectors kept (at 768 floats, 3 KB each): a chat's query, then the same text as its
# memory; greetings and other repeats. Longer texts (passages of documents) are not kept.
CACHED_TEXTS = 4096
CACHED_CHARS = 2000

Batch = npt.NDArray[np.int64]


class PooledTransformer(Encoder):
    """An ONNX transformer whose text vector is the mean of its token vectors, unit length."""

    semantic: ClassVar[bool] = True
    DIMENSIONS: ClassVar[int]
    max_tokens: ClassVar[int]  # of one window, with its two framing tokens
    pad_id: ClassVar[int] = 0
    # Padded tokens of one run at most: its attention scores take batch x width^2 floats per
    # head. This default never binds below BATCH windows of 256 tokens (MiniLM's).
    batch_tokens: ClassVar[int] = BATCH * 256
    # onnxruntime's arena keeps the most a run ever took for the life of the process
    memory_arena: ClassVar[bool] = True
    install_hint: ClassVar[str]

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as missing:
            raise errors.BackendUnavailable(
                f"The semantic encoder needs {missing.name}: {self.install_hint}"
            ) from missing
        self.dimensions = self.DIMENSIONS
        model, tokenizer = self._files()
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.no_padding()  # the files pad to 128: batches pad to their longest
        self._tokenizer.no_truncation()  # long texts are split into windows instead
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = self.memory_arena
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self.cache = VectorCache(self.dimensions, CACHED_TEXTS, CACHED_CHARS)

    @abstractmethod
    def _files(self) -> tuple[Path, Path]:
        """The ONNX model and its tokenizer.json, checked; BackendUnavailable when missing."""

    @abstractmethod
    def _feeds(self, ids: Batch, mask: Batch) -> dict[str, npt.NDArray[np.generic]]:
        """The graph's inputs for a batch of windows padded with `pad_id` (mask 0 there)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees it (framed once, however long)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Each text's token vectors averaged over all its windows (each window's mean weighted
        by its tokens), then unit length; what else is in the batch changes no text's vector,
        so a text encoded lately is not encoded again."""
        return self.cache.embed(texts, self.encode_fresh)

    def encode_fresh(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """The texts' vectors computed now, the cache neither read nor filled."""
        pieces: list[list[int]] = []
        owners: list[int] = []
        for text, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            for window in windows(encoding.ids, self.max_tokens - 2):
                pieces.append(window)
                owners.append(text)
        sums = np.zeros((len(texts), self.dimensions), np.float64)
        counts = np.zeros((len(texts), 1), np.float64)
        for chosen in batches([len(p) for p in pieces], self.batch_tokens):
            token_sums = self._run([pieces[w] for w in chosen])
            for w, token_sum in zip(chosen, token_sums, strict=True):
                sums[owners[w]] += token_sum
                counts[owners[w]] += len(pieces[w])
        pooled = sums / np.maximum(counts, 1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _run(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        """The sum of each window's token vectors (padding left out)."""
        width = max(len(w) for w in batch)
        ids = np.full((len(batch), width), self.pad_id, np.int64)
        mask = np.zeros((len(batch), width), np.int64)
        for row, window in enumerate(batch):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        hidden: npt.NDArray[np.float32] = self._session.run(None, self._feeds(ids, mask))[0]
        sums: npt.NDArray[np.float32] = (hidden * mask[:, :, None]).sum(axis=1)
        return sums


def windows(ids: list[int], width: int) -> list[list[int]]:
    """A framed text (first and last ids its frame) cut into windows of at most `width` pieces,
    each framed alike."""
    first, pieces, last = ids[0], ids[1:-1], ids[-1]
    starts = range(0, max(len(pieces), 1), width)  # an empty text is still one window
    return [[first, *pieces[start : start + width], last] for start in starts]


def batches(lengths: list[int], most_tokens: int) -> Iterator[list[int]]:
    """Windows (their indices) in order of length, at most BATCH at a time and at most
    `most_tokens` once padded to the longest, which is the last."""
    batch: list[int] = []
    for w in sorted(range(len(lengths)), key=lengths.__getitem__):
        if len(batch) == BATCH or (len(batch) + 1) * lengths[w] > most_tokens:
            if batch:
                yield batch
            batch = []
        batch.append(w)
    if batch:
        yield batch
