"""The refund-policy schema, its loading and its statutory floors.

A policy is versioned data (YAML or JSON) validated into a frozen Pydantic model. Jurisdiction
presets ship in ``payback/policies/presets/<ID>.yaml``; a merchant policy names the preset it
``extends``, inherits every field it leaves out (deep merge), and is then checked against the
preset's ``statutory_floor``: a merchant may be more generous than the law, never less.

Invariants kept here:
- unknown keys, wrong types and negative numbers are refused with ``PolicyInvalid`` whose message
  names the field path (``window.days: must be ≥ 0``);
- a merchant policy below its preset's floor is refused with ``FloorUndercut`` naming the field,
  the statutory value and the legal basis;
- presets carry a non-empty ``legal_basis`` and an ISO ``version`` date;
- a merchant policy keeps its preset's floor (read-only), so evaluation can apply the statutory
  minimum even where a merchant's own counting would end earlier;
- money is ``int`` minor units per currency; percentages are ``Decimal``; no floats are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from payback.errors import ValidationFailed
from payback.money import normalise_currency
from payback.refunds.domain import REASONS

# The closed list of statutory exceptions (CRD Art 16, CCRs reg 28) that a category may invoke.
STATUTORY_EXCLUSIONS = ("personalised", "perishable", "sealed_hygiene_unsealed",
                        "sealed_media_unsealed", "digital_content_started", "newspapers",
                        "date_specific_leisure")
PRESET_JURISDICTIONS = ("EU", "UK", "US", "US-CA", "US-NY", "AU")
METHOD_RULES = ("original_unless_consent", "original_only", "any", "store_credit_only")


class PolicyInvalid(ValidationFailed):
    code, status, title = "policy_invalid", 422, "The refund policy is not valid"


class FloorUndercut(ValidationFailed):
    code, status, title = ("policy_below_statutory_floor", 422,
                           "The refund policy is below the statutory floor")


# --- field types ---------------------------------------------------------------------------------

def _to_decimal(value: Any) -> Any:
    # YAML gives 12.5 as a binary float; its shortest repr ("12.5") is what the author wrote.
    if isinstance(value, bool):
        return value  # refused below: a bool is not a percentage
    if isinstance(value, (int, str)) or type(value).__name__ == "float":
        try:
            return Decimal(str(value).strip())
        except ArithmeticError:
            return value
    return value


Percent = Annotated[Decimal, BeforeValidator(_to_decimal),
                    Field(ge=0, le=100, max_digits=9, decimal_places=4, allow_inf_nan=False)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Days = Annotated[StrictInt, Field(ge=0, le=36600)]


def _currency_map(value: dict[str, int]) -> dict[str, int]:
    out = {}
    for code, amount in value.items():
        try:
            out[normalise_currency(code)] = amount
        except ValidationFailed as exc:
            raise ValueError(f"key {code!r}: {exc.detail}") from None
    return out


MinorByCurrency = dict[StrictStr, NonNegInt]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    days: Days
    anchor: Literal["purchase", "delivery", "service_start", "statutory"] = "purchase"
    missing_info_extension_months: NonNegInt = 0
    weekend_rollover: StrictBool = False
    name: StrictStr = "return period"


class RefundDeadline(_Strict):
    days: Days
    working_days: StrictBool = False
    anchor: Literal["request", "goods_returned", "agreement"] = "request"
    withhold_until_goods_back: StrictBool = False


class Category(_Strict):
    window_days: Days | None = None
    excluded: StrictBool = False
    exclusion: StrictStr | None = None

    @model_validator(mode="after")
    def _exclusion_named(self) -> Category:
        if self.excluded and not self.exclusion:
            raise ValueError("exclusion: required when excluded is true")
        if self.exclusion and not self.excluded:
            raise ValueError("excluded: must be true when an exclusion is named")
        return self


class RestockingFee(_Strict):
    percent: Percent = Decimal(0)
    fixed_minor: MinorByCurrency = Field(default_factory=dict)
    tax_base: Literal["gross", "net"] = "gross"
    disclosed: StrictBool = False

    @field_validator("fixed_minor")
    @classmethod
    def _currencies(cls, value: dict[str, int]) -> dict[str, int]:
        return _currency_map(value)

    @property
    def charged(self) -> bool:
        return self.percent > 0 or any(self.fixed_minor.values())


class StoreCredit(_Strict):
    only_after_days: Days | None = None
    bonus_percent: Percent = Decimal(0)
    expiry_days: Days | None = None


class PerCustomerLimit(_Strict):
    max_refunds: NonNegInt
    period_days: Annotated[StrictInt, Field(ge=1, le=36600)]
    on_exceed: Literal["deny", "needs_approval"] = "needs_approval"


class Approvals(_Strict):
    auto_approve_up_to_minor: MinorByCurrency = Field(default_factory=dict)
    require_approval_above_minor: MinorByCurrency = Field(default_factory=dict)
    require_approval_reasons: list[Literal[REASONS]] = Field(default_factory=list)  # type: ignore[valid-type]
    four_eyes_above_minor: MinorByCurrency = Field(default_factory=dict)

    @field_validator("auto_approve_up_to_minor", "require_approval_above_minor",
                     "four_eyes_above_minor")
    @classmethod
    def _currencies(cls, value: dict[str, int]) -> dict[str, int]:
        return _currency_map(value)


class Faults(_Strict):
    reject_days: Days | None = None
    no_fixed_limit: StrictBool = False
    liability_months: NonNegInt | None = None


class Deductions(_Strict):
    use_after_months: NonNegInt | None = None
    missing_packaging: StrictBool = False


class FloorInt(_Strict):
    value: NonNegInt
    basis: Annotated[StrictStr, Field(min_length=1)]


class FloorBool(_Strict):
    value: StrictBool
    basis: Annotated[StrictStr, Field(min_length=1)]


class FloorList(_Strict):
    value: list[StrictStr]
    basis: Annotated[StrictStr, Field(min_length=1)]


class FloorStr(_Strict):
    value: StrictStr
    basis: Annotated[StrictStr, Field(min_length=1)]


class Floor(_Strict):
    """The statutory minimums of a preset; every rule carries its legal basis."""

    change_of_mind_required: FloorBool | None = None
    min_window_days: FloorInt | None = None
    min_missing_info_extension_months: FloorInt | None = None
    weekend_rollover: FloorBool | None = None
    max_refund_deadline_days: FloorInt | None = None
    max_refund_deadline_working_days: FloorInt | None = None
    refund_deadline_anchor: FloorStr | None = None
    min_return_deadline_days: FloorInt | None = None
    allowed_method_rules: FloorList | None = None
    allowed_fault_method_rules: FloorList | None = None
    min_store_credit_only_after_days: FloorInt | None = None
    no_restocking_fee: FloorBool | None = None
    restocking_fee_excludes_tax: FloorBool | None = None
    restocking_fee_disclosed: FloorBool | None = None
    closed_exclusions: FloorList | None = None
    allowed_return_shipping_payers: FloorList | None = None
    min_fault_reject_days: FloorInt | None = None
    min_fault_liability_months: FloorInt | None = None
    fault_no_fixed_limit: FloorBool | None = None
    min_use_deduction_months: FloorInt | None = None
    no_missing_packaging_deduction: FloorBool | None = None
    store_credit_no_expiry: FloorBool | None = None
    posted_if_window_below_days: FloorInt | None = None
    unposted_min_window_days: FloorInt | None = None


class Policy(_Strict):
    id: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    version: str
    jurisdiction: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    name: Annotated[StrictStr, Field(min_length=1)]
    legal_basis: list[Annotated[StrictStr, Field(min_length=1)]] = Field(default_factory=list)
    extends: StrictStr | None = None
    timezone: StrictStr = "UTC"
    posted: StrictBool = False
    window: Window
    change_of_mind: StrictBool = True
    refund_deadline: RefundDeadline
    return_deadline_days: Days | None = None
    categories: dict[StrictStr, Category] = Field(default_factory=dict)
    restocking_fee: RestockingFee = Field(default_factory=RestockingFee)
    return_shipping_payer: Literal["customer", "merchant", "customer_if_informed"] = "customer"
    partial_refund_cap_percent: Percent | None = None
    store_credit: StoreCredit = Field(default_factory=StoreCredit)
    per_customer_limit: PerCustomerLimit | None = None
    method_rule: Literal[METHOD_RULES] = "original_unless_consent"  # type: ignore[valid-type]
    fault_method_rule: Literal[METHOD_RULES] | None = None  # type: ignore[valid-type]
    faults: Faults = Field(default_factory=Faults)
    deductions: Deductions = Field(default_factory=Deductions)
    approvals: Approvals = Field(default_factory=Approvals)
    role_limits_minor: dict[Literal["agent", "approver", "admin"], MinorByCurrency] = Field(
        default_factory=dict)
    statutory_floor: Floor | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> str:
        if isinstance(value, date):  # YAML reads an unquoted 2026-06-19 as a date
            return value.isoformat()
        if not isinstance(value, str):
            raise ValueError("must be an ISO date such as 2026-06-19")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be an ISO date such as 2026-06-19") from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("role_limits_minor")
    @classmethod
    def _roles(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        return {role: _currency_map(limits) for role, limits in value.items()}

    @property
    def effective_fault_method_rule(self) -> str:
        return self.fault_method_rule or self.method_rule


# --- loading -------------------------------------------------------------------------------------

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "is required",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "decimal_parsing": "must be a number",
    "decimal_type": "must be a number",
    "model_type": "must be a mapping",
}


def _message(err: dict[str, Any]) -> str:
    # "[key]" marks a bad mapping key: the key itself already names the place.
    path = ".".join(str(part) for part in err["loc"] if part != "[key]") or "(policy)"
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than"):
        sign = "≥" if kind == "greater_than_equal" else ">"
        text = f"must be {sign} {ctx.get('ge', ctx.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        sign = "≤" if kind == "less_than_equal" else "<"
        text = f"must be {sign} {ctx.get('le', ctx.get('lt'))}"
    elif kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind in _MESSAGES:
        text = _MESSAGES[kind]
    else:
        text = str(err["msg"]).removeprefix("Value error, ")
    return f"{path}: {text}"


def _validate(data: Any) -> Policy:
    if not isinstance(data, dict):
        raise PolicyInvalid("(policy): must be a mapping of fields")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = [_message(e) for e in exc.errors(include_url=False)]
        raise PolicyInvalid("; ".join(errors), errors=errors) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``over`` (lists, scalars, null) replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_policy(data: Any, *, base: Policy | None = None) -> Policy:
    """Validate a policy mapping (parsed YAML or JSON) and return a ``Policy``.

    A policy with ``extends`` is a merchant policy: it is merged over ``base`` (or the named
    preset when ``base`` is None), keeps the preset's floor and must not undercut it. A policy
    for a jurisdiction that has presets must extend one. Raises ``PolicyInvalid`` or
    ``FloorUndercut``.
    """
    if not isinstance(data, dict):
        raise PolicyInvalid("(policy): must be a mapping of fields")
    parent = data.get("extends")
    if parent is None and base is None:
        policy = _validate(data)
        if policy.jurisdiction in PRESET_JURISDICTIONS:
            raise PolicyInvalid(f"extends: a policy for jurisdiction {policy.jurisdiction} must "
                                f"extend one of its presets ({', '.join(_presets_for(policy))})")
        return policy
    if not isinstance(parent, str) and base is None:
        raise PolicyInvalid("extends: must be the id of a preset")
    base = base or load_preset(parent)
    if parent is not None and parent != base.id:
        raise PolicyInvalid(f"extends: {parent!r} does not match the base policy {base.id!r}")
    for key in ("id", "version"):
        if key not in data:
            raise PolicyInvalid(f"{key}: is required in a merchant policy")
    if "statutory_floor" in data:
        raise PolicyInvalid("statutory_floor: only presets set a floor; it is inherited")
    inherited = base.model_dump(mode="python", exclude={"statutory_floor"})
    merged = _deep_merge(inherited, {**data, "extends": base.id})
    policy = _validate(merged)
    if policy.jurisdiction != base.jurisdiction:
        raise PolicyInvalid(f"jurisdiction: must be {base.jurisdiction}, the jurisdiction of "
                            f"{base.id}")
    floor = base.statutory_floor
    if floor is not None:
        check_floor(policy, floor)
        policy = policy.model_copy(update={"statutory_floor": floor})
    return policy


def _presets_for(policy: Policy) -> list[str]:
    return [pid for pid in list_presets() if load_preset(pid).jurisdiction == policy.jurisdiction]


def list_presets() -> tuple[str, ...]:
    """Ids of the presets shipped in the package, sorted."""
    folder = resources.files("payback.policies") / "presets"
    return tuple(sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir()
                        if entry.name.endswith(".yaml")))


@cache
def load_preset(preset_id: str) -> Policy:
    """Load and validate a shipped preset by id (e.g. ``"EU-CRD"``)."""
    if preset_id not in list_presets():
        raise PolicyInvalid(f"extends: unknown preset {preset_id!r}; known: "
                            f"{', '.join(list_presets())}")
    text = (resources.files("payback.policies") / "presets" / f"{preset_id}.yaml").read_text(
        encoding="utf-8")
    policy = _validate(yaml.safe_load(text))
    problems = []
    if policy.id != preset_id:
        problems.append(f"id: {policy.id!r} does not match the file name {preset_id!r}")
    if not policy.legal_basis:
        problems.append("legal_basis: a preset must cite its legal basis")
    if policy.extends is not None:
        problems.append("extends: a preset does not extend another policy")
    if policy.statutory_floor is None:
        problems.append("statutory_floor: a preset must declare its floor")
    if problems:
        raise PolicyInvalid("; ".join(problems), errors=problems)
    return policy


def parse_policy_text(text: str, *, base: Policy | None = None) -> Policy:
    """Load a policy from YAML (JSON is valid YAML) text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyInvalid(f"(policy): not valid YAML: {exc}") from None
    return load_policy(data, base=base)


