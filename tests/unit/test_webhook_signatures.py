"""Webhook authenticity (reliability test 11, issue 4): ``payback.gateways.signatures``.

The same matrix of cases runs against three verifiers: Payback's Stripe verifier
(``Stripe-Signature``), Payback's own outbound-webhook verifier (``Payback-Signature``), and the
standalone snippet in ``docs/webhooks.md`` (extracted from the doc and executed, so the doc cannot
rot). Cases: valid; one body byte tampered; wrong secret; missing header; timestamp 301 s old;
301 s ahead; exactly 300 s either way (accepted); two v1 values of which only the second is valid
(accepted); a rotated secrets list where the second secret signed (accepted); malformed headers.
Also: refusals carry the specific ``reason`` and the ``webhook_rejected`` code / 400 status, the
signing output is pinned to an independently computed HMAC, and a static check that
``signatures.py`` compares digests only with ``hmac.compare_digest`` (no ``==``/``!=``/``in``).
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payback.errors import DomainError
from payback.gateways import WebhookRejected
from payback.gateways import signatures as sig

ROOT = Path(__file__).resolve().parents[2]
SIGNATURES_PY = ROOT / "src" / "payback" / "gateways" / "signatures.py"
WEBHOOKS_MD = ROOT / "docs" / "webhooks.md"

SECRET = "whsec_test_primary_0123456789"
OTHER_SECRET = "whsec_test_other_9876543210"
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
NOW_TS = 1768471200  # NOW in Unix seconds
BODY = b'{"id":"evt_1","type":"refund.updated","data":{"object":{"id":"re_1","amount":1250}}}'


def _hmac(secret: str, ts: int, body: bytes) -> str:
    """Independent reference computation (not the module under test)."""
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def _header(ts: int, *signatures: str) -> str:
    return ",".join([f"t={ts}"] + [f"v1={s}" for s in signatures])


def _tampered(body: bytes) -> bytes:
    i = body.index(b"1250")
    return body[:i] + b"9" + body[i + 1 :]  # one byte: 1250 -> 9250


# (case id, header or None, body, secrets, expected reason or None for accepted)
CASES = [
    ("valid", _header(NOW_TS, _hmac(SECRET, NOW_TS, BODY)), BODY, [SECRET], None),
    (
        "tampered_one_byte",
        _header(NOW_TS, _hmac(SECRET, NOW_TS, BODY)),
        _tampered(BODY),
        [SECRET],
        "signature_mismatch",
    ),
    (
        "wrong_secret",
        _header(NOW_TS, _hmac(OTHER_SECRET, NOW_TS, BODY)),
        BODY,
        [SECRET],
        "signature_mismatch",
    ),
    ("missing_header", None, BODY, [SECRET], "missing_header"),
    ("empty_header", "", BODY, [SECRET], "missing_header"),
    (
        "301s_old",
        _header(NOW_TS - 301, _hmac(SECRET, NOW_TS - 301, BODY)),
        BODY,
        [SECRET],
        "timestamp_too_old",
    ),
    (
        "301s_ahead",
        _header(NOW_TS + 301, _hmac(SECRET, NOW_TS + 301, BODY)),
        BODY,
        [SECRET],
        "timestamp_in_future",
    ),
    (
        "exactly_300s_old",
        _header(NOW_TS - 300, _hmac(SECRET, NOW_TS - 300, BODY)),
        BODY,
        [SECRET],
        None,
    ),
    (
        "exactly_300s_ahead",
        _header(NOW_TS + 300, _hmac(SECRET, NOW_TS + 300, BODY)),
        BODY,
        [SECRET],
        None,
    ),
    (
        "two_v1_second_valid",
        _header(NOW_TS, _hmac(OTHER_SECRET, NOW_TS, BODY), _hmac(SECRET, NOW_TS, BODY)),
        BODY,
        [SECRET],
        None,
    ),
    (
        "two_v1_none_valid",
        _header(NOW_TS, _hmac(OTHER_SECRET, NOW_TS, BODY), _hmac("x", NOW_TS, BODY)),
        BODY,
        [SECRET],
        "signature_mismatch",
    ),
    (
        "rotated_second_secret_signed",
        _header(NOW_TS, _hmac(SECRET, NOW_TS, BODY)),
        BODY,
        [OTHER_SECRET, SECRET],
        None,
    ),
    (
        # the signature is valid for another timestamp: the signed t is bound to the digest
        "timestamp_swapped",
        _header(NOW_TS + 1, _hmac(SECRET, NOW_TS, BODY)),
        BODY,
        [SECRET],
        "signature_mismatch",
    ),
    ("malformed_garbage", "garbage", BODY, [SECRET], "malformed_header"),
    (
        "malformed_non_integer_t",
        f"t=soon,v1={_hmac(SECRET, NOW_TS, BODY)}",
        BODY,
        [SECRET],
        "malformed_header",
    ),
    ("malformed_no_t", f"v1={_hmac(SECRET, NOW_TS, BODY)}", BODY, [SECRET], "malformed_header"),
    (
        "malformed_two_t",
        f"t={NOW_TS},t={NOW_TS},v1={_hmac(SECRET, NOW_TS, BODY)}",
        BODY,
        [SECRET],
        "malformed_header",
    ),
    (
        "no_v1_only_v0",
        f"t={NOW_TS},v0={_hmac(SECRET, NOW_TS, BODY)}",
        BODY,
        [SECRET],
        "no_signature",
    ),
]
CASE_IDS = [c[0] for c in CASES]


def _load_doc_snippet() -> dict:
    text = WEBHOOKS_MD.read_text(encoding="utf-8")
    m = re.search(r"<!-- payback:verify-snippet -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert m, "docs/webhooks.md lost its marked Python verification snippet"
    namespace: dict = {}
    exec(compile(m.group(1), str(WEBHOOKS_MD), "exec"), namespace)  # noqa: S102 - our own doc
    return namespace


DOC = _load_doc_snippet()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("flavour", ["stripe", "payback"])
def test_library_verifier_matrix(flavour, case):
    _, header, body, secrets, reason = case
    if flavour == "stripe":
        verify, name = sig.verify_stripe_signature, "Stripe-Signature"
    else:
        verify, name = sig.verify_payback_signature, "Payback-Signature"
    headers = {} if header is None else {name: header}
    if reason is None:
        assert verify(headers, body, secrets, now=NOW) is None
        assert verify(header, body, secrets, now=NOW_TS) is None  # bare header value, int now
    else:
        with pytest.raises(WebhookRejected) as exc:
            verify(headers, body, secrets, now=NOW)
        assert exc.value.reason == reason
        assert exc.value.extra == {"reason": reason}
        assert sig.REASONS[reason]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_doc_snippet_matrix(case):
    _, header, body, secrets, reason = case
    if reason is None:
        assert DOC["verify_payback_signature"](header, body, secrets, now=NOW_TS) is None
    else:
        with pytest.raises(DOC["InvalidSignature"]):
            DOC["verify_payback_signature"](header, body, secrets, now=NOW_TS)


def test_webhook_rejected_is_a_400_domain_error():
    err = WebhookRejected("x", reason="signature_mismatch")
    assert isinstance(err, DomainError)
    assert (err.code, err.status) == ("webhook_rejected", 400)


def test_header_lookup_is_case_insensitive_and_ignores_the_other_scheme_header():
    header = _header(NOW_TS, _hmac(SECRET, NOW_TS, BODY))
    sig.verify_stripe_signature({"stripe-signature": header}, BODY, [SECRET], now=NOW)
    # A Payback-Signature header is not a Stripe-Signature header, and vice versa.
    with pytest.raises(WebhookRejected) as exc:
        sig.verify_stripe_signature({"Payback-Signature": header}, BODY, [SECRET], now=NOW)
    assert exc.value.reason == "missing_header"
    with pytest.raises(WebhookRejected) as exc:
        sig.verify_payback_signature({"Stripe-Signature": header}, BODY, [SECRET], now=NOW)
    assert exc.value.reason == "missing_header"


def test_single_secret_string_is_one_secret_not_its_characters():
    # A one-character "secret" taken from the string must never validate.
    header = _header(NOW_TS, _hmac("w", NOW_TS, BODY))
    with pytest.raises(WebhookRejected) as exc:
        sig.verify_stripe_signature(header, BODY, SECRET, now=NOW)
    assert exc.value.reason == "signature_mismatch"
    sig.verify_stripe_signature(_header(NOW_TS, _hmac(SECRET, NOW_TS, BODY)), BODY, SECRET, now=NOW)


def test_raw_bytes_required_and_secret_required():
    header = _header(NOW_TS, _hmac(SECRET, NOW_TS, BODY))
    with pytest.raises(TypeError):
        sig.verify_stripe_signature(header, BODY.decode(), [SECRET], now=NOW)
    with pytest.raises(ValueError):
        sig.verify_stripe_signature(header, BODY, [], now=NOW)
    with pytest.raises(ValueError):
        sig.verify_stripe_signature(header, BODY, [SECRET], now=NOW.replace(tzinfo=None))


def test_custom_tolerance():
    header = _header(NOW_TS - 11, _hmac(SECRET, NOW_TS - 11, BODY))
    sig.verify_payback_signature(header, BODY, [SECRET], now=NOW, tolerance=11)
    with pytest.raises(WebhookRejected) as exc:
        sig.verify_payback_signature(header, BODY, [SECRET], now=NOW, tolerance=10)
    assert exc.value.reason == "timestamp_too_old"


def test_sign_payload_is_pinned_to_the_reference_hmac():
    value = sig.sign_payload(SECRET, BODY, NOW_TS)
    assert value == f"t={NOW_TS},v1={_hmac(SECRET, NOW_TS, BODY)}"
    assert sig.PAYBACK_SIGNATURE_HEADER == "Payback-Signature"
    # A known-answer vector, so the scheme itself cannot drift (computed with the stdlib once).
    assert sig.compute_signature("secret", 1, b"{}") == (
        "1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
    )
    assert sig.parse_signature_header(value) == (NOW_TS, [_hmac(SECRET, NOW_TS, BODY)])


def test_sign_payload_with_rotation_round_trips_through_every_verifier():
    value = sig.sign_payload([OTHER_SECRET, SECRET], BODY, NOW_TS)
    assert value == (
        f"t={NOW_TS},v1={_hmac(OTHER_SECRET, NOW_TS, BODY)},v1={_hmac(SECRET, NOW_TS, BODY)}"
    )
    # A receiver that only knows the new secret, or only the old one, accepts it.
    for secrets in ([SECRET], [OTHER_SECRET]):
        sig.verify_payback_signature({"Payback-Signature": value}, BODY, secrets, now=NOW)
        assert DOC["verify_payback_signature"](value, BODY, secrets, now=NOW_TS) is None
    with pytest.raises(WebhookRejected):
        sig.verify_payback_signature(value, BODY, ["whsec_unrelated"], now=NOW)
    with pytest.raises(DOC["InvalidSignature"]):
        DOC["verify_payback_signature"](value, BODY, ["whsec_unrelated"], now=NOW_TS)


def test_doc_snippet_defaults_to_the_current_time():
    import time

    ts = int(time.time())
    DOC["verify_payback_signature"](sig.sign_payload(SECRET, BODY, ts), BODY, [SECRET])
    with pytest.raises(DOC["InvalidSignature"]):
        old = ts - 3600
        DOC["verify_payback_signature"](sig.sign_payload(SECRET, BODY, old), BODY, [SECRET])


def test_doc_example_header_is_correct():
    text = WEBHOOKS_MD.read_text(encoding="utf-8")
    m = re.search(r"Payback-Signature: (t=\d+,v1=[0-9a-f]{64})", text)
    assert m, "docs/webhooks.md lost its example header"
    assert m.group(1) == sig.sign_payload("whsec_example", b'{"id":"evt_example"}', 1768471200)


def test_now_as_datetime_and_int_agree():
    assert sig._unix(NOW) == NOW_TS
    assert sig._unix(NOW + timedelta(milliseconds=999)) == NOW_TS


# ------------------------------------------------------------------------- static check


def digest_comparison_problems(source: str) -> list[str]:
    """Every ``==``/``!=``/``in``/``not in`` comparison (a variable-time way to compare a digest),
    and whether ``hmac.compare_digest`` is called at all."""
    tree = ast.parse(source)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                    problems.append(f"line {node.lineno}: {type(op).__name__} comparison")
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "compare_digest"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "hmac"
    ]
    if not calls:
        problems.append("hmac.compare_digest is never called")
    return problems


def test_checker_catches_variable_time_comparisons():
    bad = "import hmac\ndef ok(a, b):\n    return a == b\n"
    assert digest_comparison_problems(bad) == [
        "line 3: Eq comparison",
        "hmac.compare_digest is never called",
    ]
    bad_in = "import hmac\ndef ok(a, bs):\n    hmac.compare_digest(a, a)\n    return a in bs\n"
    assert digest_comparison_problems(bad_in) == ["line 4: In comparison"]


def test_signatures_module_compares_digests_only_in_constant_time():
    source = SIGNATURES_PY.read_text(encoding="utf-8")
    assert digest_comparison_problems(source) == []
    assert "hashlib.sha256" in source
