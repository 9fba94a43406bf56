"""VAT numbers: validated with python-stdnum before they are stored on a seller or a customer.

Invariants:
- an EU number (any member state, also ``EL`` for Greece and ``XI`` for Northern Ireland) is
  checked by ``stdnum.eu.vat``; a UK number by ``stdnum.gb.vat``; both are stored compact and
  with their country prefix (``DE136695976``, ``GB980780684``), which is how they appear on an
  invoice and in EN 16931 ``PartyTaxScheme/CompanyID``;
- a number without a prefix takes the party's country as its prefix;
- for another country python-stdnum's module for that country is used when it has one
  (``stdnum.ch.vat``...); without one the number is accepted if it is 2–40 letters and digits;
- anything else raises ``InvalidVatNumber`` (422 ``invalid_vat_number``). A check-digit test
  is what python-stdnum offers offline; whether the number is *registered* (VIES) is not checked.
"""

from __future__ import annotations

import re

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.gb import vat as gb_vat
from stdnum.util import get_cc_module

from payback.errors import ValidationFailed

_EU_PREFIXES = frozenset(p.upper() for p in eu_vat.MEMBER_STATES) | {"EL"}
_SEPARATORS = re.compile(r"[\s.\-/]")
_FREE_FORM = re.compile(r"^[A-Z0-9]{2,40}$")


class InvalidVatNumber(ValidationFailed):
    code, title = "invalid_vat_number", "Invalid VAT number"


def validate_vat_number(value: str | None, country: str | None = None) -> str | None:
    """The normalised VAT number, None for none given, or raise ``InvalidVatNumber``."""
    if value is None or not value.strip():
        return None
    compact = _SEPARATORS.sub("", value).upper()
    prefix, cc = compact[:2], (country or "").upper()
    if prefix not in _EU_PREFIXES | {"GB"} and cc:
        prefix = "EL" if cc == "GR" else cc
        compact = prefix + compact if prefix in _EU_PREFIXES | {"GB"} else compact
    try:
        if prefix in _EU_PREFIXES:
            return eu_vat.validate(compact)
        if prefix == "GB":
            return "GB" + gb_vat.validate(compact)
        return _other_country(compact, cc)
    except ValidationError as exc:
        raise InvalidVatNumber(f"{value!r} is not a valid VAT number: {exc.message}",
                               vat_number=value) from None


def _other_country(compact: str, cc: str) -> str:
    if not cc:
        raise InvalidVatNumber(f"{compact!r} has no EU or GB country prefix; give the country "
                               "of the party or write the number with its prefix")
    try:
        module = get_cc_module(cc.lower(), "vat")
    except Exception:  # noqa: BLE001 - stdnum raises various errors for unknown codes
        module = None
    if module is not None:
        return module.compact(module.validate(compact))
    if not _FREE_FORM.match(compact):
        raise InvalidVatNumber(f"{compact!r} is not a plausible tax number for {cc}")
    return compact
