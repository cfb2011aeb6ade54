"""Exact o200k_base token counts from bpe-openai's offline, hash-checked vocabulary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.drafting.prompt import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, Prompt
from services.drafting.prompt import count_prompt_tokens as prompt_tokens
from services.drafting.tokens import (
    O200K_BASE_SHA256,
    VocabularyError,
    count_tokens,
    o200k_encoding,
    parse_vocabulary,
    shipped_vocabulary,
    verify_encoder,
    verify_vocabulary,
)

# Counted by tiktoken (its own encoder) over the vocabulary file; see "source" in the file.
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "o200k_reference.json"
CASES: list[dict[str, Any]] = json.loads(REFERENCE.read_text(encoding="utf-8"))["texts"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_counts_match_the_reference_counts(case: dict[str, Any]) -> None:
    assert count_tokens(case["text"]) == case["tokens"]


def test_the_references_cover_the_texts_a_prompt_holds() -> None:
    assert len(CASES) >= 15
    assert {"hello_world", "currency_amounts", "unicode_names", "emoji", "json"} <= {
        case["name"] for case in CASES
    }


def test_hand_known_counts() -> None:
    # o200k_base: "hello" 24912, " world" 2375; digits go in groups of at most three.
    assert o200k_encoding().encode("hello world") == [24912, 2375]
    assert count_tokens("2450") == 2


def test_special_token_text_is_counted_as_plain_text() -> None:
    # A customer who writes "<|endoftext|>" sends characters, not the special token.
    assert count_tokens("<|endoftext|>") > 1


def test_the_shipped_vocabulary_is_tiktokens_o200k_base() -> None:
    verify_vocabulary(shipped_vocabulary())  # raises on a mismatch


def test_a_tampered_vocabulary_is_refused() -> None:
    data = shipped_vocabulary()
    tampered = data.replace(b" 24912\n", b" 24913\n", 1)
    assert tampered != data
    with pytest.raises(VocabularyError, match="sha256"):
        verify_vocabulary(tampered)


def test_a_wrong_expected_hash_is_refused() -> None:
    with pytest.raises(VocabularyError, match=O200K_BASE_SHA256):
        verify_vocabulary(shipped_vocabulary(), expected_sha256="0" * 64)


class SwappedEncoder:
    """An encoder whose compiled-in vocabulary has two tokens swapped."""

    def __init__(self, tokens: dict[int, bytes], a: int, b: int) -> None:
        self.tokens = dict(tokens)
        self.tokens[a], self.tokens[b] = tokens[b], tokens[a]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.tokens[i] for i in ids).decode("utf-8", errors="replace")


def test_an_encoder_whose_vocabulary_differs_from_the_file_is_refused() -> None:
    tokens = parse_vocabulary(shipped_vocabulary())
    assert len(tokens) == 199_998
    verify_encoder(SwappedEncoder(tokens, 24912, 24912), tokens)  # unchanged: accepted
    with pytest.raises(VocabularyError, match="compiled-in"):
        verify_encoder(SwappedEncoder(tokens, 24912, 2375), tokens)


def test_prompt_tokens_are_the_messages_the_schema_and_the_chat_overhead() -> None:
    prompt = Prompt(system="You draft resolutions.", user="hello world")
    schema = '{"type":"object"}'
    expected = (
        count_tokens(prompt.system)
        + 2
        + count_tokens(schema)
        + 2 * TOKENS_PER_MESSAGE
        + TOKENS_PER_REPLY
    )
    assert prompt_tokens(prompt, response_schema=schema) == expected
