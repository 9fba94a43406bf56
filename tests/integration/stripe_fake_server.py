"""A local HTTP server that plays Stripe's refunds API for the Stripe adapter's tests.

It is a real ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port), so the official
``stripe`` package sends real HTTP to it. Every request is checked against Stripe's published
OpenAPI description (``../shared/data/stripe_refund_schema.json``, section
``openapi_2023_08_16``) by :class:`SchemaChecker` — operation, path, every query parameter and form
field with its declared type, enum and length, ``Authorization: Bearer``, and ``Idempotency-Key``
on POST. What does not conform is recorded in ``FakeStripe.violations`` (the tests require it to
be empty) and answered with a 400, as Stripe would.

It behaves like Stripe where the adapter depends on it:

* refunds are built from the schema's example refund object (``fixtures_2026_07.refund``) and
  adjusted to the request (id, amount, the payment's currency, charge / payment_intent, metadata,
  reason, status, created);
* idempotency: a POST with a key seen before and the same parameters replays the first answer
  (status and body, ``Idempotent-Replayed: true``); other parameters → 400 ``idempotency_error``;
* ``charge_already_refunded`` / ``amount_too_large`` / ``resource_missing`` like Stripe's;
* list: newest first, ``limit`` (capped by ``page_size``), ``starting_after``, ``has_more``,
  ``created[gt|gte|lt|lte]``.

Faults are injected per request: ``fail_next`` (an error answer before anything is done, as a load
balancer or an overloaded API would; not stored for idempotency), ``delay_next`` (do the work, then
answer late) and ``drop_next`` (do the work, then close the connection without answering).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from payback.clock import Clock

JSON = dict[str, Any]
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"-?[0-9]+")


# ------------------------------------------------------------------------ the schema checker


def decode_form(pairs: list[tuple[str, str]]) -> tuple[JSON, list[str]]:
    """Stripe's form encoding (``metadata[key]=v``, ``created[gte]=1``, ``expand[0]=x``) → nested
    dicts of strings, plus the problems found (duplicates, a name both leaf and object)."""
    nested: JSON = {}
    problems: list[str] = []
    for name, value in pairs:
        head = name.split("[", 1)[0]
        rest = name[len(head) :]
        path = [head, *_BRACKETS.findall(rest)]
        if not head or "".join(f"[{p}]" for p in path[1:]) != rest:
            problems.append(f"malformed parameter name {name!r}")
            continue
        node = nested
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{name!r}: {part!r} is both a value and an object")
                break
            node = child
        else:
            if path[-1] in node:
                problems.append(f"{name!r} is sent more than once")
            node[path[-1]] = value
    return nested, problems


def value_problems(schema: JSON, value: Any, where: str) -> list[str]:
    """Why ``value`` (a form string, or nested dicts of them) does not fit ``schema``."""
    if "anyOf" in schema:
        branches = [value_problems(branch, value, where) for branch in schema["anyOf"]]
        if any(not found for found in branches):
            return []
        return [f"{where}: fits none of the declared forms ({'; '.join(branches[0])})"]
    if "$ref" in schema:
        return [f"{where}: cannot check a $ref ({schema['$ref']})"]
    kind = schema.get("type")
    if kind == "object":
        return _object_problems(schema, value, where)
    if kind == "array":
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            return [f"{where}: expected an array (name[0]=…)"]
        items = schema.get("items", {})
        return [p for k, v in value.items() for p in value_problems(items, v, f"{where}[{k}]")]
    if not isinstance(value, str):
        return [f"{where}: expected a single {kind} value, got an object"]
    problems = []
    if kind == "integer" and not _INTEGER.fullmatch(value):
        problems.append(f"{where}: {value!r} is not an integer")
    if kind == "boolean" and value not in ("true", "false"):
        problems.append(f"{where}: {value!r} is not a boolean")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{where}: longer than {schema['maxLength']} characters")
    if kind not in ("integer", "boolean", "string"):
        problems.append(f"{where}: undeclared or unknown type {kind!r}")
    return problems


def _object_problems(schema: JSON, value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({where}[key]=…)"]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    problems = []
    for key, item in value.items():
        if key in props:
            problems += value_problems(props[key], item, f"{where}[{key}]")
        elif isinstance(extra, dict):
            problems += value_problems(extra, item, f"{where}[{key}]")
        elif extra is True or (extra is None and not props):
            continue  # a free-form object
        else:
            problems.append(f"{where}[{key}] is not a declared property")
    return problems


class SchemaChecker:
    """The ``/v1/refunds`` operations of Stripe's OpenAPI description, and a request check."""

    def __init__(self, schema: JSON) -> None:
        paths = schema["openapi_2023_08_16"]["paths"]
        self.operations: dict[tuple[str, str], JSON] = {
            (method.upper(), template): op
            for template, item in paths.items()
            if template == "/v1/refunds" or template.startswith("/v1/refunds/")
            for method, op in item.items()
        }
        if not self.operations:
            raise AssertionError("the schema holds no /v1/refunds operation")

    def route(self, method: str, path: str) -> tuple[str, JSON, dict[str, str]] | None:
        """(template, operation, path parameters) of a request, or None if the spec has none."""
        for (op_method, template), op in self.operations.items():
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            found = re.fullmatch(pattern, path)
            if op_method == method and found:
                return template, op, found.groupdict()
        return None

    def check(self, method: str, target: str, headers: dict[str, str], body: bytes) -> list[str]:
        """Every way this request departs from the spec (empty: it conforms)."""
        split = urlsplit(target)
        where = f"{method} {split.path}"
        routed = self.route(method, split.path)
        if routed is None:
            return [f"{where}: no such operation in the spec's /v1/refunds paths"]
        _template, op, path_params = routed
        problems = [f"{where}: {p}" for p in self._header_problems(method, headers)]
        query, bad = decode_form(parse_qsl(split.query, keep_blank_values=True))
        problems += [f"{where}: query {p}" for p in bad]
        declared = {p["name"]: p for p in op.get("parameters", [])}
        for name, value in path_params.items():
            if name not in declared or declared[name]["in"] != "path":
                problems.append(f"{where}: undeclared path parameter {name}")
        for name, value in query.items():
            param = declared.get(name)
            if param is None or param["in"] != "query":
                problems.append(f"{where}: query parameter {name!r} is not declared")
                continue
            if isinstance(value, dict) and param.get("style") != "deepObject":
                problems.append(f"{where}: {name} is not a deepObject parameter")
            problems += [f"{where}: {p}" for p in value_problems(param["schema"], value, name)]
        problems += [f"{where}: {p}" for p in self._body_problems(method, op, headers, body)]
        return problems

    def _header_problems(self, method: str, headers: dict[str, str]) -> list[str]:
        problems = []
        if not re.fullmatch(r"Bearer [A-Za-z0-9_]+", headers.get("authorization", "")):
            problems.append("Authorization is not 'Bearer <secret key>'")
        if method == "POST" and not headers.get("idempotency-key"):
            problems.append("POST without an Idempotency-Key header")
        if not headers.get("stripe-version"):
            problems.append("no Stripe-Version header")
        return problems

    def _body_problems(self, method: str, op: JSON, headers: dict[str, str], body: bytes) -> list:
        content = op.get("requestBody", {}).get("content", {})
        form_schema = content.get("application/x-www-form-urlencoded", {}).get("schema", {})
        if method != "POST":
            return ["a body on a request without one"] if body else []
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/x-www-form-urlencoded":
            return [f"Content-Type {content_type!r} is not application/x-www-form-urlencoded"]
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            return [f"the body is not form-encoded: {exc}"]
        form, problems = decode_form(pairs)
        if not form:
            problems.append("an empty body")
        return problems + value_problems(form_schema, form, "body")


