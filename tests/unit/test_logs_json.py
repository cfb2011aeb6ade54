"""The console: readable lines (a library's INFO in the log file only), or with
LOG_FORMAT=json the log file's JSON lines on stdout, for containers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.logs import bind_run_id, configure_logging
from services.settings import Settings

RUN_ID = "3f1e2d9c-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit_a_run() -> None:
    with bind_run_id(RUN_ID):
        logging.getLogger("workflows.runner").info("step fetch_data done, key sk_test_%s", "x" * 24)
    logging.getLogger("pgserver").info("Running commandline: initdb ...")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate")
    logging.getLogger("services.drafting").warning("drafter openai:gpt-4o-mini is not reachable")
    for handler in logging.getLogger().handlers:
        handler.flush()


def file_lines(log_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (log_dir / "workflow.log").read_text().splitlines()]


def test_json_format_writes_the_file_lines_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path, "INFO", log_format="json")

    emit_a_run()

    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("workflows.runner", "INFO"),
        ("pgserver", "INFO"),
        ("alembic.runtime.plugins", "INFO"),
        ("services.drafting", "WARNING"),
    ]
    assert lines[0]["run_id"] == RUN_ID
    assert "sk_test_xxx" not in out
    assert lines == file_lines(tmp_path)
    assert err == ""


def test_text_format_keeps_library_info_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path, "INFO", log_format="text")

    emit_a_run()

    out, err = capsys.readouterr()
    console = err.splitlines()
    assert out == ""
    assert len(console) == 2, console
    assert "INFO" in console[0] and f"[{RUN_ID[:8]}] step fetch_data done" in console[0]
    assert "WARNING" in console[1] and "not reachable" in console[1]
    assert "sk_test_xxx" not in err
    assert "initdb" not in err and "setup plugin" not in err
    in_file = {line["logger"] for line in file_lines(tmp_path)}
    assert {"pgserver", "alembic.runtime.plugins"} <= in_file


def test_log_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert Settings(_env_file=None).log_format == "json"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(_env_file=None)  # type: ignore[call-arg]