# --- the statutory floor -------------------------------------------------------------------------

Check = Callable[[Policy, Floor], list[str]]
_CHECKS: list[Check] = []


def _check(fn: Check) -> Check:
    _CHECKS.append(fn)
    return fn


def check_floor(policy: Policy, floor: Floor) -> None:
    """Run every floor rule; raise ``FloorUndercut`` listing each violation."""
    violations = [v for check in _CHECKS for v in check(policy, floor)]
    if violations:
        raise FloorUndercut("; ".join(violations), violations=violations)


@_check
def _change_of_mind(p: Policy, f: Floor) -> list[str]:
    r = f.change_of_mind_required
    if r and r.value and not p.change_of_mind:
        return [f"change_of_mind false removes the statutory right to withdraw ({r.basis})"]
    return []


@_check
def _window(p: Policy, f: Floor) -> list[str]:
    out = []
    if (r := f.min_window_days) is not None:
        if p.window.days < r.value:
            out.append(f"window.days {p.window.days} is below the statutory {r.value} days "
                       f"({r.basis})")
        for name, cat in p.categories.items():
            if not cat.excluded and cat.window_days is not None and cat.window_days < r.value:
                out.append(f"categories.{name}.window_days {cat.window_days} is below the "
                           f"statutory {r.value} days ({r.basis})")
    if (r := f.min_missing_info_extension_months) is not None:
        if p.window.missing_info_extension_months < r.value:
            out.append(f"window.missing_info_extension_months "
                       f"{p.window.missing_info_extension_months} is below the statutory "
                       f"{r.value} months ({r.basis})")
    if (r := f.weekend_rollover) is not None and r.value and not p.window.weekend_rollover:
        out.append(f"window.weekend_rollover must stay true: a period ending on a Saturday or "
                   f"Sunday ends on the next working day ({r.basis})")
    if (r := f.unposted_min_window_days) is not None and not p.posted and p.window.days < r.value:
        out.append(f"window.days {p.window.days} is below the {r.value} days that apply when no "
                   f"refund policy is posted (posted is false) ({r.basis})")
    if (r := f.posted_if_window_below_days) is not None and not p.posted \
            and p.window.days < r.value:
        out.append(f"posted must be true: a window of {p.window.days} days (under {r.value}) "
                   f"must be posted conspicuously ({r.basis})")
    return out


