"""Tax documents: invoices and credit notes rendered as PDF (fpdf2), HTML (Jinja2) and
EN 16931 / UBL XML, all from one immutable ``Document`` value.

- ``model``: the ``Document`` and its parts; ``view``: the strings PDF and HTML print;
- ``ubl`` / ``html`` / ``pdf``: the three renderings; ``vat``: VAT number validation;
- ``service``: builds a ``Document`` from the database (invoice or credit note, with seller and
  customer details); ``router``: the download routes.

The renderers are imported on first use (``from payback.documents import render_pdf``), so code
that only validates a VAT number does not load the PDF and template libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"render_pdf": "pdf", "render_html": "html", "render_ubl": "ubl",
            "Document": "model", "DocLine": "model", "Party": "model", "Reference": "model",
            "Split": "model"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'payback.documents' has no attribute {name!r}")
    return getattr(import_module(f"payback.documents.{_EXPORTS[name]}"), name)
