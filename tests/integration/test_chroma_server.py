"""CHROMA_URL: the store over a real Chroma server (`chroma run`) on loopback.

Two stores with their own clients stand for two worker processes sharing the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from models.domain import ResolutionRecord
from services.errors import IntegrationError
from services.knowledge.chroma_store import open_policy_store
from services.knowledge.embeddings import MiniLMEmbedder
from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS
from services.settings import Settings
from tools.write_policies import write_policies

CHROMA_CLI = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMA_CLI.exists():
        pytest.fail(f"chroma CLI not found at {CHROMA_CLI}")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(CHROMA_CLI),
            "run",
            "--path",
            str(data / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                output = (data / "server.log").read_text()
                pytest.fail(f"chroma run exited with {server.returncode}: {output}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma server did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _settings(chroma_url: str, tmp_path: Path) -> Settings:
    return Settings(_env_file=None, chroma_url=chroma_url, chroma_db_path=tmp_path / "unused")


async def test_store_over_a_chroma_server(
    chroma_url: str, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    worker_a = open_policy_store(_settings(chroma_url, tmp_path), embedder=embedder)
    worker_b = open_policy_store(_settings(chroma_url, tmp_path), embedder=embedder)
    assert worker_a.backend == worker_b.backend == "chroma-server"
    assert not (tmp_path / "unused").exists(), "the embedded path must not be used"

    write_policies(tmp_path / "policies")
    report = await worker_a.ingest_policies(directory=tmp_path / "policies")
    assert len(report.added) == 6
    assert await worker_a.add_resolutions(records=HISTORICAL_RESOLUTIONS) == len(
        HISTORICAL_RESOLUTIONS
    )

    hits = await worker_b.search_policies(
        query="I cancelled on the 2nd and was still charged on the 15th", k=3
    )
    assert ("POL-CAN-003", "5. Charges after a cancellation request") in {
        (h.policy_id, h.section) for h in hits
    }

    record = ResolutionRecord(
        case_id="500SERVER0001",
        dispute_type="duplicate_charge",
        description="Charged twice for the April invoice after a payment page timeout.",
        resolution="Full refund of the duplicate $59.00 charge.",
        reasoning="Both captures succeeded for the same invoice.",
        amount=Decimal("59.00"),
        customer_segment="standard",
        outcome="full_refund",
    )
    await worker_a.add_resolution(record=record)
    cases = await worker_b.similar_cases(
        query="Charged twice for the April invoice after a timeout",
        dispute_type="duplicate_charge",
        amount=Decimal("59.00"),
        customer_segment="standard",
    )
    assert cases[0].case_id == "500SERVER0001"
    assert (await worker_b.counts())["dispute_resolutions"] == len(HISTORICAL_RESOLUTIONS) + 1


def test_unreachable_server_fails_fast_as_an_integration_error(tmp_path: Path) -> None:
    settings = _settings(f"http://127.0.0.1:{_free_port()}", tmp_path)
    with pytest.raises(IntegrationError) as raised:
        open_policy_store(settings, embedder=MiniLMEmbedder())
    assert raised.value.system == "chroma"
