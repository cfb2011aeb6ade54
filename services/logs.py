"""Logging: JSON lines to logs/workflow.log (rotating), readable lines on the console
(or, with LOG_FORMAT=json, the same JSON lines on stdout, for containers).

Every record made while a run is being driven carries its `run_id` (a context variable),
and a filter masks anything that looks like a key, token or password.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

_SECRET_PATTERNS = [
    re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{6,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{10,}"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-~+/=!]{8,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|password|secret)=([^&\s]+)"),
    re.compile(r"\bpa_[A-Za-z0-9_\-]{20,}"),
]


def redact(text: str) -> str:
    """Mask keys, bearer tokens and secrets in a log message."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(0)[:4] + "…[redacted]", text)
    return text


@contextmanager
def bind_run_id(run_id: str) -> Iterator[None]:
    """Tag every log record made inside the block with `run_id`."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_prepared", False):  # the other handler did it already
            return True
        if not getattr(record, "run_id", None):
            record.run_id = _run_id.get()
        record.msg = redact(record.getMessage())
        record.args = None
        record._prepared = True
        return True


# The project's own loggers; everything else is a library, shown on the console only from
# WARNING (its INFO lines still go to the log file).
_OWN_LOGGERS = ("payments_agent", "workflows", "services", "agents", "api", "cli", "utils")


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(_OWN_LOGGERS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", None)
        prefix = f"[{run_id[:8]}] " if run_id else ""
        line = (
            f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} "
            f"{record.levelname:<7} {prefix}{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure_logging(
    log_dir: Path,
    level: str = "INFO",
    *,
    console: bool = True,
    log_format: Literal["text", "json"] = "text",
) -> None:
    """Install the file and console handlers on the root logger (once per process).

    `text`: readable lines on stderr, the project's INFO and everyone's WARNING (a
    library's INFO goes to the file only). `json`: every record the file gets, as the
    file's JSON lines on stdout instead.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level.upper())
    context = _ContextFilter()
    log_dir.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        log_dir / "workflow.log", maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(JsonFormatter())
    file_handler.addFilter(context)
    root.addHandler(file_handler)
    if console and log_format == "json":
        structured = logging.StreamHandler(sys.stdout)
        structured.setFormatter(JsonFormatter())
        structured.addFilter(context)
        root.addHandler(structured)
    elif console:
        stream = logging.StreamHandler()
        stream.setFormatter(ConsoleFormatter())
        stream.addFilter(_ConsoleFilter())
        stream.addFilter(context)
        root.addHandler(stream)
    for noisy in (
        "httpx",
        "botocore",
        "urllib3",
        "werkzeug",
        "chromadb",
        "uvicorn.access",
        "stripe",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