# ------------------------------------------------------------------------------ the fake


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: JSON
    form: JSON
    headers: dict[str, str]
    status: int = 0
    replayed: bool = False


@dataclass
class Payment:
    reference: str
    amount: int
    currency: str
    refunded: int = 0
    refund_status: str = "succeeded"
    failure_reason: str | None = None


@dataclass
class Fault:
    status: int | None = None
    error: JSON = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: int = 0
    drop: bool = False


class FakeStripe:
    """Stripe's refunds API, in memory, behind a real local HTTP server."""

    def __init__(self, schema: JSON, *, api_key: str, clock: Clock) -> None:
        self.checker = SchemaChecker(schema)
        self.refund_properties = set(
            schema["openapi_2023_08_16"]["schemas"]["refund"]["properties"]
        )
        self.refund_properties |= set(schema["sdk_16_1_0"]["fields"]["Refund"])
        self.example_refund: JSON = schema["fixtures_2026_07"]["refund"]
        self.api_key = api_key
        self.clock = clock
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, JSON] = {}
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.page_size = 100
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle

    def start(self) -> str:
        handler = type("StripeHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True  # a delayed answer must not hold up the shutdown
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- arranging

    def add_payment(
        self,
        reference: str,
        amount: int,
        currency: str,
        *,
        refund_status: str = "succeeded",
        failure_reason: str | None = None,
    ) -> Payment:
        payment = Payment(reference, amount, currency.lower(), 0, refund_status, failure_reason)
        self.payments[reference] = payment
        return payment

    def add_refund(self, reference: str, amount: int, *, created: int, **fields: Any) -> JSON:
        """A refund that exists at 'Stripe' already (made earlier, or from the dashboard)."""
        payment = self.payments[reference]
        with self._lock:
            obj = self._new_refund(payment, amount, created=created, metadata={}, reason=None)
            obj.update(fields)
            self.refunds[obj["id"]] = obj
        return obj

    def fail_next(
        self,
        status: int,
        *,
        code: str | None = None,
        kind: str = "api_error",
        message: str = "Something went wrong on Stripe's end.",
        headers: dict[str, str] | None = None,
    ) -> None:
        error = {"type": kind, "message": message} | ({"code": code} if code else {})
        self._faults.append(Fault(status=status, error=error, headers=headers or {}))

    def delay_next(self, seconds: int) -> None:
        self._faults.append(Fault(delay_seconds=seconds))

    def drop_next(self) -> None:
        self._faults.append(Fault(drop=True))

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ---- serving (called by the handler)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes):
        """→ (status, JSON body, extra headers, fault) for one request."""
        split = urlsplit(target)
        query, _ = decode_form(parse_qsl(split.query, keep_blank_values=True))
        form: JSON = {}
        if body:
            form, _ = decode_form(
                parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            )
        record = Recorded(method, split.path, query, form, headers)
        problems = self.checker.check(method, target, headers, body)
        with self._lock:
            self.requests.append(record)
            self.violations += problems
            fault = self._faults.popleft() if self._faults else None
        if problems:
            return self._finish(
                record,
                400,
                _error("invalid_request_error", problems[0], "parameter_unknown"),
                {},
                None,
            )
        if headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "")
            return self._finish(
                record,
                401,
                _error("invalid_request_error", f"Invalid API Key provided: {given}"),
                {},
                None,
            )
        if fault is not None and fault.status is not None:
            return self._finish(record, fault.status, {"error": fault.error}, fault.headers, None)
        if method == "POST":
            status, payload, extra = self._post_refund(headers["idempotency-key"], body, form)
            record.replayed = bool(extra)
        elif split.path == "/v1/refunds":
            status, payload, extra = self._list(query)
        else:
            status, payload, extra = self._retrieve(split.path.rsplit("/", 1)[1])
        return self._finish(record, status, payload, extra, fault)

    def _finish(self, record: Recorded, status: int, payload: JSON, extra: dict, fault):
        record.status = status
        return status, payload, extra, fault

    def _post_refund(self, key: str, body: bytes, form: JSON) -> tuple[int, JSON, dict]:
        fingerprint = "&".join(sorted(body.decode("utf-8").split("&")))
        with self._lock:
            if key in self.idempotency:
                first_fingerprint, status, stored = self.idempotency[key]
                if first_fingerprint != fingerprint:
                    return (
                        400,
                        _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        ),
                        {},
                    )
                return status, json.loads(stored), {"Idempotent-Replayed": "true"}
            status, payload = self._create_refund(form)
            self.idempotency[key] = (fingerprint, status, json.dumps(payload).encode())
        return status, payload, {}

    def _create_refund(self, form: JSON) -> tuple[int, JSON]:
        references = [form[f] for f in ("payment_intent", "charge") if f in form]
        if len(references) != 1:
            return 400, _error(
                "invalid_request_error", "Give a charge or a payment_intent.", "parameter_missing"
            )
        payment = self.payments.get(references[0])
        if payment is None:
            return 404, _error(
                "invalid_request_error", f"No such payment: '{references[0]}'", "resource_missing"
            )
        left = payment.amount - payment.refunded
        amount = int(form.get("amount", left))
        if left == 0:
            return 400, _error(
                "invalid_request_error",
                f"Charge {references[0]} has already been refunded.",
                "charge_already_refunded",
            )
        if amount > left:
            return 400, _error(
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount ({left}).",
                "amount_too_large",
            )
        obj = self._new_refund(
            payment,
            amount,
            created=self.now(),
            metadata=form.get("metadata", {}),
            reason=form.get("reason"),
        )
        if obj["status"] not in ("failed", "canceled"):
            payment.refunded += amount
        self.refunds[obj["id"]] = obj
        return 200, obj

    def _new_refund(
        self, payment: Payment, amount: int, *, created: int, metadata: JSON, reason: str | None
    ) -> JSON:
        obj = copy.deepcopy(self.example_refund)
        is_intent = payment.reference.startswith("pi_")
        obj.update(
            id=f"re_fake{len(self.refunds) + 1:08d}",
            amount=amount,
            currency=payment.currency,
            charge=f"ch_of_{payment.reference}" if is_intent else payment.reference,
            payment_intent=payment.reference if is_intent else None,
            metadata=dict(metadata),
            reason=reason,
            status=payment.refund_status,
            created=created,
        )
        if payment.refund_status in ("failed", "canceled"):
            obj["failure_reason"] = payment.failure_reason
        unknown = set(obj) - self.refund_properties
        if unknown:
            self.violations.append(f"the fake built a refund with undeclared fields {unknown}")
        return obj

    def _retrieve(self, refund_id: str) -> tuple[int, JSON, dict]:
        with self._lock:
            obj = self.refunds.get(refund_id)
        if obj is None:
            return (
                404,
                _error(
                    "invalid_request_error", f"No such refund: '{refund_id}'", "resource_missing"
                ),
                {},
            )
        return 200, obj, {}

    def _list(self, query: JSON) -> tuple[int, JSON, dict]:
        with self._lock:
            found = list(reversed(self.refunds.values()))
        found.sort(key=lambda r: r["created"], reverse=True)  # stable: newest made first
        created = query.get("created", {})
        bounds = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
        if isinstance(created, str):
            found = [r for r in found if r["created"] == int(created)]
        else:
            for op, test in bounds.items():
                if op in created:
                    found = [r for r in found if test(r["created"], int(created[op]))]
        for name in ("payment_intent", "charge"):
            if name in query:
                found = [r for r in found if r[name] == query[name]]
        if "starting_after" in query:
            ids = [r["id"] for r in found]
            if query["starting_after"] not in ids:
                return (
                    400,
                    _error(
                        "invalid_request_error",
                        "starting_after: no such object",
                        "resource_missing",
                    ),
                    {},
                )
            found = found[ids.index(query["starting_after"]) + 1 :]
        limit = min(int(query.get("limit", 10)), 100, self.page_size)
        page = found[:limit]
        return (
            200,
            {"object": "list", "url": "/v1/refunds", "has_more": len(found) > limit, "data": page},
            {},
        )

    def now(self) -> int:
        return int(self.clock.now().timestamp())


def _error(kind: str, message: str, code: str | None = None) -> JSON:
    return {"error": {"type": kind, "message": message} | ({"code": code} if code else {})}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeStripe
    _count = 0

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra, fault = self.fake.handle(self.command, self.path, headers, body)
        if fault is not None and fault.drop:
            self.close_connection = True  # the work is done; the answer never leaves
            return
        if fault is not None and fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        data = json.dumps(payload).encode()
        _Handler._count += 1
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_fake{_Handler._count:06d}")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass
