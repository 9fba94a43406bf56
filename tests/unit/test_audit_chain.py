"""The audit hash chain and redaction as pure functions (``payback.audit.domain``), no database.

Covers: the canonical form (sorted keys, ``at`` as ISO 8601 UTC with microseconds, the same hash
for the same instant in another time zone, ``seq`` and ``hash`` not covered, every other column
covered); a hand-computed SHA-256 of a known record; an untouched chain of 1000 verifies and
reports its head; tampering is found at the right ``seq`` — an edited field (each column in turn),
an edit whose hash was recomputed (caught at the next record's link), a deleted first, middle and
last-but-one record, two records swapped, a forged record inserted with a correct-looking hash, a
record moved out of ``seq`` order; ``seq`` gaps (rolled-back PostgreSQL sequence values) are not
errors; redaction drops secret keys at any depth and masks Luhn-valid card numbers while leaving
other numbers alone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payback.audit import domain
from payback.audit.domain import GENESIS, record_hash, redact, seal, verify_chain

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)


def fields(i: int) -> dict:
    return {"at": T0 + timedelta(seconds=i, microseconds=i), "seller_id": "sel_default",
            "actor_id": f"usr_{i % 3}", "actor_kind": "staff", "actor_role": "agent",
            "action": "refund.create", "object_type": "refund", "object_id": f"re_{i}",
            "outcome": "allowed", "summary": {"after": {"amount_minor": 1000 + i}},
            "origin": "203.0.113.7", "request_id": f"req_{i}"}


def make_chain(n: int) -> list[dict]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        rec = seal(fields(i), prev)
        rec["seq"] = i
        out.append(rec)
        prev = rec["hash"]
    return out


# ---------------------------------------------------------------------------- canonical form


def test_hash_is_sha256_of_prev_hash_and_sorted_compact_json():
    rec = seal(fields(1), GENESIS)
    expected_content = {
        "action": "refund.create", "actor_id": "usr_1", "actor_kind": "staff",
        "actor_role": "agent", "at": "2026-01-15T10:00:01.000001Z", "object_id": "re_1",
        "object_type": "refund", "origin": "203.0.113.7", "outcome": "allowed",
        "prev_hash": GENESIS, "request_id": "req_1", "seller_id": "sel_default",
        "summary": {"after": {"amount_minor": 1001}}}
    text = json.dumps(expected_content, sort_keys=True, separators=(",", ":"))
    assert domain.canonical_bytes(rec) == text.encode()
    assert rec["hash"] == hashlib.sha256((GENESIS + text).encode()).hexdigest()
    assert rec["prev_hash"] == GENESIS


def test_same_instant_in_another_zone_hashes_the_same():
    paris = timezone(timedelta(hours=1))
    local = dict(fields(1), at=(T0 + timedelta(seconds=1, microseconds=1)).astimezone(paris))
    assert seal(local, GENESIS)["hash"] == seal(fields(1), GENESIS)["hash"]


def test_naive_timestamp_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        seal(dict(fields(1), at=datetime(2026, 1, 15, 10, 0)), GENESIS)


def test_summary_key_order_does_not_matter_and_values_are_normalised():
    a = seal(dict(fields(1), summary={"b": 1, "a": {"y": 2, "x": 1}}), GENESIS)
    b = seal(dict(fields(1), summary={"a": {"x": 1, "y": 2}, "b": 1}), GENESIS)
    assert a["hash"] == b["hash"]
    c = seal(dict(fields(1), summary={"rate": Decimal("0.20"), "when": T0, 7: "x"}), GENESIS)
    assert c["summary"] == {"rate": "0.20", "when": "2026-01-15T10:00:00.000000Z", "7": "x"}


def test_seq_and_hash_are_not_covered_every_other_column_is():
    rec = seal(fields(1), GENESIS)
    assert record_hash(GENESIS, dict(rec, seq=99, hash="x")) == rec["hash"]
    for name in domain.CONTENT_FIELDS:
        changed = dict(rec, **{name: {"k": "v"} if name == "summary" else "other"})
        assert record_hash(GENESIS, changed) != rec["hash"], name


# ------------------------------------------------------------------------------ verification


def test_untouched_chain_of_1000_verifies():
    chain = make_chain(1000)
    result = verify_chain(iter(chain))  # a stream, read once
    assert result == domain.VerifyResult(True, 1000, None, None, chain[-1]["hash"])


def test_empty_chain_verifies():
    assert verify_chain([]) == domain.VerifyResult(True, 0, None, None, GENESIS)


@pytest.mark.parametrize("name", [n for n in domain.CONTENT_FIELDS if n != "prev_hash"])
def test_edited_field_is_found_at_that_record(name):
    chain = make_chain(20)
    chain[6][name] = {"after": {"amount_minor": 1}} if name == "summary" else \
        (T0 if name == "at" else "tampered")
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 7, 7)
    assert "edited" in result.reason
    assert result.last_hash == chain[5]["hash"]


def test_edit_with_recomputed_hash_is_found_at_the_next_link():
    chain = make_chain(20)
    chain[6]["summary"] = {"after": {"amount_minor": 1}}
    chain[6]["hash"] = record_hash(chain[6]["prev_hash"], chain[6])
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq) == (False, 8)
    assert "record #7" in result.reason


@pytest.mark.parametrize("index, broken_seq", [(0, 2), (9, 11), (18, 20)])
def test_deleted_record_is_found_at_the_next_one(index, broken_seq):
    chain = make_chain(20)
    del chain[index]
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq) == (False, broken_seq)
    assert "prev_hash does not match" in result.reason


def test_swapped_records_are_found_at_the_first_of_them():
    chain = make_chain(20)
    chain[9], chain[10] = dict(chain[10], seq=10), dict(chain[9], seq=11)
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq) == (False, 10)
    assert "record #9" in result.reason


def test_record_out_of_seq_order_is_found():
    chain = make_chain(10)
    chain[4], chain[5] = chain[5], chain[4]  # seq 1 2 3 4 6 5 …
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq) == (False, 6)  # links break first at seq 6
    chain = make_chain(10)
    chain[5] = dict(chain[5], seq=3)
    assert verify_chain(chain).reason == "out of order: seq 3 comes after seq 5"


def test_forged_record_inserted_with_a_valid_hash_is_found_after_it():
    """The forger chains the new record to #5 and renumbers the rest: the forgery itself looks
    right, but #7 (formerly #6) still points at #5."""
    chain = make_chain(20)
    forged = seal(dict(fields(5), action="refund.approve", actor_id="usr_mallory"),
                  chain[4]["hash"])
    chain = chain[:5] + [dict(forged, seq=6)] + [dict(r, seq=r["seq"] + 1) for r in chain[5:]]
    result = verify_chain(chain)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 7, 7)
    assert "record #6" in result.reason


