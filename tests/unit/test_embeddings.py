"""The local all-MiniLM-L6-v2 gives sentence-transformers' vectors, offline, without torch.

tests/data/minilm_reference.json was produced once by sentence-transformers 6.2 with
PyTorch 2.13 (CPU) loading the same bundled model directory, in a throw-away virtual
environment outside the project.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.knowledge.embeddings import EMBEDDING_DIM, MAX_SEQ_LENGTH, MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(batch_size=4)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_reference_was_made_by_sentence_transformers() -> None:
    assert REFERENCE["generated_with"]["max_seq_length"] == MAX_SEQ_LENGTH
    assert len(REFERENCE["items"]) >= 10


@pytest.mark.parametrize("index", range(len(REFERENCE["items"])))
def test_matches_sentence_transformers_vector(embedder: MiniLMEmbedder, index: int) -> None:
    item = REFERENCE["items"][index]
    vector = embedder.embed_one(item["text"])
    assert _cosine(vector, np.asarray(item["vector"], dtype=np.float64)) >= 0.9999


def test_batch_with_padding_matches_reference_in_input_order(embedder: MiniLMEmbedder) -> None:
    texts = [item["text"] for item in REFERENCE["items"]]
    vectors = embedder.embed(texts)  # sorted by length and padded inside, batch size 4
    assert vectors.shape == (len(texts), EMBEDDING_DIM)
    for vector, item in zip(vectors, REFERENCE["items"], strict=True):
        assert _cosine(vector, np.asarray(item["vector"])) >= 0.9999


def test_vectors_are_unit_length_float32(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["refund", "a much longer sentence about a duplicate charge"])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_input_is_truncated_like_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    long_text = max((item["text"] for item in REFERENCE["items"]), key=len)
    assert embedder.count_tokens(long_text) > MAX_SEQ_LENGTH
    extended = long_text + " Completely unrelated trailing words about gardening." * 20
    assert _cosine(embedder.embed_one(long_text), embedder.embed_one(extended)) > 0.99999


def test_empty_batch(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)


def test_similar_meaning_scores_higher(embedder: MiniLMEmbedder) -> None:
    query, close, far = embedder.embed(
        [
            "I was billed twice for the same month",
            "Duplicate charge on my card for this month's subscription",
            "The weather in Lisbon is sunny in spring",
        ]
    )
    assert query @ close > query @ far + 0.3


def test_import_is_light_and_torch_is_not_installed() -> None:
    code = (
        "import sys\n"
        "import services.knowledge.embeddings as e\n"
        "e.MiniLMEmbedder()\n"
        "names = ('torch', 'chromadb', 'onnx', 'onnxruntime', 'tokenizers', 'safetensors')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", "importing or constructing the embedder loads " + (
        result.stdout
    )
    assert importlib.util.find_spec("torch") is None, "PyTorch must not be installed"
