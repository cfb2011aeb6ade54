"""Exact o200k_base token counts (gpt-4o-mini), offline, from a verified vocabulary.

bpe-openai ships o200k_base as `bpe_openai/data/o200k_base.tiktoken.gz`: gzip over the very
file tiktoken downloads (one "base64-token rank" line per token), so its decompressed bytes
must hash to the sha256 tiktoken pins for o200k_base. The encoder itself (the Rust extension)
carries its own compiled-in copy of the vocabulary, so that copy is checked against the
verified file too: decoding every token id whose bytes are valid UTF-8 must give back those
bytes. Either mismatch raises `VocabularyError`; nothing is counted with an unverified
vocabulary.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from importlib import resources
from importlib.metadata import version
from typing import Any

from services.errors import PaymentsAgentError

ENCODING_NAME = "o200k_base"
# tiktoken's expected sha256 of o200k_base.tiktoken (tiktoken_ext/openai_public.py).
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_DATA_PACKAGE = "bpe_openai.data"
_DATA_FILE = f"{ENCODING_NAME}.tiktoken.gz"


class VocabularyError(PaymentsAgentError):
    """The tokenizer's vocabulary is not the o200k_base it claims to be."""


def shipped_vocabulary() -> bytes:
    """The o200k_base.tiktoken file bpe-openai ships, decompressed."""
    packed = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_bytes()
    return gzip.decompress(packed)


def verify_vocabulary(data: bytes, *, expected_sha256: str = O200K_BASE_SHA256) -> None:
    """Raise VocabularyError unless `data` hashes to `expected_sha256`."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise VocabularyError(
            f"{ENCODING_NAME} vocabulary from bpe-openai {version('bpe-openai')} has sha256 "
            f"{actual}, expected {expected_sha256}: token counts would be wrong"
        )


def parse_vocabulary(data: bytes) -> dict[int, bytes]:
    """Token id to token bytes, from the lines of a .tiktoken file."""
    tokens: dict[int, bytes] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            tokens[int(rank)] = base64.b64decode(token)
    return tokens


def verify_encoder(encoder: Any, tokens: dict[int, bytes]) -> None:
    """Raise VocabularyError unless `encoder` decodes every UTF-8 token as `tokens` says."""
    ids: list[int] = []
    texts: list[str] = []
    for token_id in sorted(tokens):
        try:
            texts.append(tokens[token_id].decode("utf-8"))
        except UnicodeDecodeError:
            continue  # a partial UTF-8 sequence cannot be compared as text on its own
        ids.append(token_id)
    # One call over the whole vocabulary: a changed, missing or reordered token shows up
    # as a different string.
    if encoder.decode(ids) != "".join(texts):
        raise VocabularyError(
            f"bpe-openai {version('bpe-openai')}: its compiled-in {ENCODING_NAME} vocabulary "
            "differs from the verified o200k_base.tiktoken it ships"
        )


@cache
def o200k_encoding() -> Any:
    """bpe-openai's o200k_base encoding, loaded once, after verifying its vocabulary."""
    data = shipped_vocabulary()
    verify_vocabulary(data)
    # The Rust encoder behind Encoding.encode; bpe-openai exposes no public accessor.
    from bpe_openai import _bindings

    verify_encoder(_bindings.tokenizer_for_encoding(ENCODING_NAME), parse_vocabulary(data))
    # Imported here: loading the encoder takes about 0.4 s, paid by the first count, not
    # by every process start (a worker is ready before it drafts anything).
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Exact o200k_base tokens of `text` (special-token text counted as plain text)."""
    return len(o200k_encoding().encode(text, disallowed_special=()))


__all__ = [
    "ENCODING_NAME",
    "O200K_BASE_SHA256",
    "VocabularyError",
    "count_tokens",
    "o200k_encoding",
    "parse_vocabulary",
    "shipped_vocabulary",
    "verify_encoder",
    "verify_vocabulary",
]
