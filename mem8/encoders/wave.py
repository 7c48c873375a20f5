"""The wave representation of a text, as `/v1/embeddings` exposes it.

An encoder's vector (384 semantic features for MiniLM) is read as the amplitudes of standing
waves: feature j sets the amplitude of the cosine with j half-periods across the signal, and the
embedding is their superposition sampled at d points (the orthonormal DCT-II basis):

    s[n] = sum_j v_j c_j cos(pi (n + 0.5) j / d),  c_0 = sqrt(1/d), c_j = sqrt(2/d) otherwise,

renormalised to unit length. With d at least the number of features the basis is orthonormal, so
the transform is a rotation into a larger space: lengths and cosines between texts are kept
exactly and nothing is lost. With fewer samples only the d lowest frequencies fit (a low-pass),
which keeps the coarse shape of the meaning, as asking OpenAI for fewer `dimensions` does."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

MAX_DIMENSIONS = 1536


def to_wave(
    vectors: npt.NDArray[np.float32], dimensions: int = MAX_DIMENSIONS
) -> npt.NDArray[np.float32]:
    """Rows of features -> rows of `dimensions` samples of their superposed waves, unit length
    (a zero row stays zero)."""
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise ValueError(f"dimensions must be from 1 to {MAX_DIMENSIONS}, got {dimensions}")
    features = vectors.shape[1]
    basis = _basis(min(features, dimensions), dimensions)
    signal = vectors[:, : basis.shape[0]].astype(np.float64) @ basis
    norms = np.linalg.norm(signal, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (signal / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


@functools.lru_cache(maxsize=8)  # a 384 x 1536 basis is 4.7 MB; clients use a few sizes
def _basis(frequencies: int, samples: int) -> npt.NDArray[np.float64]:
    """Row j: the j-th orthonormal DCT-II cosine sampled at `samples` points (read-only)."""
    j = np.arange(frequencies)[:, None]
    n = np.arange(samples)[None, :]
    scale = np.full((frequencies, 1), np.sqrt(2 / samples))
    scale[0] = np.sqrt(1 / samples)
    basis: npt.NDArray[np.float64] = scale * np.cos(np.pi * (n + 0.5) * j / samples)
    basis.setflags(write=False)  # shared by every caller through the cache
    return basis
