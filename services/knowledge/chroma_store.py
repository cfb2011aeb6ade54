"""ChromaDB knowledge base: policy sections and past resolutions (the `PolicyStore`).

Two collections, both in cosine space and embedded with all-MiniLM-L6-v2
(`services.knowledge.embeddings`): `company_policies` (chunks of `policies/*.docx`) and
`dispute_resolutions` (one document per decided case, id = case id).

Policy sections are ranked by a hybrid score. For each chunk,

    chunk = (0.6 * cosine + 0.25 * keyword + 0.05 * heading + 0.1 * band)
            * (0.75 if the section is informative else 1)

where cosine is the embedding similarity clamped to [0, 1] (a chunk is embedded without
its clause numbers, `policy_docs`); keyword is BM25 over the policy chunks' words and the
payments concepts they mention (`services.knowledge.vocabulary`: "charged twice" and
"repeat debits" share the concept `duplicate`), divided by the most the query's terms
could score (the sum of their idf), so a chunk that shares only a common word with the
query scores little instead of 1 when nothing matches better; heading is the cosine of the
query and the chunk's "<policy title> - <section path>" alone (a heading names what a
section governs in few words, which a long chunk's mean embedding blurs; at 0.1 the
second labelled set loses a description); band is 1 when a row of the chunk's table
states a band holding a duration or amount of the query ("down for nine hours" and
"6-12 hours", `services.knowledge.quantities`), which neither the embedding nor BM25 can
see; and informative sections (overview, purpose, scope, definitions) say what a policy
is about rather than what to do. Then `0.7 * chunk + 0.3 * policy`, where policy is the
mean of that policy's three best chunks: a policy that many chunks point to beats a lone
near-miss of another policy. The best chunk of each section represents it; the top `k`
sections are returned. The weights are shared by every collection. Recall@3 on the
labelled descriptions in tests/data (bench/retrieval.py): dense similarity alone 0.68 on
the sandbox policies and 0.61 on a second collection in another company's hand; the
hybrid 0.98 and 0.95, and 0.82 on a held-out check of the second collection written
before these weights were chosen (the previous hybrid: 0.92, 0.61 and 0.79).
BM25 is `bm25s`'s (Lucene's variant, k1 = 1.2, b = 0.75, numpy backend) over words
lower-cased, stripped of NLTK's English stopwords and stemmed by PyStemmer's English
(Snowball) stemmer.

Similar cases are ranked in two steps. Candidates are the 60 (20 k) nearest resolutions
by text; when fewer than k of them share the dispute's type, the nearest of that type are
fetched as well (a filtered search, several times slower, so only then), so same-type
precedents are never crowded out. Each candidate is scored

    0.55 * text + 0.25 * same dispute type + 0.10 * amount closeness + 0.10 * same segment

where text is the cosine similarity clamped to [0, 1] and amount closeness is
1 - |ln((a + 1) / (b + 1))| / ln(10), floored at 0 (1 for equal amounts, 0 for amounts
an order of magnitude apart). Every component is in [0, 1], so every score is too.

Chroma calls block, so each runs in a worker thread. Results are cached per process in a
bounded, expiring `cachetools.TTLCache`. Adding a resolution clears the similar-case cache;
ingesting policies clears the policy cache and the BM25 index; a lookup in flight during
such a write does not cache what it read. Another process's writes are seen once an entry
expires (TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import bm25s
import chromadb
import httpx
import numpy as np
import Stemmer
from cachetools import LRUCache, TTLCache
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import ChromaError, NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function

from models.domain import PolicyHit, PrecedentHit, ResolutionRecord
from services.errors import IntegrationError
from services.errors import NotFoundError as MissingError
from services.knowledge.embeddings import MAX_SEQ_LENGTH, FloatArray, MiniLMEmbedder
from services.knowledge.policy_docs import PolicyFile, SkippedFile, scan_policy_dir
from services.knowledge.quantities import Band, decode_bands, quantities
from services.knowledge.vocabulary import concept_terms
from services.settings import Settings

POLICY_COLLECTION = "company_policies"
RESOLUTION_COLLECTION = "dispute_resolutions"

TEXT_WEIGHT = 0.55
TYPE_WEIGHT = 0.25
AMOUNT_WEIGHT = 0.10
SEGMENT_WEIGHT = 0.10
DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.25
HEADING_WEIGHT = 0.05
BAND_WEIGHT = 0.1
INFORMATIVE_FACTOR = 0.75
POLICY_WEIGHT = 0.3

_T = TypeVar("_T")
_V = TypeVar("_V")

# bm25s sets its logger to DEBUG when imported; let it follow the configured level.
logging.getLogger("bm25s").setLevel(logging.NOTSET)


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's embedding-function interface over the local MiniLM embedder."""

    def __init__(self, embedder: MiniLMEmbedder | None = None) -> None:
        self.embedder = embedder or MiniLMEmbedder()

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "paymentsagent-minilm-l6-v2"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return self.embedder.config

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        return ChromaEmbeddingFunction(
            MiniLMEmbedder(max_seq_length=int(config.get("max_seq_length", MAX_SEQ_LENGTH)))
        )


