"""RFC 9457 problem details: the one place any error becomes an HTTP response.

A ``DomainError`` keeps its own ``code`` and status. Request validation errors (Pydantic) are
mapped to a specific code by the field they concern, so a client can tell a bad amount from an
unknown currency from an unexpected field without parsing prose.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from payback.errors import DomainError

# A URN, not a URL: it names the problem type without pretending to be a page we host.
PROBLEM_TYPE_BASE = "urn:payback:problem:"
MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, code: str, title: str, detail: str, instance: str | None = None,
                 **extra: Any) -> bytes:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "code": code,
            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def domain_problem(err: DomainError, instance: str | None = None) -> tuple[int, bytes]:
    return err.status, problem_body(err.status, err.code, err.title, err.detail, instance,
                                    **err.extra)


def problem_response(status: int, body: bytes, headers: dict | None = None) -> Response:
    return Response(content=body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def on_domain_error(request: Request, err: DomainError) -> Response:
    status, body = domain_problem(err, request.url.path)
    await _audit(request, err.code, err.detail)
    return problem_response(status, body)


async def _audit(request: Request, code: str, detail: str) -> None:
    from payback.api.auditing import record_handler_refusal
    await record_handler_refusal(request, code, detail)


# Which code a validation error gets, by the name of the field it is about.
_FIELD_CODES = (("amount", "invalid_amount"), ("currency", "unknown_currency"),
                ("quantity", "invalid_quantity"))


def _code_for(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "malformed_json"
    if kind == "extra_forbidden":
        return "unknown_field"
    if kind == "missing":
        return "missing_field"
    field = str(error.get("loc", [""])[-1])
    if field.endswith("_minor"):
        return "invalid_amount"
    for needle, code in _FIELD_CODES:
        if needle in field:
            return code
    return "validation_failed"


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""),
               "type": e.get("type", ""), "code": _code_for(e)} for e in exc.errors()]
    code = errors[0]["code"] if errors else "validation_failed"
    status = 400 if code == "malformed_json" else 422
    detail = "; ".join(f"{'.'.join(e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
    body = problem_body(status, code, "The request is not valid", detail, request.url.path,
                        errors=errors)
    await _audit(request, code, detail)
    return problem_response(status, body)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_PROBLEMS.get(exc.status_code, ("http_error", "HTTP error"))
    headers = getattr(exc, "headers", None) or {}
    extra = {}
    if "Retry-After" in headers:
        extra["retry_after"] = int(headers["Retry-After"])
    body = problem_body(exc.status_code, code, title, str(exc.detail), request.url.path, **extra)
    return problem_response(exc.status_code, body, headers=headers or None)


_HTTP_PROBLEMS = {
    401: ("unauthenticated", "Authentication required"), 403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"), 405: ("method_not_allowed", "Method not allowed"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
}


async def on_unexpected(request: Request, exc: Exception) -> Response:
    body = problem_body(500, "internal_error", "Internal error",
                        "An unexpected error occurred; nothing was changed.", request.url.path)
    return problem_response(500, body)
