"""Policy schema, loading and statutory floors (reliability test 30).

Every shipped preset loads through importlib.resources and cites a legal basis and a version date;
merchant policies with unknown keys, wrong types or negative windows fail with ``policy_invalid``
and a message naming the field path; each floor undercut fails with
``policy_below_statutory_floor`` naming the field, the statutory value and the legal basis; a more
generous merchant policy loads and inherits what it leaves out.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from payback.errors import DomainError
from payback.policies import (
    FloorUndercut,
    PolicyInvalid,
    list_presets,
    load_policy,
    load_preset,
    parse_policy_text,
)

PRESETS = ("AU-ACL", "EU-CRD", "UK-CCR", "UK-CRA", "US-CA", "US-FED", "US-NY")


def merchant(extends: str = "EU-CRD", **fields) -> dict:
    return {"extends": extends, "id": "acme", "version": "2026-02-01", **fields}


def test_all_presets_are_shipped() -> None:
    assert list_presets() == PRESETS


@pytest.mark.parametrize("preset_id", PRESETS)
def test_preset_has_legal_basis_version_and_floor(preset_id: str) -> None:
    policy = load_preset(preset_id)
    assert policy.id == preset_id
    assert policy.legal_basis and all(len(c) > 10 for c in policy.legal_basis)
    assert date.fromisoformat(policy.version) <= date(2026, 12, 31)
    assert policy.extends is None and policy.statutory_floor is not None
    floor_rules = policy.statutory_floor.model_dump(exclude_none=True)
    assert floor_rules and all(rule["basis"] for rule in floor_rules.values())


def test_preset_values_match_the_regulation() -> None:
    eu, uk, cra = load_preset("EU-CRD"), load_preset("UK-CCR"), load_preset("UK-CRA")
    fed, au = load_preset("US-FED"), load_preset("AU-ACL")
    assert (eu.window.days, eu.window.anchor, eu.window.missing_info_extension_months) == \
        (14, "statutory", 12)
    assert (eu.refund_deadline.days, eu.return_deadline_days) == (14, 14)
    assert eu.refund_deadline.withhold_until_goods_back and eu.faults.liability_months == 24
    assert (uk.window.days, uk.refund_deadline.anchor, uk.faults.reject_days) == \
        (14, "goods_returned", 30)
    assert (cra.change_of_mind, cra.faults.reject_days, cra.refund_deadline.anchor) == \
        (False, 30, "agreement")
    assert (fed.refund_deadline.days, fed.refund_deadline.working_days) == (7, True)
    assert (au.change_of_mind, au.faults.no_fixed_limit, au.fault_method_rule) == \
        (False, True, "original_only")
    assert load_preset("US-CA").restocking_fee.tax_base == "net"


def test_unknown_preset() -> None:
    with pytest.raises(PolicyInvalid, match="extends: unknown preset 'EU-XX'"):
        load_policy(merchant("EU-XX"))
    with pytest.raises(PolicyInvalid):
        load_preset("../presets/EU-CRD")


# --- invalid files: the field path is named -------------------------------------------------------

INVALID = [
    ("unknown top-level key", merchant(refund_window=30), "refund_window: unknown field"),
    ("unknown nested key", merchant(window={"dayz": 30}), "window.dayz: unknown field"),
    ("negative window", merchant(window={"days": -1}), "window.days: must be ≥ 0"),
    ("string window", merchant(window={"days": "30"}), "window.days: must be an integer"),
    ("bool window", merchant(window={"days": True}), "window.days: must be an integer"),
    ("bad anchor", merchant(window={"anchor": "shipping"}), "window.anchor: must be one of"),
    ("negative refund deadline", merchant(refund_deadline={"days": -3}),
     "refund_deadline.days: must be ≥ 0"),
    ("percent above 100", merchant(store_credit={"bonus_percent": 150}),
     "store_credit.bonus_percent: must be ≤ 100"),
    ("negative fixed fee", {"id": "x", "version": "2026-01-01", "jurisdiction": "ACME",
                            "name": "n", "window": {"days": 5}, "refund_deadline": {"days": 5},
                            "restocking_fee": {"fixed_minor": {"USD": -100}}},
     "restocking_fee.fixed_minor.USD: must be ≥ 0"),
    ("unknown currency", merchant(approvals={"auto_approve_up_to_minor": {"EURO": 100}}),
     "approvals.auto_approve_up_to_minor: key 'EURO': 'EURO' is not an ISO 4217 currency code"),
    ("unknown reason", merchant(approvals={"require_approval_reasons": ["whim"]}),
     "approvals.require_approval_reasons.0: must be one of"),
    ("bad role", merchant(role_limits_minor={"intern": {"EUR": 100}}),
     "role_limits_minor.intern: must be one of 'agent', 'approver' or 'admin'"),
    ("bad timezone", merchant(timezone="Mars/Olympus"),
     "timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("bad version", merchant(version="last tuesday"), "version: must be an ISO date"),
    ("exclusion without name", merchant(categories={"sale": {"excluded": True}}),
     "categories.sale: exclusion: required when excluded is true"),
    ("floor in a merchant file", merchant(statutory_floor={}), "statutory_floor: only presets"),
    ("missing version", {"extends": "EU-CRD", "id": "acme"}, "version: is required"),
    ("wrong jurisdiction", merchant(jurisdiction="US"), "jurisdiction: must be EU"),
    ("EU policy without preset", {"id": "x", "version": "2026-01-01", "jurisdiction": "EU",
                                  "name": "n", "window": {"days": 30},
                                  "refund_deadline": {"days": 14}},
     "extends: a policy for jurisdiction EU must extend one of its presets (EU-CRD)"),
    ("not a mapping", ["window", 14], "(policy): must be a mapping"),
]


@pytest.mark.parametrize("data, message", [pytest.param(d, m, id=i) for i, d, m in INVALID])
def test_invalid_policy_names_the_field(data, message: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        load_policy(data)
    assert info.value.code == "policy_invalid" and info.value.status == 422
    assert isinstance(info.value, DomainError)
    assert message in info.value.detail, info.value.detail


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(PolicyInvalid) as info:
        load_policy(merchant(window={"days": -1, "foo": 1}, refund_deadline={"days": "x"}))
    assert info.value.extra["errors"] == ["window.days: must be ≥ 0", "window.foo: unknown field",
                                          "refund_deadline.days: must be an integer"]


def test_yaml_text_errors() -> None:
    with pytest.raises(PolicyInvalid, match="not valid YAML"):
        parse_policy_text("extends: [EU-CRD\n")


# --- floor undercuts: the rule and its legal basis are named --------------------------------------

UNDERCUTS = [
    ("EU window 10 days", merchant(window={"days": 10}),
     "window.days 10 is below the statutory 14 days (Directive 2011/83/EU Art 9(1))"),
    ("EU category window 7 days", merchant(categories={"shoes": {"window_days": 7}}),
     "categories.shoes.window_days 7 is below the statutory 14 days"),
    ("EU refund deadline 30 days", merchant(refund_deadline={"days": 30}),
     "refund_deadline.days 30 days exceeds the statutory 14 days "
     "(Directive 2011/83/EU Art 13(1))"),
    ("EU refund deadline 14 working days", merchant(refund_deadline={"days": 14,
                                                                      "working_days": True}),
     "refund_deadline.days 14 working days exceeds the statutory 14 days"),
    ("EU no returns on sale items",
     merchant(categories={"sale": {"excluded": True, "exclusion": "no returns on sale items"}}),
     "categories.sale.exclusion 'no returns on sale items' is not a statutory exception"),
    ("EU restocking fee on change of mind", merchant(restocking_fee={"percent": 10}),
     "restocking_fee: no restocking fee may be charged on a change-of-mind return"),
    ("EU fixed restocking fee", merchant(restocking_fee={"fixed_minor": {"EUR": 500}}),
     "(Directive 2011/83/EU Arts 13(1), 14(2))"),
    ("EU store credit only", merchant(method_rule="store_credit_only"),
     "method_rule store_credit_only is not allowed"),
    ("EU store credit only after 7 days", merchant(store_credit={"only_after_days": 7}),
     "store_credit.only_after_days 7 would offer store credit only within the statutory 14 days"),
    ("EU customer always pays return shipping", merchant(return_shipping_payer="customer"),
     "return_shipping_payer customer is not allowed; use one of customer_if_informed, merchant "
     "(Directive 2011/83/EU Art 14(1))"),
    ("EU customer has 7 days to return", merchant(return_deadline_days=7),
     "return_deadline_days 7 is below the statutory 14 days to send goods back"),
    ("EU no missing-info extension", merchant(window={"missing_info_extension_months": 0}),
     "window.missing_info_extension_months 0 is below the statutory 12 months"),
    ("EU no change of mind", merchant(change_of_mind=False),
     "change_of_mind false removes the statutory right to withdraw"),
    ("EU liability 12 months", merchant(faults={"liability_months": 12}),
     "faults.liability_months 12 is below the statutory 24 months "
     "(Directive (EU) 2019/771 Art 10(1))"),
    ("UK deduction within 6 months", merchant("UK-CRA", deductions={"use_after_months": 3}),
     "deductions.use_after_months 3: no deduction for use within the first 6 months "
     "(Consumer Rights Act 2015 s 24(10))"),
    ("UK CCR deduction within 6 months", merchant("UK-CCR", deductions={"use_after_months": 0}),
     "deductions.use_after_months 0"),
    ("UK 14-day rejection", merchant("UK-CRA", faults={"reject_days": 14}),
     "faults.reject_days 14 is below the statutory 30-day right to reject"),
    ("UK refund from goods back under CRA", merchant("UK-CRA",
                                                     refund_deadline={"days": 21}),
     "refund_deadline.days 21 days exceeds the statutory 14 days "
     "(Consumer Rights Act 2015 s 20(15))"),
    ("AU credit note only", merchant("AU-ACL", method_rule="store_credit_only"),
     "method_rule store_credit_only is not allowed"),
    ("AU store credit for faults", merchant("AU-ACL", fault_method_rule="any"),
     "fault_method_rule any is not allowed for faulty goods; a credit note or store credit "
     "cannot replace the refund"),
    ("AU store credit for faults with consent",
     merchant("AU-ACL", fault_method_rule="original_unless_consent"),
     "fault_method_rule original_unless_consent is not allowed"),
    ("AU missing packaging", merchant("AU-ACL", deductions={"missing_packaging": True}),
     "deductions.missing_packaging: a refund may not be refused or reduced"),
    ("AU fixed fault limit", merchant("AU-ACL", faults={"no_fixed_limit": False,
                                                        "reject_days": 90}),
     "faults.no_fixed_limit must stay true"),
    ("US MITOR 10 working days", merchant("US-FED", refund_deadline={"days": 10}),
     "refund_deadline.days 10 exceeds the statutory 7 working days (16 CFR 435.1(b)"),
    ("CA tax kept with restocking fee", merchant("US-CA", restocking_fee={"percent": 15,
                                                                         "tax_base": "gross"}),
     "restocking_fee.tax_base must be net"),
    ("CA store credit expiry", merchant("US-CA", store_credit={"expiry_days": 365}),
     "store_credit.expiry_days 365: store credit must not expire"),
    ("CA 5-day window not posted", merchant("US-CA", window={"days": 5}),
     "posted must be true: a window of 5 days (under 7)"),
    ("NY undisclosed restocking fee", merchant("US-NY", posted=True,
                                               restocking_fee={"percent": 15}),
     "restocking_fee.disclosed must be true"),
    ("NY 14 days without a posted policy", merchant("US-NY", window={"days": 14}),
     "window.days 14 is below the 30 days that apply when no refund policy is posted"),
]


@pytest.mark.parametrize("data, message", [pytest.param(d, m, id=i) for i, d, m in UNDERCUTS])
def test_floor_undercut_names_the_rule(data, message: str) -> None:
    with pytest.raises(FloorUndercut) as info:
        load_policy(data)
    assert info.value.code == "policy_below_statutory_floor" and info.value.status == 422
    assert message in info.value.detail, info.value.detail


def test_all_undercuts_are_listed() -> None:
    with pytest.raises(FloorUndercut) as info:
        load_policy(merchant(window={"days": 10}, refund_deadline={"days": 30}))
    assert len(info.value.extra["violations"]) == 2


# --- policies that load --------------------------------------------------------------------------

def test_more_generous_eu_policy_loads_and_inherits() -> None:
    policy = load_policy(merchant(window={"days": 30}, store_credit={"bonus_percent": 10},
                                  timezone="Europe/Berlin",
                                  approvals={"auto_approve_up_to_minor": {"eur": 20000}}))
    assert (policy.window.days, policy.window.anchor) == (30, "statutory")
    assert policy.window.missing_info_extension_months == 12      # inherited (deep merge)
    assert policy.store_credit.bonus_percent == Decimal("10")
    assert policy.approvals.auto_approve_up_to_minor == {"EUR": 20000}
    assert policy.refund_deadline.days == 14 and policy.extends == "EU-CRD"
    assert "perishable" in policy.categories                       # preset categories kept
    assert policy.statutory_floor == load_preset("EU-CRD").statutory_floor
    assert policy.legal_basis == load_preset("EU-CRD").legal_basis


def test_faster_refund_and_merchant_paid_returns_load() -> None:
    policy = load_policy(merchant(refund_deadline={"days": 5}, return_shipping_payer="merchant",
                                  method_rule="original_only", return_deadline_days=30))
    assert (policy.refund_deadline.days, policy.return_shipping_payer) == (5, "merchant")


def test_statutory_exclusion_and_us_free_text_exclusion_load() -> None:
    eu = load_policy(merchant(categories={"custom_prints": {"excluded": True,
                                                            "exclusion": "personalised"}}))
    assert eu.categories["custom_prints"].exclusion == "personalised"
    us = load_policy(merchant("US-FED", categories={
        "clearance": {"excluded": True, "exclusion": "final sale clearance items"}}))
    assert us.categories["clearance"].excluded


def test_disclosed_ny_fee_and_ca_net_fee_load() -> None:
    ny = load_policy(merchant("US-NY", posted=True, window={"days": 14},
                              restocking_fee={"percent": 15, "disclosed": True}))
    assert ny.restocking_fee.percent == Decimal(15)
    ca = load_policy(merchant("US-CA", restocking_fee={"percent": "12.5"}))
    assert (ca.restocking_fee.percent, ca.restocking_fee.tax_base) == (Decimal("12.5"), "net")


def test_yaml_percent_written_as_decimal_is_exact() -> None:
    policy = parse_policy_text("extends: US-CA\nid: acme\nversion: 2026-02-01\n"
                               "restocking_fee: {percent: 12.35}\n")
    assert policy.restocking_fee.percent == Decimal("12.35")
    assert policy.version == "2026-02-01"


def test_uk_deduction_after_six_months_loads() -> None:
    assert load_policy(merchant("UK-CRA", deductions={"use_after_months": 6})) \
        .deductions.use_after_months == 6


def test_standalone_merchant_policy_in_other_jurisdiction() -> None:
    policy = load_policy({"id": "acme-ch", "version": "2026-01-01", "jurisdiction": "CH",
                          "name": "Acme Switzerland", "window": {"days": 30},
                          "refund_deadline": {"days": 10}})
    assert policy.statutory_floor is None and policy.timezone == "UTC"


def test_explicit_base_must_match_extends() -> None:
    with pytest.raises(PolicyInvalid, match="extends: 'UK-CCR' does not match"):
        load_policy(merchant("UK-CCR"), base=load_preset("EU-CRD"))


def test_policies_are_frozen() -> None:
    policy = load_preset("EU-CRD")
    with pytest.raises(ValidationError, match="frozen"):
        policy.window.days = 1  # type: ignore[misc]
    assert load_preset("EU-CRD").window.days == 14
