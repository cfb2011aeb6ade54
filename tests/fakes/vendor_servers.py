"""Local HTTP servers that speak Salesforce, Zuora and Stripe wire formats.

Each server listens on 127.0.0.1 (a free port), runs in a background thread, records every
request it receives, and can be told to fail: `fail(status, ...)` answers the next matching
requests with the vendor's own error body, `stall(seconds)` delays them (for timeouts), and
`drop_response()` executes them but closes the connection before answering (a response lost
after the money moved). They are seeded from a `SandboxDataset`, so a real backend pointed
at them sees the same customers, cases, subscriptions and charges as sandbox mode.

    with vendor_servers(dataset) as servers:
        env = servers.environment()   # CRM_BACKEND=salesforce, CRM_BASE_URL=..., ...

or one at a time: `with FakeStripe(dataset=dataset) as stripe_server: ...`.

Like the vendors, Zuora and Stripe remember an `Idempotency-Key` for 24 hours only:
`idempotency_ttl` (seconds, a constructor argument and an attribute) shortens that, and
`expire_idempotency_keys()` forgets every key at once. After expiry the same key makes a
new credit memo or refund, as it would in production. Stripe refunds can be created
`pending` (`pending_charges`, `pending_next`) and settled later by `settle_refund`.

Stripe also answers card disputes: `add_dispute` opens one on a charge (which then refuses
refunds with `charge_disputed`), evidence files are uploaded (multipart, to the same
server, which stands in for files.stripe.com too), evidence is submitted or the dispute
closed, `settle_dispute` decides it, and `dispute_event` / `early_fraud_warning_event`
build the webhook events Stripe would send, which `signed_event` signs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import stripe

from models.domain import (
    DISPUTE_RESPONDABLE_STATUSES,
    BillingData,
    Charge,
    CRMAccount,
    CRMCase,
    Dispute,
    EarlyFraudWarning,
    Subscription,
    to_minor_units,
)
from services.integrations.protocols import (
    DISPUTE_REASONS,
    EVIDENCE_FILE_MAX_BYTES,
    EVIDENCE_TEXT_MAX_CHARS,
    EVIDENCE_TOTAL_MAX_CHARS,
    FILE_EVIDENCE_FIELDS,
    TEXT_EVIDENCE_FIELDS,
)
from services.integrations.stripe_webhooks import sign_payload
from services.sandbox.dataset import SandboxDataset

# Requests, replies and the server machinery shared by the three vendors.


def dump_json(value: Any) -> bytes:
    """JSON with Decimals written as exact numbers, as the vendors' servers write them."""

    def encode(item: Any) -> str:
        if isinstance(item, Decimal):
            return format(item, "f")
        if isinstance(item, dict):
            return (
                "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in item.items()) + "}"
            )
        if isinstance(item, list | tuple):
            return "[" + ",".join(encode(v) for v in item) + "]"
        return json.dumps(item)

    return encode(value).encode()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(
            status, dump_json(payload), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass
class _Scripted:
    method: str | None
    path: str | None
    remaining: int
    reply: Reply | None = None
    delay: float = 0.0
    drop_response: bool = False
    hold: float = 0.0

    def matches(self, request: RecordedRequest) -> bool:
        return (self.method is None or self.method.upper() == request.method) and (
            self.path is None or request.path.startswith(self.path)
        )


# A day, as Stripe and Zuora keep an idempotency key.
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60


class IdempotencyCache:
    """Stored replies by idempotency key, each forgotten `ttl` seconds after it was set."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, Any, Reply]] = {}

    def get(self, key: str) -> tuple[Any, Reply] | None:
        """The fingerprint and reply stored under `key`, unless it has expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, fingerprint, reply = entry
        if self.clock() - stored_at >= self.ttl:
            del self._entries[key]
            return None
        return fingerprint, reply

    def put(self, key: str, fingerprint: Any, reply: Reply) -> None:
        self._entries[key] = (self.clock(), fingerprint, reply)

    def expire_all(self) -> None:
        self._entries.clear()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    vendor: VendorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is part of the tests, not a server fault.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and the
    # client's delayed ACK add 40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=split.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = self.server.vendor.dispatch(request)
        if reply is None:
            self.close_connection = True  # executed, but the client never hears back
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class VendorServer:
    """A vendor's API on 127.0.0.1: start/stop (or `with`), recorded requests, failures."""

    system: ClassVar[str] = "vendor"

    def __init__(self, *, token: str) -> None:
        self.token = token
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._script: list[_Scripted] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []  # exceptions raised by the fake itself

    # lifecycle

    def start(self) -> Self:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.vendor = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.system}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"fake {self.system} server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # what was received

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Received requests whose path starts with `path` (and with `method`, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path) and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # scripted behaviour

    def fail(
        self,
        status: int,
        *,
        message: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with `status` and the vendor's error body."""
        reply = self.error_reply(status, message or f"scripted HTTP {status}")
        if body is not None:
            reply = Reply.json(status, body)
        if headers:
            reply = Reply(reply.status, reply.body, {**reply.headers, **headers})
        self._add(_Scripted(method, path, times, reply=reply))

    def reply_with(
        self, reply: Reply, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` matching requests with exactly `reply`."""
        self._add(_Scripted(method, path, times, reply=reply))

    def stall(
        self, seconds: float, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> None:
        """Delay the next matching requests by `seconds` before handling them normally."""
        self._add(_Scripted(method, path, times, delay=seconds))

    def drop_response(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        hold: float = 0.0,
    ) -> None:
        """Execute the next matching requests, then close the connection without a reply.

        With `hold`, the connection is first kept open for that long (or until the server
        stops), so a test can kill the client while the vendor has already acted on it.
        """
        self._add(_Scripted(method, path, times, drop_response=True, hold=hold))

    def wait_for(
        self, path: str, *, method: str | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until `count` matching requests arrived (from async code: in a thread)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests_to(path, method)
            if len(seen) >= count:
                return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {count} request(s) to {path} arrived")
            time.sleep(0.01)

    def _add(self, scripted: _Scripted) -> None:
        with self._lock:
            self._script.append(scripted)

    def _take(self, request: RecordedRequest) -> _Scripted | None:
        for scripted in self._script:
            if scripted.remaining > 0 and scripted.matches(request):
                scripted.remaining -= 1
                if scripted.remaining == 0:
                    self._script.remove(scripted)
                return scripted
        return None

    def dispatch(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self._requests.append(request)
            scripted = self._take(request)
        if scripted is not None and scripted.delay:
            self._stopping.wait(scripted.delay)
        if scripted is not None and scripted.reply is not None:
            return scripted.reply
        if request.header("authorization") != f"Bearer {self.token}":
            return self.unauthorized()
        try:
            with self._lock:
                reply = self.handle(request)
        except Exception as exc:  # the fake's own bug: make it loud in the test
            self.errors.append(repr(exc))
            reply = self.error_reply(500, f"fake server error: {exc!r}")
        if scripted is not None and scripted.drop_response:
            self._stopping.wait(scripted.hold)
            return None
        return reply

    # vendor specifics

    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> Reply:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        return self.error_reply(401, "unauthorized")


# Salesforce REST: sObject rows, SOQL queries with paging, PATCH updates.

SF_CASE_FIELDS = (
    "Id",
    "CaseNumber",
    "AccountId",
    "Subject",
    "Description",
    "Status",
    "Priority",
    "CreatedDate",
    "LastModifiedDate",
    "Dispute_Type__c",
    "Amount__c",
    "Charge_Id__c",
    "Outage_Hours__c",
    "Resolution_Summary__c",
    "Resolution_Key__c",
)
SF_ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "Type",
    "Customer_Segment__c",
    "Email__c",
    "BillingCountry",
    "BillingState",
    "Stripe_Customer_Id__c",
    "Zuora_Account_Id__c",
    "CreatedDate",
)
SF_READ_ONLY = {"Id", "CaseNumber", "CreatedDate", "LastModifiedDate"}
SF_DATETIME_FIELDS = {"CreatedDate", "LastModifiedDate"}


def sf_datetime(value: datetime) -> str:
    """Salesforce's dateTime rendering, e.g. `2024-05-01T12:00:00.000+0000`."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def salesforce_case(case: CRMCase, *, multi_currency: bool = False) -> dict[str, Any]:
    """A Case row as Salesforce stores it, from the domain case."""
    row: dict[str, Any] = {
        "Id": case.case_id,
        "CaseNumber": case.case_number,
        "AccountId": case.account_id,
        "Subject": case.subject,
        "Description": case.description,
        "Status": case.status,
        "Priority": case.priority,
        "CreatedDate": sf_datetime(case.created_at),
        "LastModifiedDate": sf_datetime(case.created_at),
        "Dispute_Type__c": case.dispute_type or None,
        "Amount__c": case.amount,
        "Charge_Id__c": case.charge_id,
        "Outage_Hours__c": case.outage_hours,
        "Resolution_Summary__c": None,
        "Resolution_Key__c": None,
    }
    if multi_currency:
        row["CurrencyIsoCode"] = case.currency.upper()
    return row


def salesforce_account(account: CRMAccount) -> dict[str, Any]:
    """An Account row as Salesforce stores it, from the domain account."""
    return {
        "Id": account.account_id,
        "Name": account.name,
        "Type": account.type,
        "Customer_Segment__c": account.segment.capitalize(),
        "Email__c": account.email,
        "BillingCountry": account.billing_country,
        "BillingState": account.billing_state,
        "Stripe_Customer_Id__c": account.stripe_customer_id,
        "Zuora_Account_Id__c": account.zuora_account_id,
        "CreatedDate": sf_datetime(datetime(2020, 1, 1, tzinfo=UTC)),
    }


class SOQLError(ValueError):
    pass


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<direction>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SOQL_VALUE = (
    r"'(?:[^'\\]|\\.)*'|null|true|false"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})"
    r"|-?\d+(?:\.\d+)?"
)
_SOQL_CONDITION = re.compile(
    rf"\s*(?P<field>\w+)\s*(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>{_SOQL_VALUE})\s*", re.IGNORECASE
)
_SOQL_AND = re.compile(r"AND\b", re.IGNORECASE)
_SOQL_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _soql_literal(text: str) -> Any:
    lowered = text.lower()
    if lowered == "null":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.startswith("'"):
        return re.sub(r"\\(.)", lambda m: _SOQL_ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
    if "T" in text:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return Decimal(text)


def _soql_where(clause: str) -> list[tuple[str, str, Any]]:
    conditions: list[tuple[str, str, Any]] = []
    position = 0
    while True:
        match = _SOQL_CONDITION.match(clause, position)
        if match is None:
            raise SOQLError(f"unexpected token at {clause[position : position + 30]!r}")
        conditions.append((match["field"], match["op"], _soql_literal(match["value"])))
        position = match.end()
        if position == len(clause):
            return conditions
        connector = _SOQL_AND.match(clause, position)
        if connector is None:
            raise SOQLError(f"only AND is supported, at {clause[position : position + 30]!r}")
        position = connector.end()


def _sf_compare(stored: Any, op: str, literal: Any, field_name: str) -> bool:
    if literal is None:
        if op not in ("=", "!="):
            raise SOQLError("null only compares with = or !=")
        return (stored is None) == (op == "=")
    if stored is None:
        return op == "!="
    if field_name in SF_DATETIME_FIELDS:
        if not isinstance(literal, datetime):
            raise SOQLError(f"{field_name} compares with a dateTime literal")
        stored = datetime.fromisoformat(stored)
    elif isinstance(literal, Decimal):
        stored = Decimal(stored)
    elif isinstance(literal, datetime):
        raise SOQLError(f"{field_name} is not a dateTime field")
    if op == "=":
        return bool(stored == literal)
    if op == "!=":
        return bool(stored != literal)
    if op == "<":
        return bool(stored < literal)
    if op == "<=":
        return bool(stored <= literal)
    if op == ">":
        return bool(stored > literal)
    return bool(stored >= literal)


class IdempotentVendorServer(VendorServer):
    """A vendor that remembers each Idempotency-Key for a day (Zuora's and Stripe's 24
    hours), or for `idempotency_ttl` seconds as a test sets it."""

    def __init__(self, *, token: str) -> None:
        super().__init__(token=token)
        self._idempotent = IdempotencyCache(ttl=IDEMPOTENCY_TTL_SECONDS)

    @property
    def idempotency_ttl(self) -> float:
        """Seconds an Idempotency-Key is remembered."""
        return self._idempotent.ttl

    @idempotency_ttl.setter
    def idempotency_ttl(self, seconds: float) -> None:
        with self._lock:
            self._idempotent.ttl = seconds

    def expire_idempotency_keys(self) -> None:
        """Forget every Idempotency-Key now, as the vendor does a day after each was set."""
        with self._lock:
            self._idempotent.expire_all()


class FakeSalesforce(VendorServer):
    """Salesforce REST (`/services/data/{version}`): Case and Account rows, SOQL, PATCH."""

    system = "salesforce"

    def __init__(
        self,
        *,
        token: str = "sf-test-token",
        api_version: str = "v60.0",
        page_size: int = 2000,
        multi_currency: bool = False,
        dataset: SandboxDataset | None = None,
    ) -> None:
        super().__init__(token=token)
        self.api_version = api_version
        self.page_size = page_size
        self.multi_currency = multi_currency
        self.cases: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self._cursors: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self._cursor_ids = itertools.count(1)
        if dataset is not None:
            self.seed(dataset)

    def seed(self, dataset: SandboxDataset) -> None:
        for account in dataset.accounts.values():
            self.accounts[account.account_id] = salesforce_account(account)
        for case in dataset.cases.values():
            self.cases[case.case_id] = salesforce_case(case, multi_currency=self.multi_currency)

    def _fields(self, sobject: str) -> tuple[str, ...]:
        if sobject == "Account":
            return SF_ACCOUNT_FIELDS
        return (*SF_CASE_FIELDS, "CurrencyIsoCode") if self.multi_currency else SF_CASE_FIELDS

    def _table(self, sobject: str) -> dict[str, dict[str, Any]]:
        return self.accounts if sobject == "Account" else self.cases

    def error_reply(self, status: int, message: str) -> Reply:
        code = {
            400: "MALFORMED_QUERY",
            401: "INVALID_SESSION_ID",
            403: "INSUFFICIENT_ACCESS",
            404: "NOT_FOUND",
            429: "REQUEST_LIMIT_EXCEEDED",
            503: "SERVER_UNAVAILABLE",
        }.get(status, "UNKNOWN_EXCEPTION")
        return Reply.json(status, [{"message": message, "errorCode": code}])

    def unauthorized(self) -> Reply:
        return Reply.json(
            401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )

    def _errors(self, status: int, code: str, message: str) -> Reply:
        return Reply.json(status, [{"message": message, "errorCode": code, "fields": []}])

    def _render(self, sobject: str, row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
        url = f"/services/data/{self.api_version}/sobjects/{sobject}/{row['Id']}"
        return {"attributes": {"type": sobject, "url": url}} | {f: row.get(f) for f in fields}

    def handle(self, request: RecordedRequest) -> Reply:
        prefix = f"/services/data/{self.api_version}"
        if not request.path.startswith(prefix + "/"):
            return self._errors(404, "NOT_FOUND", "The requested resource does not exist")
        rest = request.path[len(prefix) :]
        if match := re.fullmatch(r"/sobjects/(Case|Account)/([^/]+)", rest):
            sobject, record_id = match.groups()
            if request.method == "GET":
                return self._get(sobject, record_id, request)
            if request.method == "PATCH":
                return self._patch(sobject, record_id, request)
            return self._errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}'")
        if rest in ("/query", "/query/") and request.method == "GET":
            return self._query(request.param("q") or "")
        if (match := re.fullmatch(r"/query/([\w-]+)", rest)) and request.method == "GET":
            return self._next_page(match.group(1))
        return self._errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _get(self, sobject: str, record_id: str, request: RecordedRequest) -> Reply:
        row = self._table(sobject).get(record_id)
        if row is None:
            return self._errors(404, "NOT_FOUND", "The requested resource does not exist")
        known = self._fields(sobject)
        requested = request.param("fields")
        wanted = tuple(requested.split(",")) if requested else known
        for name in wanted:
            if name not in known:
                return self._errors(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
        return Reply.json(200, self._render(sobject, row, wanted))

    def _patch(self, sobject: str, record_id: str, request: RecordedRequest) -> Reply:
        row = self._table(sobject).get(record_id)
        if row is None:
            return self._errors(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            changes = request.json()
        except ValueError:
            return self._errors(400, "JSON_PARSER_ERROR", "Unexpected character")
        if not isinstance(changes, dict):
            return self._errors(400, "JSON_PARSER_ERROR", "Expected an object")
        known = self._fields(sobject)
        for name in changes:
            if name not in known:
                return self._errors(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
            if name in SF_READ_ONLY:
                return self._errors(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}.",
                )
        row.update(changes)
        row["LastModifiedDate"] = sf_datetime(datetime.now(UTC))
        return Reply(204)

    def _query(self, soql: str) -> Reply:
        try:
            sobject, fields, rows = self._run_soql(soql)
        except SOQLError as exc:
            return self._errors(400, "MALFORMED_QUERY", str(exc))
        records = [self._render(sobject, row, fields) for row in rows]
        return self._page(records, total=len(records))

    def _page(self, records: list[dict[str, Any]], *, total: int) -> Reply:
        head, tail = records[: self.page_size], records[self.page_size :]
        body: dict[str, Any] = {"totalSize": total, "done": not tail, "records": head}
        if tail:
            locator = f"01gFAKE{next(self._cursor_ids):011d}-{self.page_size}"
            self._cursors[locator] = (str(total), tail)
            body["nextRecordsUrl"] = f"/services/data/{self.api_version}/query/{locator}"
        return Reply.json(200, body)

    def _next_page(self, locator: str) -> Reply:
        cursor = self._cursors.pop(locator, None)
        if cursor is None:
            return self._errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        total, records = cursor
        return self._page(records, total=int(total))

    def _run_soql(self, soql: str) -> tuple[str, tuple[str, ...], list[dict[str, Any]]]:
        match = _SOQL.match(soql)
        if match is None:
            raise SOQLError("unexpected SOQL")
        sobject = match["object"]
        if sobject not in ("Case", "Account"):
            raise SOQLError(f"sObject type '{sobject}' is not supported.")
        known = self._fields(sobject)
        fields = tuple(f.strip() for f in match["fields"].split(","))
        conditions = _soql_where(match["where"]) if match["where"] else []
        order = match["order"]
        for name in (*fields, *(c[0] for c in conditions), *([order] if order else [])):
            if name not in known:
                raise SOQLError(f"No such column '{name}' on entity '{sobject}'")
        rows = [
            row
            for row in self._table(sobject).values()
            if all(_sf_compare(row.get(f), op, value, f) for f, op, value in conditions)
        ]
        if order:
            present = [r for r in rows if r.get(order) is not None]
            absent = [r for r in rows if r.get(order) is None]
            present.sort(
                key=lambda r: (
                    datetime.fromisoformat(r[order]) if order in SF_DATETIME_FIELDS else r[order]
                ),
                reverse=(match["direction"] or "ASC").upper() == "DESC",
            )
            rows = present + absent  # Salesforce sorts nulls first ascending; fine here
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        return sobject, fields, rows


# Zuora REST: account summary, subscriptions by account (paged), credit memos.

ZUORA_BILLING_PERIODS = {
    "month": "Month",
    "quarter": "Quarter",
    "half_year": "Semi-Annual",
    "year": "Annual",
    "week": "Week",
}


def _zuora_id(seed: str) -> str:
    return hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()


def zuora_subscription(subscription: Subscription, *, account_number: str) -> dict[str, Any]:
    """A subscription as Zuora's `GET /v1/subscriptions/accounts/{key}` lists it."""
    started = subscription.start_date.astimezone(UTC).date().isoformat()
    cancelled = subscription.cancelled_at
    requested = subscription.cancellation_requested_at
    currency = subscription.currency.upper()
    return {
        "id": _zuora_id(subscription.subscription_id),
        "accountNumber": account_number,
        "subscriptionNumber": subscription.subscription_id,
        "status": subscription.status,
        "contractEffectiveDate": started,
        "subscriptionStartDate": started,
        "termStartDate": started,
        "termType": "EVERGREEN",
        "cancelledDate": cancelled.astimezone(UTC).date().isoformat() if cancelled else None,
        "CancellationRequestedAt__c": requested.isoformat() if requested else None,
        "currency": currency,
        "ratePlans": [
            {
                "id": _zuora_id(subscription.subscription_id + ":plan"),
                "productName": subscription.plan,
                "ratePlanName": subscription.plan,
                "ratePlanCharges": [
                    {
                        "id": _zuora_id(subscription.subscription_id + ":charge"),
                        "name": f"{subscription.plan} fee",
                        "type": "Recurring",
                        "model": "FlatFee",
                        "price": subscription.amount,
                        "currency": currency,
                        "billingPeriod": ZUORA_BILLING_PERIODS.get(
                            subscription.billing_period, subscription.billing_period.title()
                        ),
                    }
                ],
            }
        ],
    }


class FakeZuora(IdempotentVendorServer):
    """Zuora REST (`/v1`): `success`/`reasons` bodies, `nextPage` paging, Idempotency-Key."""

    system = "zuora"

    def __init__(
        self,
        *,
        token: str = "zuora-test-token",
        page_size: int = 40,
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
        dataset: SandboxDataset | None = None,
    ) -> None:
        super().__init__(token=token)
        self.page_size = page_size
        self.accounts: dict[str, dict[str, Any]] = {}  # by account number
        self.subscriptions: dict[str, list[dict[str, Any]]] = {}  # by account number
        self.credit_memos: list[dict[str, Any]] = []
        self._idempotent.ttl = idempotency_ttl
        if dataset is not None:
            self.seed(dataset)

    def only_term_dates(self, subscription_number: str, *, term_start: bool = True) -> None:
        """List the subscription as some tenants do: without subscriptionStartDate and
        contractEffectiveDate, with termStartDate only (or, `term_start=False`, no date)."""
        with self._lock:
            for rows in self.subscriptions.values():
                for row in rows:
                    if row["subscriptionNumber"] == subscription_number:
                        del row["subscriptionStartDate"], row["contractEffectiveDate"]
                        if not term_start:
                            del row["termStartDate"]

    def add_account(
        self, billing: BillingData, *, name: str | None = None, status: str = "Active"
    ) -> None:
        number = billing.account_key
        self.accounts[number] = {
            "id": _zuora_id(number),
            "accountNumber": number,
            "name": name or number,
            "balance": billing.balance,
            "currency": billing.currency.upper(),
            "status": status,
            "billCycleDay": 1,
        }
        self.subscriptions[number] = [
            zuora_subscription(s, account_number=number) for s in billing.subscriptions
        ]

    def seed(self, dataset: SandboxDataset) -> None:
        names = {a.zuora_account_id: a.name for a in dataset.accounts.values()}
        for billing in dataset.billing.values():
            self.add_account(billing, name=names.get(billing.account_key))

    def _account(self, key: str) -> dict[str, Any] | None:
        if key in self.accounts:
            return self.accounts[key]
        return next((a for a in self.accounts.values() if a["id"] == key), None)

    def error_reply(self, status: int, message: str) -> Reply:
        category = {400: 20, 401: 11, 403: 10, 404: 40, 409: 30, 429: 70}.get(status, 60)
        return self._failure(status, 50000000 + category, message)

    def _failure(self, status: int, code: int, message: str) -> Reply:
        return Reply.json(
            status,
            {
                "success": False,
                "processId": secrets.token_hex(8).upper(),
                "reasons": [{"code": code, "message": message}],
            },
        )

    def _not_found(self, key: str) -> Reply:
        # Zuora's classic behaviour: HTTP 200 with `success: false` and a 40 category.
        return self._failure(200, 50000040, f"Cannot find entity by key: '{key}'.")

    def handle(self, request: RecordedRequest) -> Reply:
        if request.method == "GET":
            if match := re.fullmatch(r"/v1/accounts/([^/]+)/summary", request.path):
                return self._summary(match.group(1))
            if match := re.fullmatch(r"/v1/subscriptions/accounts/([^/]+)", request.path):
                return self._subscriptions(match.group(1), request)
            if request.path == "/v1/creditmemos":
                return self._list_credit_memos(request)
            if match := re.fullmatch(r"/v1/creditmemos/([^/]+)", request.path):
                return self._get_credit_memo(match.group(1))
        if request.method == "POST" and request.path == "/v1/creditmemos":
            return self._credit_memo(request)
        return self._failure(404, 50000040, "The requested resource does not exist")

    def _summary(self, key: str) -> Reply:
        account = self._account(key)
        if account is None:
            return self._not_found(key)
        subscriptions = self.subscriptions.get(account["accountNumber"], [])
        return Reply.json(
            200,
            {
                "basicInfo": dict(account),
                "subscriptions": [
                    {
                        "id": s["id"],
                        "subscriptionNumber": s["subscriptionNumber"],
                        "status": s["status"],
                        "termType": s["termType"],
                    }
                    for s in subscriptions
                ],
                "invoices": [],
                "payments": [],
                "usage": [],
                "success": True,
            },
        )

    def _subscriptions(self, key: str, request: RecordedRequest) -> Reply:
        account = self._account(key)
        if account is None:
            return self._not_found(key)
        try:
            page = int(request.param("page") or 1)
            size = int(request.param("pageSize") or 20)
        except ValueError:
            return self._failure(200, 53100020, "page and pageSize must be integers")
        if not 1 <= size <= 40 or page < 1:
            return self._failure(200, 53100020, "pageSize must be between 1 and 40")
        size = min(size, self.page_size)
        rows = self.subscriptions.get(account["accountNumber"], [])
        chunk = rows[(page - 1) * size : page * size]
        body: dict[str, Any] = {"subscriptions": chunk, "success": True}
        if page * size < len(rows):
            body["nextPage"] = f"{self.url}{request.path}?page={page + 1}&pageSize={size}"
        return Reply.json(200, body)

    def _list_credit_memos(self, request: RecordedRequest) -> Reply:
        # Filters are exact matches on the memo's fields; newest (highest number) first,
        # as Zuora sorts by default.
        try:
            page = int(request.param("page") or 1)
            size = int(request.param("pageSize") or 20)
        except ValueError:
            return self._failure(200, 53100020, "page and pageSize must be integers")
        if not 1 <= size <= 40 or page < 1:
            return self._failure(200, 53100020, "pageSize must be between 1 and 40")
        size = min(size, self.page_size)
        filters = {
            name: request.param(name)
            for name in ("accountId", "accountNumber", "status", "number")
            if request.param(name) is not None
        }
        rows = [
            m
            for m in reversed(self.credit_memos)
            if all(str(m.get(name)) == value for name, value in filters.items())
        ]
        chunk = rows[(page - 1) * size : page * size]
        body: dict[str, Any] = {"creditmemos": chunk, "success": True}
        if page * size < len(rows):
            query = urlencode({**filters, "page": page + 1, "pageSize": size})
            body["nextPage"] = f"{self.url}{request.path}?{query}"
        return Reply.json(200, body)

    def _get_credit_memo(self, key: str) -> Reply:
        memo = next((m for m in self.credit_memos if key in (m["id"], m["number"])), None)
        if memo is None:
            return self._not_found(key)
        return Reply.json(200, {**memo, "success": True})

    def _credit_memo(self, request: RecordedRequest) -> Reply:
        # Zuora keeps the first response to a key, success or failure, for a day; the
        # same key with another body is a 422.
        key = request.header("idempotency-key")
        if key is not None and (stored := self._idempotent.get(key)) is not None:
            fingerprint, reply = stored
            if fingerprint != request.body:
                return self._failure(
                    422, 50000020, "Idempotency-Key was used with a different request body"
                )
            return reply
        reply = self._create_credit_memo(request)
        if key is not None:
            self._idempotent.put(key, request.body, reply)
        return reply

    def _create_credit_memo(self, request: RecordedRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return self._failure(400, 50000090, "malformed JSON")
        account_key = body.get("accountId") or body.get("accountNumber")
        account = self._account(account_key) if account_key else None
        if account is None:
            return self._not_found(str(account_key))
        comment = body.get("comment")
        if comment is not None and len(str(comment)) > 255:
            return self._failure(200, 53100020, "comment: size must be between 0 and 255")
        charges = body.get("charges")
        if not isinstance(charges, list) or not charges:
            return self._failure(200, 53100022, "charges is required")
        total = Decimal("0")
        for charge in charges:
            amount = charge.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, Decimal | int) or amount <= 0:
                return self._failure(200, 53100020, f"invalid amount {amount!r}")
            total += Decimal(amount)
        memo = {
            "id": secrets.token_hex(16),
            "number": f"CM{len(self.credit_memos) + 1:08d}",
            "accountId": account["id"],
            "accountNumber": account["accountNumber"],
            "amount": total,
            "currency": account["currency"],
            "status": "Posted" if body.get("autoPost") else "Draft",
            "comment": comment,
            "createdDate": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.credit_memos.append(memo)
        return Reply.json(200, {**memo, "success": True})


# Stripe: form-encoded requests, `{"error": {...}}` bodies, Idempotency-Key replays.


def stripe_charge(charge: Charge) -> dict[str, Any]:
    """A Charge object as Stripe's API renders it, from the domain charge."""
    amount = to_minor_units(charge.amount)
    return {
        "id": charge.charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": to_minor_units(charge.amount_refunded),
        "captured": True,
        "created": int(charge.created_at.timestamp()),
        "currency": charge.currency.lower(),
        "customer": charge.customer_id,
        "description": charge.description or None,
        "livemode": False,
        "metadata": {},
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": charge.risk_level,
            "risk_score": charge.risk_score,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "disputed": False,
        "paid": charge.status == "succeeded",
        "refunded": charge.refunded,
        "status": charge.status,
    }


STRIPE_REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


STRIPE_REFUND_FAILURE_REASONS = {
    "charge_for_pending_refund_disputed",
    "declined",
    "expired_or_canceled_card",
    "insufficient_funds",
    "lost_or_stolen_card",
    "merchant_request",
    "unknown",
}


# The API version the SDK pins; events carry the version of their webhook endpoint.
STRIPE_API_VERSION: str = stripe.api_version
STRIPE_FILE_PURPOSES = frozenset(
    {
        "account_requirement",
        "additional_verification",
        "business_icon",
        "business_logo",
        "customer_signature",
        "dispute_evidence",
        "identity_document",
        "pci_document",
        "tax_document_user_upload",
    }
)
# Stripe keeps a dispute_evidence file for 9 months.
STRIPE_FILE_EXPIRY_SECONDS = 270 * 24 * 60 * 60
DISPUTE_EVENT_TYPES = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
# Text fields Stripe limits to 20,000 characters each (the others are short values).
LONG_TEXT_EVIDENCE_FIELDS = frozenset(
    {
        "access_activity_log",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "duplicate_charge_explanation",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "uncategorized_text",
    }
)


def stripe_dispute(dispute: Dispute) -> dict[str, Any]:
    """A Dispute object as Stripe's API renders it, from the domain dispute."""
    due_by = dispute.evidence_due_by
    return {
        "id": dispute.dispute_id,
        "object": "dispute",
        "amount": to_minor_units(dispute.amount),
        "balance_transactions": [],
        "charge": dispute.charge_id,
        "created": int(dispute.created_at.timestamp()),
        "currency": dispute.currency.lower(),
        "evidence": dict.fromkeys(sorted(TEXT_EVIDENCE_FIELDS | FILE_EVIDENCE_FIELDS)),
        "evidence_details": {
            "due_by": int(due_by.timestamp()) if due_by is not None else None,
            "has_evidence": dispute.has_evidence,
            "past_due": dispute.past_due,
            "submission_count": dispute.submission_count,
        },
        "is_charge_refundable": dispute.is_charge_refundable,
        "livemode": False,
        "metadata": {},
        "payment_intent": None,
        "reason": dispute.reason,
        "status": dispute.status,
    }


def stripe_early_fraud_warning(warning: EarlyFraudWarning) -> dict[str, Any]:
    """A Radar EarlyFraudWarning object as Stripe renders it (`actionable` as stored)."""
    return {
        "id": warning.warning_id,
        "object": "radar.early_fraud_warning",
        "actionable": warning.actionable,
        "charge": warning.charge_id,
        "created": int(warning.created_at.timestamp()),
        "fraud_type": warning.fraud_type,
        "livemode": False,
        "payment_intent": None,
    }


@dataclass(frozen=True)
class DisputeSubmission:
    """One `POST /v1/disputes/{id}` the fake accepted, or replayed for a repeated key."""

    dispute_id: str
    idempotency_key: str | None
    evidence: dict[str, str]
    submit: bool
    replayed: bool


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name -> (filename, content)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("not multipart/form-data")
    parts: dict[str, tuple[str | None, bytes]] = {}
    for section in body.split(b"--" + match.group(1).encode())[1:]:
        if section.startswith(b"--"):
            break
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part without headers")
        disposition = next(
            (
                line.split(":", 1)[1]
                for line in head.decode().split("\r\n")
                if line.lower().startswith("content-disposition:")
            ),
            "",
        )
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is None:
            raise ValueError("a part without a name")
        parts[name.group(1)] = (
            filename.group(1) if filename else None,
            content.removesuffix(b"\r\n"),
        )
    return parts


def _evidence_file_type(content: bytes) -> str | None:
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


class FakeStripe(IdempotentVendorServer):
    """Stripe's v1 API for charges and refunds, including idempotent replays.

    As Stripe: a refund (pending or succeeded) counts in the charge's `amount_refunded`
    at once, and one that fails or is canceled gives its amount back. An Idempotency-Key
    is remembered for `idempotency_ttl` seconds; within it the same request replays the
    first response (`Idempotent-Replayed: true`) and other parameters are an
    `idempotency_error`; after it the same key makes a new refund.

    Pending refunds: a refund of a charge in `pending_charges`, or one of the next
    `pending_next` refunds, is created `pending`; `settle_refund(id, "succeeded")` or
    `settle_refund(id, "failed", failure_reason=...)` settles it later.

    Disputes, as Stripe: a charge with a dispute is `disputed`, and while the dispute's
    `is_charge_refundable` is false (a chargeback, and after it is lost) a refund is
    refused with `charge_disputed`. Evidence (`evidence[...]`, `submit`) is taken while the
    dispute is `needs_response` (or `warning_needs_response`); a file field takes only the
    id of an uploaded `dispute_evidence` file, and anything else is refused naming the
    field. Every submission is kept in `dispute_submissions`, replays included. Early
    fraud warnings are actionable while their charge is neither disputed nor refunded.
    """

    system = "stripe"

    def __init__(
        self,
        *,
        api_key: str = "sk_test_fake_contract",
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
        dataset: SandboxDataset | None = None,
    ) -> None:
        super().__init__(token=api_key)
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}  # in creation order
        self.pending_charges: set[str] = set()
        self.pending_next = 0
        self.disputes: dict[str, dict[str, Any]] = {}  # in creation order
        self.dispute_submissions: list[DisputeSubmission] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.file_contents: dict[str, bytes] = {}
        self.early_fraud_warnings: dict[str, dict[str, Any]] = {}
        self._idempotent.ttl = idempotency_ttl
        if dataset is not None:
            self.seed(dataset)

    def make_refunds_pending(self, *, charge_id: str | None = None, count: int = 0) -> None:
        """Create refunds of `charge_id` (all of them), or the next `count` refunds, pending."""
        with self._lock:
            if charge_id is not None:
                self.pending_charges.add(charge_id)
            self.pending_next += count

    def settle_refund(
        self, refund_id: str, status: str, *, failure_reason: str = "lost_or_stolen_card"
    ) -> dict[str, Any]:
        """Settle a pending refund `succeeded`, `failed` or `canceled`, as the card network
        answers; a failed or canceled refund gives its amount back to the charge."""
        if status not in ("succeeded", "failed", "canceled"):
            raise ValueError(f"a refund settles succeeded, failed or canceled, not {status}")
        if failure_reason not in STRIPE_REFUND_FAILURE_REASONS:
            raise ValueError(f"Stripe has no refund failure_reason {failure_reason!r}")
        with self._lock:
            refund = self.refunds[refund_id]
            if refund["status"] not in ("pending", "requires_action"):
                raise ValueError(f"refund {refund_id} is already {refund['status']}")
            refund["status"] = status
            if status == "failed":
                refund["failure_reason"] = failure_reason
                refund["failure_balance_transaction"] = f"txn_{secrets.token_hex(12)}"
            if status in ("failed", "canceled"):
                charge = self.charges[refund["charge"]]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return dict(refund)

    def add_charge(self, charge: Charge) -> None:
        self.charges[charge.charge_id] = stripe_charge(charge)

    def seed(self, dataset: SandboxDataset) -> None:
        for charge in dataset.charges.values():
            self.add_charge(charge)
        for dispute in dataset.disputes.values():
            self.disputes[dispute.dispute_id] = stripe_dispute(dispute)
            self.charges[dispute.charge_id]["disputed"] = True
        for warning in dataset.early_fraud_warnings.values():
            self.early_fraud_warnings[warning.warning_id] = stripe_early_fraud_warning(warning)

    # disputes, evidence and early fraud warnings: test knobs

    def add_dispute(
        self,
        charge_id: str,
        *,
        reason: str = "fraudulent",
        amount: Decimal | None = None,
        due_by: datetime | None = None,
        status: str = "needs_response",
        created: datetime | None = None,
        is_charge_refundable: bool | None = None,
        dispute_id: str | None = None,
    ) -> dict[str, Any]:
        """Open a dispute on the charge, as an issuer does; return Stripe's dispute object.

        `amount` defaults to the charge's, `created` to now and `due_by` to 7 days after
        `created`. A chargeback is not refundable; an inquiry (`warning_needs_response`) is.
        """
        if reason not in DISPUTE_REASONS:
            raise ValueError(f"Stripe has no dispute reason {reason!r}")
        with self._lock:
            charge = self.charges[charge_id]
            opened = created or datetime.now(UTC)
            dispute = stripe_dispute(
                Dispute(
                    dispute_id=dispute_id or f"du_{secrets.token_hex(12)}",
                    charge_id=charge_id,
                    amount=Decimal(charge["amount"]) / 100 if amount is None else amount,
                    currency=charge["currency"],
                    reason=reason,
                    status=status,
                    evidence_due_by=due_by or opened + timedelta(days=7),
                    is_charge_refundable=(
                        status.startswith("warning_")
                        if is_charge_refundable is None
                        else is_charge_refundable
                    ),
                    created_at=opened,
                )
            )
            self.disputes[dispute["id"]] = dispute
            charge["disputed"] = True
            return dict(dispute)

    def settle_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """Decide the dispute as the issuer does: `won`, `lost` or `warning_closed`."""
        if status not in ("won", "lost", "warning_closed"):
            raise ValueError(f"a dispute closes won, lost or warning_closed, not {status}")
        with self._lock:
            dispute = self.disputes[dispute_id]
            dispute["status"] = status
            return dict(dispute)

    def add_early_fraud_warning(
        self,
        charge_id: str,
        *,
        fraud_type: str = "unauthorized_use_of_card",
        created: datetime | None = None,
        warning_id: str | None = None,
    ) -> dict[str, Any]:
        """Report the charge as likely fraud, as an issuer does; return the warning."""
        with self._lock:
            if charge_id not in self.charges:
                raise KeyError(charge_id)
            warning = stripe_early_fraud_warning(
                EarlyFraudWarning(
                    warning_id=warning_id or f"issfr_{secrets.token_hex(12)}",
                    charge_id=charge_id,
                    actionable=True,
                    fraud_type=fraud_type,
                    created_at=created or datetime.now(UTC),
                )
            )
            self.early_fraud_warnings[warning["id"]] = warning
            return self._early_fraud_warning(warning)

    def submitted(self, dispute_id: str | None = None) -> list[DisputeSubmission]:
        """Evidence submissions (`submit=true`) that changed a dispute, replays left out."""
        with self._lock:
            return [
                s
                for s in self.dispute_submissions
                if s.submit and not s.replayed and dispute_id in (None, s.dispute_id)
            ]

    # webhook events, as Stripe sends them

    def event(
        self,
        event_type: str,
        obj: Mapping[str, Any],
        *,
        event_id: str | None = None,
        created: datetime | None = None,
        previous_attributes: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Stripe Event of `event_type` whose `data.object` is `obj`."""
        data: dict[str, Any] = {"object": dict(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = dict(previous_attributes)
        return {
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": STRIPE_API_VERSION,
            "created": int((created or datetime.now(UTC)).timestamp()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def dispute_event(
        self, event_type: str, dispute_id: str, *, event_id: str | None = None
    ) -> dict[str, Any]:
        """`charge.dispute.created` / `.updated` / `.closed` (...) for the dispute as it is."""
        if event_type not in DISPUTE_EVENT_TYPES:
            raise ValueError(f"{event_type} is not a dispute event")
        with self._lock:
            dispute = json.loads(json.dumps(self.disputes[dispute_id]))
        return self.event(event_type, dispute, event_id=event_id)

    def early_fraud_warning_event(
        self,
        warning_id: str,
        *,
        event_type: str = "radar.early_fraud_warning.created",
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """`radar.early_fraud_warning.created` (or `.updated`) for the warning as it is."""
        with self._lock:
            warning = self._early_fraud_warning(self.early_fraud_warnings[warning_id])
        return self.event(event_type, warning, event_id=event_id)

    @staticmethod
    def signed_event(
        event: Mapping[str, Any], secret: str, *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The event's JSON body and the headers Stripe sends with it, signed with `secret`."""
        body = json.dumps(event).encode()
        signature = sign_payload(body, secret, timestamp=timestamp or int(time.time()))
        return body, {"Content-Type": "application/json", "Stripe-Signature": signature}

    def _headers(self) -> dict[str, str]:
        return {"Request-Id": f"req_{secrets.token_hex(7)}", "Stripe-Version": "2025-01-01"}

    def _error(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> Reply:
        error: dict[str, Any] = {"message": message, "type": type_}
        if code is not None:
            error["code"] = code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            error["param"] = param
        return Reply.json(status, {"error": error}, self._headers())

    def error_reply(self, status: int, message: str) -> Reply:
        if status == 429:
            return self._error(429, message, code="rate_limit")
        if status == 404:
            return self._error(404, message, code="resource_missing")
        if status >= 500:
            return self._error(status, message, type_="api_error")
        return self._error(status, message)

    def unauthorized(self) -> Reply:
        # Stripe echoes a masked key; the adapter must not pass even that on.
        return self._error(401, f"Invalid API Key provided: sk_test_****{self.token[-4:]}")

    def handle(self, request: RecordedRequest) -> Reply:
        if request.method == "GET" and request.path == "/v1/charges":
            return self._list_charges(request)
        if request.method == "GET" and (
            match := re.fullmatch(r"/v1/charges/([^/]+)", request.path)
        ):
            charge = self.charges.get(match.group(1))
            if charge is None:
                return self._error(
                    404, f"No such charge: '{match.group(1)}'", code="resource_missing", param="id"
                )
            return Reply.json(200, charge, self._headers())
        if request.method == "GET" and (
            match := re.fullmatch(r"/v1/refunds/([^/]+)", request.path)
        ):
            refund = self.refunds.get(match.group(1))
            if refund is None:
                return self._error(
                    404, f"No such refund: '{match.group(1)}'", code="resource_missing", param="id"
                )
            return Reply.json(200, refund, self._headers())
        if request.method == "GET" and request.path == "/v1/refunds":
            return self._list_refunds(request)
        if request.method == "POST" and request.path == "/v1/refunds":
            return self._create_refund(request)
        if request.path == "/v1/disputes" and request.method == "GET":
            return self._list_disputes(request)
        if match := re.fullmatch(r"/v1/disputes/([^/]+)(/close)?", request.path):
            dispute_id, close = match.groups()
            dispute = self.disputes.get(dispute_id)
            if dispute is None:
                return self._error(
                    404, f"No such dispute: '{dispute_id}'", code="resource_missing", param="id"
                )
            if request.method == "GET" and not close:
                return Reply.json(200, dispute, self._headers())
            if request.method == "POST" and close:
                return self._close_dispute(dispute, request)
            if request.method == "POST":
                return self._update_dispute(dispute, request)
        if request.method == "POST" and request.path == "/v1/files":
            return self._create_file(request)
        if request.method == "GET" and (match := re.fullmatch(r"/v1/files/([^/]+)", request.path)):
            file = self.files.get(match.group(1))
            if file is None:
                return self._error(
                    404,
                    f"No such file upload: '{match.group(1)}'",
                    code="resource_missing",
                    param="id",
                )
            return Reply.json(200, file, self._headers())
        if request.method == "GET" and request.path == "/v1/radar/early_fraud_warnings":
            return self._list_early_fraud_warnings(request)
        if request.method == "GET" and (
            match := re.fullmatch(r"/v1/radar/early_fraud_warnings/([^/]+)", request.path)
        ):
            warning = self.early_fraud_warnings.get(match.group(1))
            if warning is None:
                return self._error(
                    404,
                    f"No such early fraud warning: '{match.group(1)}'",
                    code="resource_missing",
                    param="id",
                )
            return Reply.json(200, self._early_fraud_warning(warning), self._headers())
        return self._error(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    def _limit(self, request: RecordedRequest) -> int | Reply:
        try:
            limit = int(request.param("limit") or 10)
        except ValueError:
            return self._error(
                400, "Invalid integer", code="parameter_invalid_integer", param="limit"
            )
        if not 1 <= limit <= 100:
            return self._error(
                400,
                "This value must be between 1 and 100",
                code="parameter_invalid_integer",
                param="limit",
            )
        return limit

    def _list_refunds(self, request: RecordedRequest) -> Reply:
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        charge = request.param("charge")
        if charge is not None and charge not in self.charges:
            return self._error(
                404, f"No such charge: '{charge}'", code="resource_missing", param="charge"
            )
        rows = [r for r in reversed(self.refunds.values()) if charge in (None, r["charge"])]
        after, before = request.param("starting_after"), request.param("ending_before")
        for cursor, name in ((after, "starting_after"), (before, "ending_before")):
            if cursor is not None and cursor not in self.refunds:
                return self._error(
                    404, f"No such refund: '{cursor}'", code="resource_missing", param=name
                )
        ids = [r["id"] for r in rows]
        if after is not None:
            rows = rows[ids.index(after) + 1 :] if after in ids else []
            page, has_more = rows[:limit], len(rows) > limit
        elif before is not None:
            rows = rows[: ids.index(before)] if before in ids else []
            page, has_more = rows[-limit:], len(rows) > limit
        else:
            page, has_more = rows[:limit], len(rows) > limit
        return Reply.json(
            200,
            {"object": "list", "url": "/v1/refunds", "has_more": has_more, "data": page},
            self._headers(),
        )

    def _list_charges(self, request: RecordedRequest) -> Reply:
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        customer = request.param("customer")
        rows = [c for c in self.charges.values() if customer is None or c["customer"] == customer]
        rows.sort(key=lambda c: c["created"], reverse=True)
        return Reply.json(
            200,
            {
                "object": "list",
                "url": "/v1/charges",
                "has_more": len(rows) > limit,
                "data": rows[:limit],
            },
            self._headers(),
        )

    def _create_refund(self, request: RecordedRequest) -> Reply:
        params = request.form()
        fingerprint = tuple(sorted(params.items()))
        key = request.header("idempotency-key")
        if key is not None and (remembered := self._idempotent.get(key)) is not None:
            first, stored = remembered
            if first != fingerprint:
                return self._error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
            return Reply(
                stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"}
            )
        charge_id = params.get("charge")
        if not charge_id:
            return self._error(
                400, "Must provide either charge or payment_intent.", code="parameter_missing"
            )
        charge = self.charges.get(charge_id)
        if charge is None:
            return self._error(
                404, f"No such charge: '{charge_id}'", code="resource_missing", param="charge"
            )
        if self._refund_blocked_by_dispute(charge_id):
            return self._error(
                400,
                f"Charge {charge_id} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            return self._error(
                400,
                f"Charge {charge_id} has already been refunded.",
                code="charge_already_refunded",
            )
        try:
            amount = int(params.get("amount", remaining))
        except ValueError:
            return self._error(
                400, "Invalid integer", code="parameter_invalid_integer", param="amount"
            )
        if amount <= 0:
            return self._error(
                400, "Amount must be at least 1", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            # Stripe's wording: "charge amount" before any refund, "unrefunded amount on
            # charge" after one.
            what = "unrefunded amount on charge" if charge["amount_refunded"] else "charge amount"
            return self._error(
                400,
                f"Refund amount ({_dollars(amount)}) is greater than {what} "
                f"({_dollars(remaining)})",
                code="amount_too_large",
                param="amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in STRIPE_REFUND_REASONS:
            return self._error(
                400, "Invalid reason", code="parameter_invalid_string", param="reason"
            )
        metadata = {
            name[len("metadata[") : -1]: value
            for name, value in params.items()
            if name.startswith("metadata[") and name.endswith("]")
        }
        refund = {
            "id": f"re_{secrets.token_hex(12)}",
            "object": "refund",
            "amount": amount,
            "balance_transaction": f"txn_{secrets.token_hex(12)}",
            "charge": charge_id,
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": None,
            "reason": reason,
            "receipt_number": None,
            "status": "pending" if self._next_is_pending(charge_id) else "succeeded",
        }
        self.refunds[refund["id"]] = refund
        # A pending refund already counts as refunded; it is given back if it fails.
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        reply = Reply.json(200, refund, self._headers())
        if key is not None:
            self._idempotent.put(key, fingerprint, reply)
        return reply

    def _next_is_pending(self, charge_id: str) -> bool:
        if charge_id in self.pending_charges:
            return True
        if self.pending_next > 0:
            self.pending_next -= 1
            return True
        return False

    # disputes, evidence files and early fraud warnings

    def _disputes_of(self, charge_id: str) -> list[dict[str, Any]]:
        """The charge's disputes, newest first."""
        rows = [d for d in self.disputes.values() if d["charge"] == charge_id]
        return sorted(rows, key=lambda d: d["created"], reverse=True)

    def _refund_blocked_by_dispute(self, charge_id: str) -> bool:
        disputes = self._disputes_of(charge_id)
        return bool(disputes) and (
            not disputes[0]["is_charge_refundable"] and disputes[0]["status"] != "won"
        )

    def _early_fraud_warning(self, warning: dict[str, Any]) -> dict[str, Any]:
        # Stripe: actionable while the charge has no dispute and is not fully refunded.
        charge = self.charges[warning["charge"]]
        actionable = not charge["disputed"] and not charge["refunded"]
        return {**warning, "actionable": actionable}

    def _list_disputes(self, request: RecordedRequest) -> Reply:
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        charge = request.param("charge")
        rows = sorted(self.disputes.values(), key=lambda d: d["created"], reverse=True)
        rows = [d for d in rows if charge in (None, d["charge"])]
        after = request.param("starting_after")
        if after is not None:
            ids = [d["id"] for d in rows]
            if after not in self.disputes:
                return self._error(
                    404,
                    f"No such dispute: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return Reply.json(
            200,
            {
                "object": "list",
                "url": "/v1/disputes",
                "has_more": len(rows) > limit,
                "data": rows[:limit],
            },
            self._headers(),
        )

    def _list_early_fraud_warnings(self, request: RecordedRequest) -> Reply:
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        charge = request.param("charge")
        rows = sorted(self.early_fraud_warnings.values(), key=lambda w: w["created"], reverse=True)
        rows = [self._early_fraud_warning(w) for w in rows if charge in (None, w["charge"])]
        return Reply.json(
            200,
            {
                "object": "list",
                "url": "/v1/radar/early_fraud_warnings",
                "has_more": len(rows) > limit,
                "data": rows[:limit],
            },
            self._headers(),
        )

    def _replayed(self, request: RecordedRequest, fingerprint: Any) -> Reply | None:
        """The stored reply for a repeated Idempotency-Key, or an idempotency_error."""
        key = request.header("idempotency-key")
        remembered = self._idempotent.get(key) if key is not None else None
        if remembered is None:
            return None
        first, stored = remembered
        if first != fingerprint:
            return self._error(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                type_="idempotency_error",
            )
        return Reply(stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"})

    def _remember(self, request: RecordedRequest, fingerprint: Any, reply: Reply) -> Reply:
        key = request.header("idempotency-key")
        if key is not None:
            self._idempotent.put(key, fingerprint, reply)
        return reply

    def _update_dispute(self, dispute: dict[str, Any], request: RecordedRequest) -> Reply:
        params = request.form()
        fingerprint = (request.method, request.path, tuple(sorted(params.items())))
        replay = self._replayed(request, fingerprint)
        evidence: dict[str, str] = {}
        metadata: dict[str, str] = {}
        submit = True
        for name, value in params.items():
            if name.startswith("evidence[") and name.endswith("]"):
                evidence[name[len("evidence[") : -1]] = value
            elif name.startswith("metadata[") and name.endswith("]"):
                metadata[name[len("metadata[") : -1]] = value
            elif name == "submit" and value in ("true", "false"):
                submit = value == "true"
            elif name == "submit":
                return self._error(400, "Invalid boolean: " + value, param="submit")
            elif not name.startswith("expand["):
                return self._error(
                    400,
                    f"Received unknown parameter: {name}",
                    code="parameter_unknown",
                    param=name,
                )
        record = DisputeSubmission(
            dispute_id=dispute["id"],
            idempotency_key=request.header("idempotency-key"),
            evidence=evidence,
            submit=submit,
            replayed=replay is not None,
        )
        if replay is not None:
            if replay.status == 200:
                self.dispute_submissions.append(record)
            return replay
        refusal = self._evidence_refusal(dispute, evidence)
        if refusal is not None:
            return refusal
        dispute["evidence"].update(evidence)
        dispute["metadata"].update(metadata)
        details = dispute["evidence_details"]
        details["has_evidence"] = details["has_evidence"] or bool(evidence)
        if submit:
            inquiry = dispute["status"].startswith("warning_")
            dispute["status"] = "warning_under_review" if inquiry else "under_review"
            details["submission_count"] += 1
            # Stripe takes a late submission but does not promise to deliver it.
            details["past_due"] = bool(details["due_by"]) and time.time() > details["due_by"]
        self.dispute_submissions.append(record)
        return self._remember(request, fingerprint, Reply.json(200, dispute, self._headers()))

    def _evidence_refusal(self, dispute: dict[str, Any], evidence: dict[str, str]) -> Reply | None:
        """Stripe's refusal of this evidence for this dispute, or None."""
        if dispute["status"] not in DISPUTE_RESPONDABLE_STATUSES:
            return self._error(
                400,
                f"This dispute is {dispute['status']} and can no longer be updated.",
                param="evidence",
            )
        for name, value in evidence.items():
            param = f"evidence[{name}]"
            if name in FILE_EVIDENCE_FIELDS:
                file = self.files.get(value)
                if file is None:
                    # A file field takes the id of an uploaded file; text is no such id.
                    return self._error(
                        400,
                        f"No such file upload: '{value}'",
                        code="resource_missing",
                        param=param,
                    )
                if file["purpose"] != "dispute_evidence":
                    return self._error(
                        400,
                        f"The file {value} was uploaded with purpose {file['purpose']}; "
                        "dispute evidence needs purpose dispute_evidence.",
                        param=param,
                    )
            elif name not in TEXT_EVIDENCE_FIELDS:
                return self._error(
                    400,
                    f"Received unknown parameter: {param}",
                    code="parameter_unknown",
                    param=param,
                )
            elif name in LONG_TEXT_EVIDENCE_FIELDS and len(value) > EVIDENCE_TEXT_MAX_CHARS:
                return self._error(
                    400,
                    f"{param} has a maximum character count of 20,000.",
                    code="string_length_exceeds_maximum",
                    param=param,
                )
        merged = {**dispute["evidence"], **evidence}
        total = sum(len(v) for k, v in merged.items() if k in TEXT_EVIDENCE_FIELDS and v)
        if total > EVIDENCE_TOTAL_MAX_CHARS:
            return self._error(
                400,
                "The combined character count of all evidence fields is limited to 150,000.",
                param="evidence",
            )
        return None

    def _close_dispute(self, dispute: dict[str, Any], request: RecordedRequest) -> Reply:
        params = request.form()
        fingerprint = (request.method, request.path, tuple(sorted(params.items())))
        replay = self._replayed(request, fingerprint)
        if replay is not None:
            return replay
        if dispute["status"] not in DISPUTE_RESPONDABLE_STATUSES:
            return self._error(
                400, f"This dispute is {dispute['status']} and can no longer be closed."
            )
        inquiry = dispute["status"].startswith("warning_")
        dispute["status"] = "warning_closed" if inquiry else "lost"
        return self._remember(request, fingerprint, Reply.json(200, dispute, self._headers()))

    def _create_file(self, request: RecordedRequest) -> Reply:
        try:
            parts = parse_multipart(request.header("content-type") or "", request.body)
        except ValueError:
            return self._error(
                400, "File uploads must be sent as multipart/form-data.", param="file"
            )
        purpose = parts.get("purpose", (None, b""))[1].decode()
        filename, content = parts.get("file", (None, b""))
        if "file" not in parts or filename is None:
            return self._error(
                400, "Missing required param: file.", code="parameter_missing", param="file"
            )
        if not purpose:
            return self._error(
                400,
                "Missing required param: purpose.",
                code="parameter_missing",
                param="purpose",
            )
        if purpose not in STRIPE_FILE_PURPOSES:
            return self._error(
                400,
                f"Invalid purpose: {purpose}",
                code="parameter_invalid_string",
                param="purpose",
            )
        digest = hashlib.sha256(content).hexdigest()
        fingerprint = (request.method, request.path, purpose, filename, digest)
        replay = self._replayed(request, fingerprint)
        if replay is not None:
            return replay
        file_type = _evidence_file_type(content)
        if purpose == "dispute_evidence" and file_type is None:
            return self._error(
                400,
                "The file type is not supported for purpose dispute_evidence: "
                "upload a PDF, JPEG or PNG.",
                param="file",
            )
        if purpose == "dispute_evidence" and len(content) > EVIDENCE_FILE_MAX_BYTES:
            return self._error(
                400, "Files for purpose dispute_evidence are limited to 5 MB.", param="file"
            )
        created = int(time.time())
        file_id = f"file_{secrets.token_hex(12)}"
        file = {
            "id": file_id,
            "object": "file",
            "created": created,
            "expires_at": created + STRIPE_FILE_EXPIRY_SECONDS,
            "filename": filename,
            "links": {"object": "list", "data": [], "has_more": False, "url": "/v1/file_links"},
            "purpose": purpose,
            "size": len(content),
            "title": None,
            "type": file_type,
            "url": f"https://files.stripe.com/v1/files/{file_id}/contents",
        }
        self.files[file_id] = file
        self.file_contents[file_id] = content
        return self._remember(request, fingerprint, Reply.json(200, file, self._headers()))


def _dollars(cents: int) -> str:
    return f"${Decimal(cents) / 100:,.2f}"


# All three at once.


@dataclass(frozen=True)
class VendorServers:
    salesforce: FakeSalesforce
    zuora: FakeZuora
    stripe: FakeStripe

    def environment(self) -> dict[str, str]:
        """Settings (environment variables) that point the real backends at these servers."""
        return {
            "CRM_BACKEND": "salesforce",
            "CRM_BASE_URL": self.salesforce.url,
            "CRM_ACCESS_TOKEN": self.salesforce.token,
            "CRM_API_VERSION": self.salesforce.api_version,
            "BILLING_BACKEND": "zuora",
            "BILLING_BASE_URL": self.zuora.url,
            "BILLING_ACCESS_TOKEN": self.zuora.token,
            "PAYMENT_BACKEND": "stripe",
            "PAYMENT_SECRET_KEY": self.stripe.token,
            "PAYMENT_API_BASE": self.stripe.url,
        }


@contextmanager
def vendor_servers(dataset: SandboxDataset | None = None) -> Iterator[VendorServers]:
    """Start the three fake vendors (seeded from `dataset` if given); stop them on exit."""
    with (
        FakeSalesforce(dataset=dataset) as salesforce,
        FakeZuora(dataset=dataset) as zuora,
        FakeStripe(dataset=dataset) as stripe,
    ):
        yield VendorServers(salesforce=salesforce, zuora=zuora, stripe=stripe)


# A small dataset for contract tests, independent of the built-in sandbox dataset.

CONTRACT_NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def contract_dataset(now: datetime = CONTRACT_NOW) -> SandboxDataset:
    """Two customers with cases, subscriptions and charges; whole-second, midnight-dated."""

    def ago(days: int, hours: int = 0) -> datetime:
        return (now - timedelta(days=days, hours=hours)).replace(microsecond=0)

    def midnight(days: int) -> datetime:
        return ago(days).replace(hour=0, minute=0, second=0)

    accounts = {
        a.account_id: a
        for a in (
            CRMAccount(
                account_id="001A00000000001AAA",
                name="Acme Analytics",
                type="Customer",
                segment="premium",
                email="billing@acme.example",
                billing_country="US",
                billing_state="CA",
                stripe_customer_id="cus_Acme001",
                zuora_account_id="A00000001",
            ),
            CRMAccount(
                account_id="001A00000000002AAA",
                name="Blue Finch Ltd",
                type="Customer",
                segment="standard",
                billing_country="GB",
                stripe_customer_id="cus_Finch002",
                zuora_account_id="A00000002",
            ),
        )
    }
    acme, finch = "001A00000000001AAA", "001A00000000002AAA"

    def case(
        case_id: str, account: str, days: int, dispute: str, amount: str, **extra: Any
    ) -> CRMCase:
        return CRMCase(
            case_id=case_id,
            case_number=f"0000{case_id[-4:]}",
            account_id=account,
            subject=f"Dispute {case_id[-4:]}",
            description=f"Customer says: {dispute.replace('_', ' ')} (it's urgent)",
            status=extra.pop("status", "New"),
            priority="High",
            created_at=ago(days, 3),
            dispute_type=dispute,
            amount=Decimal(amount),
            **extra,
        )

    cases = {
        c.case_id: c
        for c in (
            case(
                "500A00000000001AAA", acme, 2, "duplicate_charge", "49.99", charge_id="ch_Acme001"
            ),
            case(
                "500A00000000002AAA",
                acme,
                20,
                "service_outage",
                "12.34",
                charge_id="ch_Acme002",
                outage_hours=Decimal("6.5"),
            ),
            case(
                "500A00000000003AAA",
                acme,
                45,
                "incorrect_amount",
                "0.10",
                charge_id="ch_Acme002",
                status="Closed",
            ),
            case(
                "500A00000000004AAA",
                acme,
                150,
                "unrecognized_charge",
                "19.99",
                charge_id="ch_Acme003",
            ),
            case(
                "500A00000000005AAA",
                finch,
                5,
                "cancellation_not_processed",
                "29.00",
                charge_id="ch_Finch001",
            ),
        )
    }
    billing = {
        "A00000001": BillingData(
            account_key="A00000001",
            balance=Decimal("123.45"),
            subscriptions=[
                Subscription(
                    subscription_id="A-S00000101",
                    plan="Pro Monthly",
                    status="Active",
                    amount=Decimal("49.99"),
                    start_date=midnight(400),
                ),
                Subscription(
                    subscription_id="A-S00000102",
                    plan="Analytics Add-on",
                    status="Active",
                    amount=Decimal("0.30"),
                    start_date=midnight(200),
                ),
                Subscription(
                    subscription_id="A-S00000103",
                    plan="Legacy Annual",
                    status="Cancelled",
                    amount=Decimal("499.00"),
                    billing_period="year",
                    start_date=midnight(800),
                    cancellation_requested_at=ago(60, 5),
                    cancelled_at=midnight(55),
                ),
            ],
        ),
        "A00000002": BillingData(
            account_key="A00000002",
            balance=Decimal("0.00"),
            currency="usd",
            subscriptions=[
                Subscription(
                    subscription_id="A-S00000201",
                    plan="Starter Monthly",
                    status="Cancelled",
                    amount=Decimal("29.00"),
                    start_date=midnight(300),
                    cancellation_requested_at=ago(40),
                    cancelled_at=midnight(10),
                )
            ],
        ),
    }
    charges = {
        c.charge_id: c
        for c in (
            Charge(
                charge_id="ch_Acme001",
                customer_id="cus_Acme001",
                amount=Decimal("49.99"),
                description="Pro Monthly",
                created_at=ago(3),
                risk_level="normal",
                risk_score=12,
            ),
            Charge(
                charge_id="ch_Acme002",
                customer_id="cus_Acme001",
                amount=Decimal("49.99"),
                amount_refunded=Decimal("10.00"),
                description="Pro Monthly",
                created_at=ago(33),
                risk_level="elevated",
                risk_score=67,
            ),
            Charge(
                charge_id="ch_Acme003",
                customer_id="cus_Acme001",
                amount=Decimal("19.99"),
                amount_refunded=Decimal("19.99"),
                refunded=True,
                created_at=ago(160),
                risk_level="unknown",
            ),
            Charge(
                charge_id="ch_Finch001",
                customer_id="cus_Finch002",
                amount=Decimal("29.00"),
                description="Starter Monthly",
                created_at=ago(6),
                risk_level="highest",
                risk_score=91,
            ),
        )
    }
    # No disputes: every charge is undisputed, as Stripe shows it (`disputed`).
    charges = {k: c.model_copy(update={"disputed": False}) for k, c in charges.items()}
    return SandboxDataset(accounts=accounts, cases=cases, billing=billing, charges=charges)