@dataclass
class IngestReport:
    """What one ingestion of the policies directory did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks_written: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class _ResultCache(Generic[_V]):
    """A `cachetools.TTLCache` (bounded, least recently used out first, expiring) behind a
    lock, since the event loop and Chroma's worker threads share it.

    `clear()` starts a new generation, and `put` stores a value only under the generation
    its `get` returned: a result read from Chroma before a write is not cached after it.
    """

    def __init__(self, maxsize: int, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._entries: TTLCache[Hashable, _V] = TTLCache(maxsize, ttl_seconds, timer=clock)
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, key: Hashable) -> tuple[_V | None, int]:
        """The live value under `key` (None if absent or expired) and the generation."""
        with self._lock:
            return self._entries.get(key), self._generation

    def put(self, key: Hashable, value: _V, generation: int) -> None:
        with self._lock:
            # With maxsize 0 caching is off (TTLCache refuses every item).
            if generation == self._generation and self._entries.maxsize > 0:
                self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def lexical_terms(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stemmed content words of each text, then the payments concepts it
    mentions (`services.knowledge.vocabulary`), for keyword scoring."""
    words: list[list[str]] = bm25s.tokenize(
        list(texts),
        # Keep one-character words (bm25s drops them by default): amounts split at their
        # punctuation ("$1,200" -> "1", "200"). Without them recall@3 on
        # tests/data/policy_queries.json falls from 0.92 to 0.90.
        token_pattern=r"(?u)\b\w+\b",
        stopwords="en_plus",  # NLTK's English stopwords
        # A Stemmer keeps state between calls and must not be shared by threads; it is cheap.
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )
    return [terms + concept_terms(text) for terms, text in zip(words, texts, strict=True)]


