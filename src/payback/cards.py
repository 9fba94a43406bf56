"""Card numbers: how Payback recognises a full card number (PAN) so that it is never stored,
logged or echoed. Payback keeps only gateway tokens, brand, last four and expiry (PCI DSS 3.3,
3.4.1, 3.5.1).

A PAN is a run of 13 to 19 digits (spaces or dashes allowed between them) that passes the Luhn
check. Used to refuse card numbers in requests (payments) and to mask them in audit summaries.
"""

from __future__ import annotations

import re

#: 13 to 19 digits, optionally separated by single spaces or dashes, not inside a longer number.
DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ \-]?\d){12,18}(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_pan(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def find_pans(text: str) -> list[str]:
    """Every card number in ``text``, as written."""
    return [m.group(0) for m in DIGIT_RUN.finditer(text or "") if is_pan(m.group(0))]
