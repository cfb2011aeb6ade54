"""Logs: JSON lines with the run id, and no secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from services.logs import bind_run_id, configure_logging, redact


@pytest.mark.parametrize(
    "secret",
    [
        "sk_live_51HxYzAbCdEfGhIjKlMn",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "Bearer 00Dxx0000001gPL!AQ4AQFakeTokenValue",
        "pa_" + "A1b2C3d4" * 4,
        "password=hunter2hunter2",
    ],
)
def test_secrets_are_masked(secret: str) -> None:
    masked = redact(f"calling upstream with {secret} now")
    assert secret not in masked
    assert "[redacted]" in masked


def test_log_lines_are_json_with_run_id_and_masked(tmp_path: Path) -> None:
    configure_logging(tmp_path, "INFO", console=False)
    try:
        with bind_run_id("3f1e2d9c-0000-4000-8000-000000000001"):
            logging.getLogger("test").info("refund with key %s", "sk_test_" + "x" * 24)
        logging.getLogger("test").info("no run here")
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        configure_logging(tmp_path, "INFO", console=False)
    lines = [json.loads(line) for line in (tmp_path / "workflow.log").read_text().splitlines()]
    by_message = {line["message"].split(" ")[0]: line for line in lines}
    assert by_message["refund"]["run_id"] == "3f1e2d9c-0000-4000-8000-000000000001"
    assert "sk_test_xxx" not in by_message["refund"]["message"]
    assert by_message["no"]["run_id"] is None