class _LexicalIndex:
    """The policy chunks held in memory (a few hundred, a few thousand at most): BM25 over
    them, scaled to [0, 1] per query; their embeddings, so the dense similarity of every
    chunk is one matrix product instead of a Chroma query; the embeddings of their
    headings, for heading similarity; and the bands of their table rows."""

    def __init__(
        self,
        ids: list[str],
        documents: list[str],
        headings: FloatArray | None = None,
        bands: Sequence[tuple[Band, ...]] = (),
        *,
        vectors: FloatArray | None = None,
        metadatas: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.ids = ids
        self.documents = documents
        self.metadatas = list(metadatas)
        # Row i: the unit embedding of chunk i (as stored), and of its "<title> - <section>".
        self.vectors = vectors
        self.headings = headings
        self._bands = dict(zip(ids, bands, strict=True)) if bands else {}
        # bm25s defaults to k1 = 1.5; 1.2 is Lucene's, which the hybrid weights were tuned with.
        self._bm25 = bm25s.BM25(k1=1.2, b=0.75, method="lucene", backend="numpy")
        corpus = lexical_terms(documents) if ids else []
        if ids:
            self._bm25.index(corpus, show_progress=False)
        frequency: dict[str, int] = {}
        for terms in corpus:
            for term in set(terms):
                frequency[term] = frequency.get(term, 0) + 1
        # Lucene's idf, as bm25s computes it.
        self._idf = {
            term: math.log(1 + (len(ids) - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }

    def scores(self, query: str) -> dict[str, float]:
        """BM25 of each matching chunk over the most the query could score, in [0, 1].

        Lucene's BM25 scores a term idf * tf / (tf + k1 * length norm), at most its idf,
        so the sum of the query terms' idf bounds every chunk's score. The ratio is the
        share of the query's keyword evidence a chunk holds, whatever the other chunks
        hold: a chunk that shares only a common word with the query scores little even
        when nothing matches better (scaled by the best match, it would score 1).
        """
        # A term counts once however often the query repeats it; a term no chunk has
        # cannot tell chunks apart.
        terms = [t for t in dict.fromkeys(lexical_terms([query])[0]) if t in self._idf]
        if not self.ids or not terms:
            return {}
        raw = self._bm25.get_scores(terms)
        bound = sum(self._idf[term] for term in terms)
        return {
            chunk_id: float(score) / bound
            for chunk_id, score in zip(self.ids, raw, strict=True)
            if score > 0
        }

    def band_matches(self, query: str) -> set[str]:
        """The chunks with a table row whose band holds a duration or amount of `query`."""
        asked = quantities(query)
        if not asked:
            return set()
        return {
            chunk_id
            for chunk_id, bands in self._bands.items()
            if any(band.holds(quantity) for band in bands for quantity in asked)
        }

    def heading_scores(self, vector: FloatArray) -> dict[str, float]:
        """Cosine of the query vector and each chunk's heading, clamped to [0, 1]."""
        if self.headings is None or not self.ids:
            return {}
        similarities = np.clip(self.headings @ vector, 0.0, 1.0)
        return dict(zip(self.ids, (float(x) for x in similarities), strict=True))


def policy_text_hash(text: str) -> str:
    """sha256 of a policy section's text with its whitespace normalised (its version id)."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def _version_fields(document: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A stored chunk's hash and ingestion version (chunks ingested before versioning:
    the hash of their text, version 0)."""
    return {
        "content_hash": str(metadata.get("text_hash") or policy_text_hash(document)),
        "policy_version": int(metadata.get("policy_version", 0)),
    }


def _policy_hit(chunk_id: str, document: str, metadata: dict[str, Any], score: float) -> PolicyHit:
    """A stored policy chunk as a search returns it, with its version fields."""
    return PolicyHit(
        chunk_id=chunk_id,
        policy_id=str(metadata["policy_id"]),
        title=str(metadata["title"]),
        section=str(metadata["section"]),
        source_file=str(metadata["source_file"]),
        text=document,
        score=round(min(1.0, max(0.0, score)), 4),
        **_version_fields(document, metadata),
    )


def _similarity(distance: float) -> float:
    """Cosine distance (0..2) to a relevance score in [0, 1]."""
    return min(1.0, max(0.0, 1.0 - distance))


def amount_closeness(a: Decimal, b: Decimal) -> float:
    """1 for equal amounts, falling to 0 for amounts an order of magnitude apart."""
    ratio = (abs(float(a)) + 1.0) / (abs(float(b)) + 1.0)
    return max(0.0, 1.0 - abs(math.log(ratio)) / math.log(10))


def resolution_document(record: ResolutionRecord) -> str:
    """The text embedded for a past resolution: the dispute first, as queries read."""
    return (
        f"{record.description}\n"
        f"Resolution: {record.resolution}\n"
        f"Reasoning: {record.reasoning}\n"
        f"Dispute type: {record.dispute_type.replace('_', ' ')}; customer segment: "
        f"{record.customer_segment}; amount: {record.amount} {record.currency}; "
        f"outcome: {record.outcome}."
    )


def resolution_metadata(record: ResolutionRecord) -> dict[str, str | int]:
    return {
        "case_id": record.case_id,
        "dispute_type": record.dispute_type,
        "amount": str(record.amount),
        "currency": record.currency,
        "customer_segment": record.customer_segment,
        "outcome": record.outcome,
    }


class ChromaPolicyStore:
    """The PolicyStore on ChromaDB, over an injected client and embedder."""

    def __init__(
        self,
        client: ClientAPI,
        embedder: MiniLMEmbedder,
        *,
        backend: str = "chroma",
        cache_size: int = 256,
        cache_ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self._client = client
        self._embedder = embedder
        self._embedding_function = ChromaEmbeddingFunction(embedder)
        self._collections: dict[str, Collection] = {}
        self._policy_cache: _ResultCache[tuple[PolicyHit, ...]] = _ResultCache(
            cache_size, cache_ttl_seconds, clock
        )
        self._case_cache: _ResultCache[tuple[PrecedentHit, ...]] = _ResultCache(
            cache_size, cache_ttl_seconds, clock
        )
        # One BM25 index over the policy chunks, rebuilt when it expires or policies change.
        self._lexical: _ResultCache[_LexicalIndex] = _ResultCache(1, cache_ttl_seconds, clock)
        self._lexical_lock = threading.Lock()
        self._vectors: LRUCache[str, FloatArray] = LRUCache(maxsize=64)
        self._vector_lock = threading.Lock()

    @property
    def embedder(self) -> MiniLMEmbedder:
        return self._embedder

    def _query_vector(self, text: str) -> FloatArray:
        # generate_resolution asks for policies and for cases with the same text: embed once.
        with self._vector_lock:
            vector = self._vectors.get(text)
        if vector is None:
            vector = self._embedder.embed_one(text)
            with self._vector_lock:
                self._vectors[text] = vector
        return vector

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a blocking Chroma operation (idempotent) in a worker thread."""
        try:
            try:
                return await asyncio.to_thread(fn, *args)
            except NotFoundError:
                # Another process reset the store: the cached collection handles point at
                # deleted collections. Reopen them once.
                self._collections.clear()
                self._lexical.clear()
                return await asyncio.to_thread(fn, *args)
        except (ChromaError, httpx.HTTPError, OSError) as exc:
            raise IntegrationError(
                str(exc) or type(exc).__name__, system="chroma", retryable=True
            ) from exc

    def _collection(self, name: str) -> Collection:
        collection = self._collections.get(name)
        if collection is None:
            collection = self._client.get_or_create_collection(
                name,
                embedding_function=self._embedding_function,  # type: ignore[arg-type]
                configuration={"hnsw": {"space": "cosine"}},
            )
            self._collections[name] = collection
        return collection

    # Policies

    async def search_policies(self, *, query: str, k: int = 3) -> list[PolicyHit]:
        """The `k` policy sections most relevant to `query`, best first, with scores."""
        key = (query, k)
        cached, generation = self._policy_cache.get(key)
        if cached is not None:
            return list(cached)
        hits = await self._run(self._search_policies, query, k)
        self._policy_cache.put(key, tuple(hits), generation)
        return hits

    def _lexical_index(self, collection: Collection) -> _LexicalIndex:
        with self._lexical_lock:  # one rebuild, not one per concurrent search
            index, generation = self._lexical.get(POLICY_COLLECTION)
            if index is None:
                stored = collection.get(include=["documents", "metadatas", "embeddings"])
                headings = [
                    f"{meta.get('title', '')} - {meta.get('section', '')}"
                    for meta in stored["metadatas"] or []
                ]
                unique = list(dict.fromkeys(headings))
                vectors = self._embedder.embed(unique)
                row = {heading: i for i, heading in enumerate(unique)}
                index = _LexicalIndex(
                    stored["ids"],
                    [doc or "" for doc in stored["documents"] or []],
                    vectors[[row[h] for h in headings]] if headings else None,
                    [decode_bands(str(m.get("bands") or "")) for m in stored["metadatas"] or []],
                    vectors=np.asarray(stored["embeddings"], dtype=np.float32),
                    metadatas=[dict(m) for m in stored["metadatas"] or []],
                )
                self._lexical.put(POLICY_COLLECTION, index, generation)
            return index

    def _search_policies(self, query: str, k: int) -> list[PolicyHit]:
        if k <= 0 or not query.strip():
            return []
        collection = self._collection(POLICY_COLLECTION)
        lexical = self._lexical_index(collection)
        if not lexical.ids:
            return []
        vector = self._query_vector(query)
        assert lexical.vectors is not None
        # Cosine of the query and every chunk (unit vectors), clamped to [0, 1]: exactly
        # what a Chroma query in cosine space gives, without the round trip.
        similarity = np.clip(lexical.vectors @ vector, 0.0, 1.0)
        nearest = np.argsort(-similarity, kind="stable")[: max(k * 8, 40)]
        lexical_scores = lexical.scores(query)
        in_band = lexical.band_matches(query)
        # The nearest chunks, then strong keyword matches and table rows holding the
        # query's duration or amount.
        strongest = sorted(lexical_scores.items(), key=lambda item: -item[1])[: k * 4]
        row = {chunk_id: i for i, chunk_id in enumerate(lexical.ids)}
        candidates = dict.fromkeys(
            [int(i) for i in nearest]
            + sorted(row[chunk_id] for chunk_id in {c for c, _ in strongest} | in_band)
        )
        dense = {lexical.ids[i]: float(similarity[i]) for i in candidates}
        chunks = {lexical.ids[i]: (lexical.documents[i], lexical.metadatas[i]) for i in candidates}
        heading_scores = lexical.heading_scores(vector)
        fused = {
            chunk_id: (
                DENSE_WEIGHT * dense[chunk_id]
                + LEXICAL_WEIGHT * lexical_scores.get(chunk_id, 0.0)
                + HEADING_WEIGHT * heading_scores.get(chunk_id, 0.0)
                + BAND_WEIGHT * (chunk_id in in_band)
            )
            * (INFORMATIVE_FACTOR if chunks[chunk_id][1].get("role") == "informative" else 1.0)
            for chunk_id in dense
        }
        # A policy that many chunks point to is more likely the governing one than a lone
        # close chunk of another policy: blend in the policy's mean of its best 3 chunks.
        by_policy: dict[str, list[float]] = {}
        for chunk_id, score in fused.items():
            by_policy.setdefault(str(chunks[chunk_id][1]["policy_id"]), []).append(score)
        policy_score = {
            policy_id: sum(sorted(scores, reverse=True)[:3]) / 3
            for policy_id, scores in by_policy.items()
        }
        ranked = sorted(
            (
                (
                    (1 - POLICY_WEIGHT) * score
                    + POLICY_WEIGHT * policy_score[str(chunks[chunk_id][1]["policy_id"])],
                    chunk_id,
                )
                for chunk_id, score in fused.items()
            ),
            key=lambda item: (-item[0], item[1]),
        )
        # Keep the best chunk of each section: the caller wants k sections, not k pieces
        # of the same table.
        hits: list[PolicyHit] = []
        seen: set[tuple[str, str]] = set()
        for score, chunk_id in ranked:
            document, metadata = chunks[chunk_id]
            section_key = (str(metadata["source_file"]), str(metadata["section"]))
            if section_key in seen:
                continue
            seen.add(section_key)
            hits.append(_policy_hit(chunk_id, document, metadata, score))
            if len(hits) == k:
                break
        return hits

    async def ingest_policies(self, *, directory: Path) -> IngestReport:
        """Bring `company_policies` in line with the .docx files of `directory`.

        Unchanged files (same content hash) are left alone; a changed file's chunks are
        replaced; chunks of files no longer in the directory are removed. Unreadable and
        non-.docx files are reported in `skipped`, and a previously ingested file that has
        become unreadable keeps its last good chunks.
        """
        if not directory.is_dir():
            raise MissingError(f"policies directory not found: {directory}")
        files, skipped = await asyncio.to_thread(
            scan_policy_dir, directory, count_tokens=self._embedder.count_tokens
        )
        report = await self._run(self._sync_policies, files, skipped)
        if report.changed:
            self._policy_cache.clear()
            self._lexical.clear()
        return report

    def _sync_policies(self, files: list[PolicyFile], skipped: list[SkippedFile]) -> IngestReport:
        collection = self._collection(POLICY_COLLECTION)
        existing = collection.get(include=["metadatas"])
        stored: dict[str, tuple[set[str], int]] = {}
        for metadata in existing["metadatas"] or []:
            source = str(metadata["source_file"])
            hashes, count = stored.get(source, (set(), 0))
            hashes.add(str(metadata.get("file_hash", "")))
            stored[source] = (hashes, count + 1)
        report = IngestReport(skipped=list(skipped))
        # One ingestion version for every chunk this ingestion writes: one above the last.
        version = 1 + max(
            (int(str(m.get("policy_version") or 0)) for m in existing["metadatas"] or []),
            default=0,
        )
        for policy_file in files:
            previous = stored.get(policy_file.source_file)
            if previous == ({policy_file.content_hash}, len(policy_file.chunks)):
                report.unchanged.append(policy_file.source_file)
                continue
            if previous is not None:
                collection.delete(where={"source_file": policy_file.source_file})
            collection.upsert(
                ids=[chunk.chunk_id for chunk in policy_file.chunks],
                # Embedded from each chunk's embedding text, not the stored document.
                embeddings=list(
                    self._embedder.embed([chunk.embedding_text for chunk in policy_file.chunks])
                ),
                documents=[chunk.text for chunk in policy_file.chunks],
                metadatas=[
                    chunk.metadata(file_hash=policy_file.content_hash)
                    | {"text_hash": policy_text_hash(chunk.text), "policy_version": version}
                    for chunk in policy_file.chunks
                ],
            )
            report.chunks_written += len(policy_file.chunks)
            (report.updated if previous is not None else report.added).append(
                policy_file.source_file
            )
        present = {f.source_file for f in files} | {s.source_file for s in skipped}
        for source in sorted(set(stored) - present):
            collection.delete(where={"source_file": source})
            report.removed.append(source)
        return report

    async def policy_sections(self) -> list[PolicyHit]:
        """Every stored policy chunk, with its hash and ingestion version (score 0)."""

        def read() -> list[PolicyHit]:
            stored = self._collection(POLICY_COLLECTION).get(include=["documents", "metadatas"])
            return [
                _policy_hit(chunk_id, document or "", dict(metadata), 0.0)
                for chunk_id, document, metadata in zip(
                    stored["ids"], stored["documents"] or [], stored["metadatas"] or [], strict=True
                )
            ]

        return await self._run(read)

    # Precedents

    async def similar_cases(
        self,
        *,
        query: str,
        dispute_type: str,
        amount: Decimal,
        customer_segment: str,
        k: int = 3,
        exclude_case_id: str | None = None,
    ) -> list[PrecedentHit]:
        """The `k` past resolutions most similar to this dispute, best first, with scores;
        never the resolution of `exclude_case_id` (a case is not its own precedent)."""
        key = (query, dispute_type, str(amount), customer_segment, k, exclude_case_id)
        cached, generation = self._case_cache.get(key)
        if cached is not None:
            return list(cached)
        hits = await self._run(
            self._similar_cases, query, dispute_type, amount, customer_segment, k, exclude_case_id
        )
        self._case_cache.put(key, tuple(hits), generation)
        return hits

    def _similar_cases(
        self,
        query: str,
        dispute_type: str,
        amount: Decimal,
        segment: str,
        k: int,
        exclude_case_id: str | None = None,
    ) -> list[PrecedentHit]:
        if k <= 0:
            return []
        collection = self._collection(RESOLUTION_COLLECTION)
        vector = self._query_vector(query)
        fetch = max(k * 20, 60)
        candidates: dict[str, tuple[str, dict[str, Any], float]] = {}

        def gather(where: dict[str, str] | None) -> None:
            result = collection.query(
                query_embeddings=[vector.tolist()],
                n_results=fetch,
                where=where,  # type: ignore[arg-type]
                include=["documents", "metadatas", "distances"],
            )
            for case_id, document, metadata, distance in zip(
                result["ids"][0],
                (result["documents"] or [[]])[0],
                (result["metadatas"] or [[]])[0],
                (result["distances"] or [[]])[0],
                strict=True,
            ):
                if exclude_case_id is not None and exclude_case_id in (
                    case_id,
                    metadata.get("case_id"),
                ):
                    continue  # the querying case's own earlier resolution
                candidates[case_id] = (document or "", dict(metadata), float(distance))

        gather(None)
        same_type = sum(
            1 for _, meta, _ in candidates.values() if meta.get("dispute_type") == dispute_type
        )
        if same_type < k:
            # Too few of this dispute type among the nearest texts: fetch them by type too,
            # so same-type precedents are never crowded out. A filtered search costs several
            # times an unfiltered one, hence only when needed.
            gather({"dispute_type": dispute_type})
        scored: list[tuple[float, str, Decimal]] = []
        for case_id, (_, metadata, distance) in candidates.items():
            stored_amount = Decimal(str(metadata.get("amount", "0")))
            score = (
                TEXT_WEIGHT * _similarity(distance)
                + TYPE_WEIGHT * (metadata.get("dispute_type") == dispute_type)
                + AMOUNT_WEIGHT * amount_closeness(stored_amount, amount)
                + SEGMENT_WEIGHT * (metadata.get("customer_segment") == segment)
            )
            scored.append((round(min(1.0, max(0.0, score)), 4), case_id, stored_amount))
        scored.sort(key=lambda item: (-item[0], item[1]))
        hits = []
        for score, case_id, stored_amount in scored[:k]:
            document, metadata, _ = candidates[case_id]
            hits.append(
                PrecedentHit(
                    case_id=str(metadata.get("case_id", case_id)),
                    dispute_type=str(metadata.get("dispute_type", "")),
                    amount=stored_amount,
                    customer_segment=str(metadata.get("customer_segment", "")),
                    outcome=str(metadata.get("outcome", "")),
                    text=document,
                    score=score,
                )
            )
        return hits

    async def add_resolution(self, *, record: ResolutionRecord) -> None:
        """Store a decided case for future similarity (upsert by case id)."""
        await self.add_resolutions(records=[record])

    async def add_resolutions(self, *, records: Sequence[ResolutionRecord]) -> int:
        """Upsert many decided cases by case id; return how many were written."""
        unique = {record.case_id: record for record in records}
        if not unique:
            return 0
        await self._run(self._upsert_resolutions, list(unique.values()))
        self._case_cache.clear()
        return len(unique)

    def _upsert_resolutions(self, records: list[ResolutionRecord]) -> None:
        self._collection(RESOLUTION_COLLECTION).upsert(
            ids=[record.case_id for record in records],
            documents=[resolution_document(record) for record in records],
            metadatas=[resolution_metadata(record) for record in records],
        )

    # Administration

    async def counts(self) -> dict[str, int]:
        """Number of stored documents per collection."""

        def count() -> dict[str, int]:
            return {
                name: self._collection(name).count()
                for name in (POLICY_COLLECTION, RESOLUTION_COLLECTION)
            }

        return await self._run(count)

    async def reset(self) -> None:
        """Delete both collections; they are recreated empty on next use."""

        def drop() -> None:
            for name in (POLICY_COLLECTION, RESOLUTION_COLLECTION):
                with contextlib.suppress(NotFoundError, ValueError):
                    self._client.delete_collection(name)
            self._collections.clear()

        await self._run(drop)
        self._lexical.clear()
        self._policy_cache.clear()
        self._case_cache.clear()


def chroma_client(settings: Settings) -> ClientAPI:
    """A Chroma client from settings: server at CHROMA_URL, else embedded at CHROMA_DB_PATH."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlsplit(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise IntegrationError(
                f"CHROMA_URL must be http(s)://host[:port], got {settings.chroma_url!r}",
                system="chroma",
                retryable=False,
            )
        ssl = url.scheme == "https"
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=chroma_settings,
        )
    settings.chroma_db_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_db_path), settings=chroma_settings)


def open_policy_store(
    settings: Settings, *, embedder: MiniLMEmbedder | None = None
) -> ChromaPolicyStore:
    """Build the ChromaPolicyStore the settings describe (embedded or server)."""
    try:
        client = chroma_client(settings)
    except (ChromaError, httpx.HTTPError, OSError, ValueError) as exc:
        raise IntegrationError(
            f"cannot open Chroma at {settings.chroma_url or settings.chroma_db_path}: {exc}",
            system="chroma",
            retryable=True,
        ) from exc
    return ChromaPolicyStore(
        client,
        embedder or MiniLMEmbedder(),
        backend="chroma-server" if settings.chroma_url else "chroma-embedded",
    )


__all__ = [
    "POLICY_COLLECTION",
    "RESOLUTION_COLLECTION",
    "ChromaEmbeddingFunction",
    "ChromaPolicyStore",
    "IngestReport",
    "amount_closeness",
    "chroma_client",
    "open_policy_store",
    "policy_text_hash",
    "resolution_document",
]
