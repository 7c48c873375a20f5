"""MPNet's encoder as an ONNX graph, built from its safetensors weights with numpy and onnx alone.

It follows Hugging Face transformers' MPNetModel in fp32, without the pooler: embeddings are
LayerNorm(words + positions); each layer is self-attention whose scores carry a learnt bias per
relative position bucket (shared by all layers) and the padding mask, then LayerNorm(o + h),
an erf-GELU feed-forward and LayerNorm(out + h1). What is cheaper in numpy than in the graph
comes in as inputs (mpnet.py makes them): each token's position id, the relative position
bucket of every query and key, and the additive padding mask of every key."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # the first with LayerNormalization

Weights = Mapping[str, npt.NDArray[np.float32]]


def read_safetensors(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The file's float32 tensors by name, mapped from the file rather than read into memory
    (the format: a little-endian u64 header length, a JSON header, then the raw tensors)."""
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header: dict[str, Any] = json.loads(file.read(length))
    data = np.memmap(path, np.uint8, "r", offset=8 + length)
    tensors = {}
    for name, entry in header.items():
        if name != "__metadata__" and entry["dtype"] == "F32":
            start, end = entry["data_offsets"]
            tensors[name] = data[start:end].view("<f4").reshape(entry["shape"])
    return tensors


class _Graph:
    """Nodes and weights as they are added, each output named after its node."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def weight(self, name: str, array: npt.NDArray[Any]) -> str:
        if name not in self._names:
            self._names.add(name)
            self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def constant(self, value: float) -> str:
        return self.weight(f"const_{value}", np.array(value, np.float32))

    def shape(self, *dims: int) -> str:
        return self.weight("shape_" + "_".join(map(str, dims)), np.array(dims, np.int64))

    def op(self, kind: str, *inputs: str, **attributes: Any) -> str:
        return self.ops(kind, inputs, 1, **attributes)[0]

    def ops(self, kind: str, inputs: tuple[str, ...], count: int, **attributes: Any) -> list[str]:
        outputs = [f"{kind}_{len(self.nodes)}_{i}" for i in range(count)]
        self.nodes.append(helper.make_node(kind, list(inputs), outputs, **attributes))
        return outputs


def build(weights: Weights, heads: int, eps: float) -> onnx.ModelProto:
    """The graph: (input_ids, position_ids, position_buckets, attention_bias) -> token vectors."""
    graph = _Graph()
    hidden = _embeddings(graph, weights, eps)
    bias = _attention_bias(graph, weights)
    layers = 1 + max(int(n.split(".")[2]) for n in weights if n.startswith("encoder.layer."))
    for layer in range(layers):
        hidden = _layer(graph, weights, f"encoder.layer.{layer}.", hidden, bias, heads, eps)
    graph.nodes.append(helper.make_node("Identity", [hidden], ["token_embeddings"]))
    width = weights["embeddings.LayerNorm.weight"].shape[0]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("position_buckets", TensorProto.INT64, ["tokens", "tokens"]),
        helper.make_tensor_value_info(
            "attention_bias", TensorProto.FLOAT, ["batch", 1, 1, "tokens"]
        ),
    ]
    output = helper.make_tensor_value_info(
        "token_embeddings", TensorProto.FLOAT, ["batch", "tokens", width]
    )
    body = helper.make_graph(graph.nodes, "mpnet", inputs, [output], graph.weights)
    return helper.make_model(
        body, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mem8"
    )


def _embeddings(graph: _Graph, weights: Weights, eps: float) -> str:
    words = graph.op("Gather", _weight(graph, weights, "embeddings.word_embeddings"), "input_ids")
    where = _weight(graph, weights, "embeddings.position_embeddings")
    places = graph.op("Gather", where, "position_ids")
    return _layer_norm(graph, weights, "embeddings.LayerNorm", graph.op("Add", words, places), eps)


def _attention_bias(graph: _Graph, weights: Weights) -> str:
    """Each head's bias for each query and key, with the padding mask: (batch, heads, q, k)."""
    by_bucket = _weight(graph, weights, "encoder.relative_attention_bias")  # (buckets, heads)
    table = graph.op("Gather", by_bucket, "position_buckets")  # (q, k, heads)
    per_head = graph.op("Transpose", table, perm=[2, 0, 1])
    return graph.op("Add", per_head, "attention_bias")