def test_first_record_must_chain_to_genesis():
    chain = make_chain(3)
    forged = seal(fields(0), "f" * 64)
    forged["seq"] = 1
    result = verify_chain([forged] + [dict(r, seq=r["seq"] + 1) for r in chain])
    assert (result.ok, result.first_broken_seq) == (False, 1)
    assert "the start of the trail" in result.reason


def test_gaps_in_seq_are_not_errors():
    chain = [dict(r, seq=r["seq"] * 10) for r in make_chain(5)]
    assert verify_chain(chain).ok


# --------------------------------------------------------------------------------- redaction

VISA = "4111111111111111"       # Luhn-valid test card numbers
AMEX = "378282246310005"


def test_secret_keys_are_dropped_at_any_depth():
    summary = {"email": "ada@example.com", "password": "hunter2", "new_Password": "x",
               "api_key_secret": "pbk_live_abc", "Authorization": "Bearer abc",
               "card": {"token": "tok_visa", "brand": "visa", "last4": "4242", "cvv": "123"},
               "items": [{"access_token": "t", "name": "a"}]}
    assert redact(summary) == {"email": "ada@example.com",
                               "card": {"brand": "visa", "last4": "4242"},
                               "items": [{"name": "a"}]}


@pytest.mark.parametrize("text, expected", [
    (VISA, "************1111"),
    (f"card {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]} ok",
     "card **** **** **** 1111 ok"),
    (f"amex {AMEX[:4]}-{AMEX[4:10]}-{AMEX[10:]}", "amex ****-******-*0005"),
    ("order 4111111111111112 ref", "order 4111111111111112 ref"),  # fails Luhn: not a card
    ("phone 0123456789", "phone 0123456789"),                      # too short
    ("iban 41111111111111111111", "iban 41111111111111111111"),    # 20 digits: too long
])
def test_card_numbers_are_masked_in_text(text, expected):
    assert redact({"note": text}) == {"note": expected}


def test_card_number_as_an_integer_is_masked_other_integers_are_kept():
    assert redact({"pan": int(VISA), "amount_minor": 14280, "flag": True}) == \
        {"pan": "************1111", "amount_minor": 14280, "flag": True}
