"""The MPNet graph builder on a tiny random model: its graph computes what a plain numpy MPNet
computes, padded batches included, and its weights are read from a safetensors file."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest

from mem8.encoders import mpnet_graph
from mem8.encoders.mpnet import PAD, inputs, relative_buckets

Arrays = dict[str, npt.NDArray[np.float32]]
HIDDEN, HEADS, FEED, LAYERS, VOCAB, PLACES, EPS = 8, 2, 16, 2, 20, 40, 1e-5


def tiny_weights() -> Arrays:
    """An MPNet of 2 layers, 8 wide, with HF's tensor names and shapes (torch's (out, in))."""
    rng = np.random.default_rng(11)
    shapes = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (PLACES, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,),
        "embeddings.LayerNorm.bias": (HIDDEN,),
        "encoder.relative_attention_bias.weight": (32, HEADS),
    }
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}."
        for name in ("q", "k", "v", "o"):
            shapes[f"{prefix}attention.attn.{name}.weight"] = (HIDDEN, HIDDEN)
            shapes[f"{prefix}attention.attn.{name}.bias"] = (HIDDEN,)
        for norm in ("attention.LayerNorm", "output.LayerNorm"):
            shapes[f"{prefix}{norm}.weight"] = shapes[f"{prefix}{norm}.bias"] = (HIDDEN,)
        shapes[f"{prefix}intermediate.dense.weight"] = (FEED, HIDDEN)
        shapes[f"{prefix}intermediate.dense.bias"] = (FEED,)
        shapes[f"{prefix}output.dense.weight"] = (HIDDEN, FEED)
        shapes[f"{prefix}output.dense.bias"] = (HIDDEN,)
    return {name: rng.normal(0, 0.5, shape).astype(np.float32) for name, shape in shapes.items()}


def write_safetensors(path: Path, tensors: Arrays) -> None:
    """The format, with a metadata entry and an int64 tensor the reader must pass over."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs = [np.arange(PLACES, dtype="<i8").tobytes()]
    header["embeddings.position_ids"] = {
        "dtype": "I64",
        "shape": [1, PLACES],
        "data_offsets": [0, len(blobs[0])],
    }
    offset = len(blobs[0])
    for name, array in tensors.items():
        blob = array.astype("<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def reference(w: Arrays, ids: list[int]) -> npt.NDArray[np.float64]:
    """HF's MPNetModel.forward for one unpadded text, written out in float64 numpy."""

    def norm(x: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
        centred = x - x.mean(-1, keepdims=True)
        scaled = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + EPS)
        return scaled * w[f"{name}.weight"] + w[f"{name}.bias"]

    def linear(x: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
        return x @ w[f"{name}.weight"].T.astype(np.float64) + w[f"{name}.bias"]

    def heads(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return x.reshape(len(ids), HEADS, -1).transpose(1, 0, 2)

    tokens = np.array(ids)
    positions = np.cumsum(tokens != PAD) * (tokens != PAD) + PAD
    words = w["embeddings.word_embeddings.weight"][tokens]
    h = norm(words + w["embeddings.position_embeddings.weight"][positions], "embeddings.LayerNorm")
    places = np.arange(len(ids))
    buckets = relative_buckets(places[None, :] - places[:, None])
    bias = w["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)
    erf = np.vectorize(math.erf)
    for layer in range(LAYERS):
        at = f"encoder.layer.{layer}."
        q, k, v = (heads(linear(h, f"{at}attention.attn.{p}")) for p in "qkv")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(HIDDEN // HEADS) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), HIDDEN)
        h1 = norm(linear(context, f"{at}attention.attn.o") + h, f"{at}attention.LayerNorm")
        up = linear(h1, f"{at}intermediate.dense")
        gelu = up * 0.5 * (1 + erf(up / math.sqrt(2)))
        h = norm(linear(gelu, f"{at}output.dense") + h1, f"{at}output.LayerNorm")
    return h


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> onnxruntime.InferenceSession:
    folder = tmp_path_factory.mktemp("tiny-mpnet")
    write_safetensors(folder / "model.safetensors", tiny_weights())
    weights = mpnet_graph.read_safetensors(folder / "model.safetensors")
    model = mpnet_graph.build(weights, HEADS, EPS)
    return onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def test_the_safetensors_reader_gives_back_every_float_tensor(tmp_path: Path) -> None:
    written = tiny_weights()
    write_safetensors(tmp_path / "model.safetensors", written)
    read = mpnet_graph.read_safetensors(tmp_path / "model.safetensors")
    assert read.keys() == written.keys()  # the int64 position_ids are no weight
    assert all(np.array_equal(read[name], array) for name, array in written.items())


def test_the_graph_computes_mpnet_on_a_padded_batch(session: onnxruntime.InferenceSession) -> None:
    # Long enough for logarithmic buckets (distances of 8 and more), and one text padded.
    texts = [[0, *range(3, 19), *range(3, 15), 2], [0, 5, 7, 9, 2]]
    ids = np.full((2, len(texts[0])), PAD, np.int64)
    mask = np.zeros_like(ids)
    for row, text in enumerate(texts):
        ids[row, : len(text)], mask[row, : len(text)] = text, 1
    hidden = session.run(None, inputs(ids, mask))[0]
    for row, text in enumerate(texts):
        np.testing.assert_allclose(
            hidden[row, : len(text)], reference(tiny_weights(), text), atol=1e-4
        )