def _calendar_span(days: int) -> int:
    """Most calendar days ``days`` working days can span (two weekend days per started week)."""
    return days + 2 * -(-days // 5)


_ANCHOR_RANK = {"request": 0, "goods_returned": 1, "agreement": 1}


@_check
def _refund_deadline(p: Policy, f: Floor) -> list[str]:
    out, d = [], p.refund_deadline
    if (r := f.max_refund_deadline_days) is not None:
        span = _calendar_span(d.days) if d.working_days else d.days
        if span > r.value:
            unit = "working days" if d.working_days else "days"
            out.append(f"refund_deadline.days {d.days} {unit} exceeds the statutory {r.value} "
                       f"days ({r.basis})")
    if (r := f.max_refund_deadline_working_days) is not None and d.days > r.value:
        out.append(f"refund_deadline.days {d.days} exceeds the statutory {r.value} working days "
                   f"({r.basis})")
    if (r := f.refund_deadline_anchor) is not None and \
            _ANCHOR_RANK[d.anchor] > _ANCHOR_RANK.get(r.value, 0):
        out.append(f"refund_deadline.anchor {d.anchor} starts the refund clock later than the "
                   f"statutory {r.value} ({r.basis})")
    return out


@_check
def _returns(p: Policy, f: Floor) -> list[str]:
    out = []
    if (r := f.min_return_deadline_days) is not None and p.return_deadline_days is not None \
            and p.return_deadline_days < r.value:
        out.append(f"return_deadline_days {p.return_deadline_days} is below the statutory "
                   f"{r.value} days to send goods back ({r.basis})")
    if (r := f.allowed_return_shipping_payers) is not None and \
            p.return_shipping_payer not in r.value:
        out.append(f"return_shipping_payer {p.return_shipping_payer} is not allowed; use one of "
                   f"{', '.join(r.value)} ({r.basis})")
    return out


@_check
def _methods(p: Policy, f: Floor) -> list[str]:
    out = []
    if (r := f.allowed_method_rules) is not None and p.method_rule not in r.value:
        out.append(f"method_rule {p.method_rule} is not allowed; refunds go back to the "
                   f"original means of payment ({', '.join(r.value)}) ({r.basis})")
    fault_rule = p.effective_fault_method_rule
    if (r := f.allowed_fault_method_rules) is not None and fault_rule not in r.value:
        out.append(f"fault_method_rule {fault_rule} is not allowed for faulty goods; a credit "
                   f"note or store credit cannot replace the refund ({r.basis})")
    if (r := f.min_store_credit_only_after_days) is not None and \
            p.store_credit.only_after_days is not None and \
            p.store_credit.only_after_days < r.value:
        out.append(f"store_credit.only_after_days {p.store_credit.only_after_days} would offer "
                   f"store credit only within the statutory {r.value} days ({r.basis})")
    if (r := f.store_credit_no_expiry) is not None and r.value and \
            p.store_credit.expiry_days is not None:
        out.append(f"store_credit.expiry_days {p.store_credit.expiry_days}: store credit must "
                   f"not expire ({r.basis})")
    return out


@_check
def _fees(p: Policy, f: Floor) -> list[str]:
    out, fee = [], p.restocking_fee
    if (r := f.no_restocking_fee) is not None and r.value and fee.charged:
        out.append(f"restocking_fee: no restocking fee may be charged on a change-of-mind "
                   f"return; only diminished value from excess handling ({r.basis})")
    if (r := f.restocking_fee_excludes_tax) is not None and r.value and fee.charged \
            and fee.tax_base != "net":
        out.append(f"restocking_fee.tax_base must be net: the full sales tax is refunded even "
                   f"when a restocking fee is kept ({r.basis})")
    if (r := f.restocking_fee_disclosed) is not None and r.value and fee.charged \
            and not fee.disclosed:
        out.append(f"restocking_fee.disclosed must be true: a restocking fee must be stated in "
                   f"the posted refund policy ({r.basis})")
    if (r := f.no_missing_packaging_deduction) is not None and r.value and \
            p.deductions.missing_packaging:
        out.append(f"deductions.missing_packaging: a refund may not be refused or reduced "
                   f"because the original packaging is missing ({r.basis})")
    if (r := f.min_use_deduction_months) is not None and \
            p.deductions.use_after_months is not None and \
            p.deductions.use_after_months < r.value:
        out.append(f"deductions.use_after_months {p.deductions.use_after_months}: no deduction "
                   f"for use within the first {r.value} months ({r.basis})")
    return out


@_check
def _exclusions(p: Policy, f: Floor) -> list[str]:
    r = f.closed_exclusions
    if r is None:
        return []
    return [f"categories.{name}.exclusion {cat.exclusion!r} is not a statutory exception; "
            f"allowed: {', '.join(r.value)} ({r.basis})"
            for name, cat in p.categories.items()
            if cat.excluded and cat.exclusion not in r.value]


@_check
def _faults(p: Policy, f: Floor) -> list[str]:
    out, fl = [], p.faults
    if (r := f.min_fault_reject_days) is not None and not fl.no_fixed_limit and \
            (fl.reject_days is None or fl.reject_days < r.value):
        out.append(f"faults.reject_days {fl.reject_days} is below the statutory {r.value}-day "
                   f"right to reject ({r.basis})")
    if (r := f.min_fault_liability_months) is not None and not fl.no_fixed_limit and \
            (fl.liability_months is None or fl.liability_months < r.value):
        out.append(f"faults.liability_months {fl.liability_months} is below the statutory "
                   f"{r.value} months ({r.basis})")
    if (r := f.fault_no_fixed_limit) is not None and r.value and not fl.no_fixed_limit:
        out.append(f"faults.no_fixed_limit must stay true: the guarantees last a reasonable "
                   f"time with no fixed expiry ({r.basis})")
    return out
