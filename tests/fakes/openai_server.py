"""A local OpenAI-compatible chat-completions server for tests, on 127.0.0.1.

It speaks the wire format the OpenAI SDK (and so langchain-openai) expects: `POST
/v1/chat/completions` answered with a `chat.completion` object whose `usage` carries
`prompt_tokens_details.cached_tokens`, and OpenAI-shaped error bodies. Like the real API it
refuses a strict `response_format` json_schema that is not valid for strict mode (every
property required, `additionalProperties: false`), and by default answers with JSON that
conforms to the schema. Tests script it: queue `Reply` objects (a given content, a 429, a
500, a slow answer, an absurd or injected proposal), or install a `responder` that sees the
request. Every request is recorded, with the bodies of the answers, so tests can check
costs against the usage actually returned.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.drafting.tokens import count_tokens


@dataclass
class Reply:
    """One scripted answer. `content` None: a default answer conforming to the schema."""

    content: str | dict[str, Any] | None = None
    status: int = 200
    delay: float = 0.0
    prompt_tokens: int | None = None  # None: counted from the request
    cached_tokens: int = 0
    completion_tokens: int | None = None  # None: counted from the content
    finish_reason: str = "stop"
    refusal: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str | None = None
    model: str | None = None

    @classmethod
    def rate_limited(cls, *, retry_after: float | None = 0) -> Reply:
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        return cls(status=429, headers=headers, error_message="Rate limit reached for requests")

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status, error_message="The server had an error processing your request")

    @classmethod
    def slow(cls, seconds: float, content: str | dict[str, Any] | None = None) -> Reply:
        return cls(content=content, delay=seconds)


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    authorized: bool
    status: int = 0
    response: dict[str, Any] | None = None
    schema_errors: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def text(self) -> str:
        """All message contents, joined."""
        parts = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):
                parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
            else:
                parts.append(str(content or ""))
        return "\n".join(parts)

    @property
    def usage(self) -> dict[str, Any]:
        return dict((self.response or {}).get("usage") or {})


# JSON schema: strict-mode rules and a small validator/generator for the subset OpenAI uses.


def strict_schema_errors(schema: Any, path: str = "") -> list[str]:
    """Why `schema` would be refused in strict mode (empty when it is acceptable)."""
    errors: list[str] = []
    if not isinstance(schema, dict):
        return errors
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            errors.append(f"{path or '(root)'}: 'additionalProperties' must be false")
        missing = sorted(set(properties) - set(schema.get("required", [])))
        if missing:
            errors.append(f"{path or '(root)'}: 'required' is missing {missing}")
        for name, sub in properties.items():
            errors += strict_schema_errors(sub, f"{path}.{name}")
    for key in ("items",):
        if key in schema:
            errors += strict_schema_errors(schema[key], f"{path}[]")
    for key in ("anyOf",):
        for i, sub in enumerate(schema.get(key, [])):
            errors += strict_schema_errors(sub, f"{path}<{key}{i}>")
    for name, sub in (schema.get("$defs") or {}).items():
        errors += strict_schema_errors(sub, f"$defs.{name}")
    return errors


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = root["$defs"][ref.split("/")[-1]]
        return resolved
    return schema


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = ""
) -> list[str]:
    """Where `value` does not conform to `schema` (the subset strict mode allows)."""
    schema = _resolve(schema, root)
    where = path or "(root)"
    if "anyOf" in schema:
        if any(not schema_errors(value, s, root, path) for s in schema["anyOf"]):
            return []
        return [f"{where}: matches no anyOf branch"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_TYPES[k](value) for k in kinds if k in _TYPES):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    errors: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing {name!r}")
        if schema.get("additionalProperties") is False:
            errors += [f"{where}: unexpected {k!r}" for k in value if k not in properties]
        for name, sub in properties.items():
            if name in value:
                errors += schema_errors(value[name], sub, root, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    return errors


def example_for(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A minimal value conforming to `schema`."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return example_for(schema["anyOf"][0], root)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: example_for(sub, root) for name, sub in schema.get("properties", {}).items()}
    defaults: dict[str, Any] = {"array": [], "string": "", "number": 0, "integer": 0}
    return defaults.get(str(kind))


class FakeOpenAIServer:
    """Start with `start()` (or as a context manager); `base_url` ends in `/v1`."""

    def __init__(
        self,
        *,
        responder: Callable[[RecordedRequest], Reply | None] | None = None,
        model: str = "gpt-4o-mini-2024-07-18",
    ) -> None:
        self.responder = responder
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Control

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def completions(self) -> list[RecordedRequest]:
        """The requests answered with a completion (status 200)."""
        return [r for r in self.requests if r.status == 200]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Serving

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            reply = self.responder(request)
            if reply is not None:
                return reply
        return Reply()

    def _answer(
        self, request: RecordedRequest
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        body = request.body
        response_format = body.get("response_format") or {}
        json_schema = response_format.get("json_schema") or {}
        schema = json_schema.get("schema")
        if response_format.get("type") == "json_schema" and json_schema.get("strict"):
            problems = strict_schema_errors(schema)
            if problems:
                name = json_schema.get("name", "schema")
                message = f"Invalid schema for response_format '{name}': {'; '.join(problems)}"
                return 400, _error(message, "invalid_request_error", "response_format"), {}, 0.0
        reply = self._next_reply(request)
        if reply.status != 200:
            kind = "requests" if reply.status == 429 else "server_error"
            message = reply.error_message or f"HTTP {reply.status}"
            return reply.status, _error(message, kind, None), reply.headers, reply.delay
        content: str
        if reply.content is None:
            value = example_for(schema, schema) if isinstance(schema, dict) else "ok"
            content = value if isinstance(value, str) else json.dumps(value)
        elif isinstance(reply.content, dict):
            content = json.dumps(reply.content)
        else:
            content = reply.content
        if isinstance(schema, dict):
            try:
                request.schema_errors = schema_errors(json.loads(content), schema, schema)
            except json.JSONDecodeError as exc:
                request.schema_errors = [f"not JSON: {exc}"]
        prompt_tokens = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else sum(count_tokens(str(m.get("content") or "")) + 3 for m in request.messages)
            + (count_tokens(json.dumps(schema)) if schema else 0)
            + 3
        )
        completion_tokens = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else count_tokens(content)
        )
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None if reply.refusal else content,
                        "refusal": reply.refusal,
                    },
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        }
        return 200, answer, reply.headers, reply.delay

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                # The drafter's start-up check: one cheap authenticated call (any key here).
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, _error("unknown path", "invalid_request_error", None), {})
                    return
                models = [{"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"}]
                self._send(200, {"object": "list", "data": models}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, _error("body is not JSON", "invalid_request_error", None), {})
                    return
                request = RecordedRequest(
                    path=self.path,
                    body=body,
                    authorized=bool(self.headers.get("authorization")),
                )
                with fake._lock:
                    fake.requests.append(request)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    request.status = 404
                    self._send(404, _error("unknown path", "invalid_request_error", None), {})
                    return
                if not request.authorized:
                    request.status = 401
                    self._send(401, _error("no API key", "invalid_request_error", None), {})
                    return
                status, answer, headers, delay = fake._answer(request)
                request.status, request.response = status, answer
                if delay:
                    time.sleep(delay)
                self._send(status, answer, headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler


def _error(message: str, kind: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


@contextmanager
def running_server(
    responder: Callable[[RecordedRequest], Reply | None] | None = None,
) -> Iterator[FakeOpenAIServer]:
    """A started server, stopped on exit."""
    server = FakeOpenAIServer(responder=responder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["FakeOpenAIServer", "RecordedRequest", "Reply", "running_server"]