def _layer(
    graph: _Graph, weights: Weights, prefix: str, hidden: str, bias: str, heads: int, eps: float
) -> str:
    attended = _attention(graph, weights, prefix + "attention.attn.", hidden, bias, heads)
    h1 = _layer_norm(
        graph, weights, prefix + "attention.LayerNorm", graph.op("Add", attended, hidden), eps
    )
    up = _linear(graph, weights, prefix + "intermediate.dense", h1)
    down = _linear(graph, weights, prefix + "output.dense", _gelu(graph, up))
    return _layer_norm(graph, weights, prefix + "output.LayerNorm", graph.op("Add", down, h1), eps)


def _attention(
    graph: _Graph, weights: Weights, prefix: str, hidden: str, bias: str, heads: int
) -> str:
    """Multi-head self-attention; q, k and v come from one matrix product."""
    q, k, v = (weights[f"{prefix}{p}.weight"].T for p in "qkv")
    qb, kb, vb = (weights[f"{prefix}{p}.bias"] for p in "qkv")
    size = q.shape[1] // heads
    # Scaling q by 1/sqrt(64) = 1/8, a power of two, is exact: the scores are HF's to the bit.
    scale = np.float32(1 / math.sqrt(size))
    matrix = graph.weight(prefix + "qkv.weight", np.concatenate([q * scale, k, v], axis=1))
    offset = graph.weight(prefix + "qkv.bias", np.concatenate([qb * scale, kb, vb]))
    qkv = graph.op("Add", graph.op("MatMul", hidden, matrix), offset)
    split = graph.weight("split_3", np.array([q.shape[1]] * 3, np.int64))
    queries, keys, values = graph.ops("Split", (qkv, split), 3, axis=-1)
    by_head = graph.shape(0, 0, heads, size)
    queries = graph.op("Transpose", graph.op("Reshape", queries, by_head), perm=[0, 2, 1, 3])
    keys = graph.op("Transpose", graph.op("Reshape", keys, by_head), perm=[0, 2, 3, 1])
    values = graph.op("Transpose", graph.op("Reshape", values, by_head), perm=[0, 2, 1, 3])
    scores = graph.op("Add", graph.op("MatMul", queries, keys), bias)
    context = graph.op("MatMul", graph.op("Softmax", scores, axis=-1), values)
    joined = graph.op("Transpose", context, perm=[0, 2, 1, 3])
    return _linear(graph, weights, prefix + "o", graph.op("Reshape", joined, graph.shape(0, 0, -1)))


def _gelu(graph: _Graph, x: str) -> str:
    """The exact GELU, x/2 (1 + erf(x / sqrt 2)), in the form onnxruntime fuses into one op."""
    erf = graph.op("Erf", graph.op("Div", x, graph.constant(math.sqrt(2))))
    return graph.op(
        "Mul", graph.op("Mul", x, graph.op("Add", erf, graph.constant(1.0))), graph.constant(0.5)
    )


def _linear(graph: _Graph, weights: Weights, prefix: str, x: str) -> str:
    """x W^T + b, with W stored transposed (torch keeps it as (out, in))."""
    matrix = graph.weight(prefix + ".weight", weights[prefix + ".weight"].T)
    return graph.op("Add", graph.op("MatMul", x, matrix), _weight(graph, weights, prefix, "bias"))


def _layer_norm(graph: _Graph, weights: Weights, prefix: str, x: str, eps: float) -> str:
    scale, shift = _weight(graph, weights, prefix), _weight(graph, weights, prefix, "bias")
    return graph.op("LayerNormalization", x, scale, shift, axis=-1, epsilon=eps)


def _weight(graph: _Graph, weights: Weights, prefix: str, kind: str = "weight") -> str:
    name = f"{prefix}.{kind}"
    return graph.weight(name, weights[name])
