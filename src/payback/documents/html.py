"""HTML rendering of invoices and credit notes with the Jinja2 template shipped in this package.

Invariant: autoescaping is on for every template, so a customer name such as
``<script>…</script>`` or an ``&`` in a description is printed as text, never as markup. The
environment is built on first use (nothing at import time) and then reused.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from payback.documents.model import Document
from payback.documents.view import present


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=PackageLoader("payback.documents", "templates"),
                       autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True)


def render_html(doc: Document) -> str:
    return environment().get_template("document.html").render(v=present(doc))
