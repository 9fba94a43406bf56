"""PDF rendering of invoices and credit notes with fpdf2, from the same view as the HTML.

Fonts: a Unicode TrueType font is needed for symbols such as € and the narrow no-break spaces
some locales put in amounts. ``render_pdf`` uses ``font_path`` when given, else the first of
``FONT_CANDIDATES`` that exists (DejaVu Sans ships with most Linux distributions). Without one it
falls back to the PDF core font Helvetica and writes what Latin-1 cannot carry in ASCII
(``€`` → ``EUR``), so a document is always produced and stays legible.

The PDF's creation date is the document's issue date, so one document renders the same way
every time (the legally binding hash is the UBL one; see ``payback.documents.ubl``).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, time, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from payback.documents.model import Document
from payback.documents.view import present

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)
_ASCII_FOR = {"€": "EUR", "\u202f": " ", "\u2009": " ", "\u2212": "-", "—": "-", "–": "-",
              "₹": "INR", "₩": "KRW", "₪": "ILS", "₺": "TRY", "₽": "RUB", "₫": "VND"}
_LATIN_1 = range(256)
LINE_COLUMNS = ("#", "Description", "Qty", "Unit price", "Rate", "Net", "Tax", "Gross")
LINE_WIDTHS = (7, 55, 12, 24, 14, 26, 22, 26)


def _fallback(ch: str, cmap) -> str:
    compatible = unicodedata.normalize("NFKC", ch)
    if compatible != ch and all(ord(c) in cmap for c in compatible):
        return compatible
    return _ASCII_FOR.get(ch, "?")


def shown(text: str, font_path: str | None = None) -> str:
    """``text`` as the PDF prints it with this font (or the one found): what tests compare."""
    return _Pdf(find_font(font_path)).text_of(text)


def find_font(font_path: str | None = None) -> str | None:
    if font_path:
        return font_path
    return next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)


class _Pdf(FPDF):
    def __init__(self, font_path: str | None) -> None:
        super().__init__(format="A4")
        self.unicode = font_path is not None
        if self.unicode:
            self.add_font("body", fname=font_path)
            bold = Path(font_path).with_name(Path(font_path).stem + "-Bold.ttf")
            self.add_font("body", style="B", fname=str(bold if bold.is_file() else font_path))
            self.family = "body"
        else:
            self.family = "helvetica"
        self.set_auto_page_break(True, margin=15)

    def text_of(self, value: str) -> str:
        """``value`` in characters the font has: a missing one becomes its compatibility form
        (fullwidth ``￥`` → ``¥``), else an ASCII spelling (``€`` → ``EUR``), else ``?``."""
        if self.unicode:
            cmap = self.fonts["body"].cmap
            return "".join(ch if ord(ch) in cmap or ch in "\n\t" else _fallback(ch, cmap)
                           for ch in value)
        return "".join(ch if ord(ch) < 256 else _fallback(ch, _LATIN_1) for ch in value)

    def font(self, size: float = 9, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def line_of(self, text: str, size: float = 9, bold: bool = False, h: float = 5) -> None:
        self.font(size, bold)
        self.multi_cell(0, h, self.text_of(text), new_x="LMARGIN", new_y="NEXT")


def render_pdf(doc: Document, *, font_path: str | None = None) -> bytes:
    v = present(doc)
    pdf = _Pdf(find_font(font_path))
    pdf.set_title(f"{v['title']} {v['number']}")
    pdf.set_creation_date(datetime.combine(doc.issued_on, time(0), tzinfo=timezone.utc))
    pdf.add_page()
    pdf.line_of(f"{v['title']} {v['number']}", size=16, bold=True, h=9)
    pdf.line_of(f"Date of issue: {v['date']}")
    for ref in v["references"]:
        pdf.line_of(ref, bold=True)
    pdf.ln(3)
    _parties(pdf, v)
    _lines(pdf, v)
    pdf.line_of(f"{v['tax_mode']}. Amounts in {v['currency']}.", size=8)
    pdf.ln(2)
    _pairs(pdf, "Tax breakdown", [("Tax rate", "Taxable amount", "Tax")]
           + [(t["rate"], t["net"], t["tax"]) for t in v["tax_breakdown"]], (40, 45, 45))
    _pairs(pdf, "Totals", v["totals"], (60, 45))
    if v["split"]:
        _pairs(pdf, "Settlement of this credit note", v["split"], (80, 45))
    if v["reason"]:
        pdf.line_of(f"Reason: {v['reason']}")
    if v["memo"]:
        pdf.line_of(v["memo"])
    if v["sha256"]:
        pdf.line_of(f"SHA-256 of the electronic document (UBL): {v['sha256']}", size=7)
    return bytes(pdf.output())


def _party_text(label: str, p: dict) -> str:
    rows = [label, p["name"], *p["address_lines"], p["country"]]
    rows += [f"VAT number: {p['vat_number']}" if p["vat_number"] else "", p["email"]]
    return "\n".join(r for r in rows if r)


def _parties(pdf: _Pdf, v: dict) -> None:
    pdf.font(9)
    with pdf.table(col_widths=(95, 95), first_row_as_headings=False, borders_layout="NONE",
                   line_height=5) as table:
        row = table.row()
        row.cell(pdf.text_of(_party_text("Seller", v["seller"])))
        row.cell(pdf.text_of(_party_text("Customer", v["buyer"])))
    pdf.ln(2)


def _lines(pdf: _Pdf, v: dict) -> None:
    pdf.font(8)
    with pdf.table(col_widths=LINE_WIDTHS, line_height=5, text_align=(
            "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
            headings_style=FontFace(emphasis="BOLD")) as table:
        table.row([pdf.text_of(c) for c in LINE_COLUMNS])
        for ln in v["lines"]:
            unit = ln["unit_price"] + (f"\n-{ln['discount']}" if ln["discount"] else "")
            table.row([pdf.text_of(x) for x in (ln["position"], ln["description"],
                                                 ln["quantity"], unit, ln["rate"], ln["net"],
                                                 ln["tax"], ln["gross"])])
    pdf.ln(2)


def _pairs(pdf: _Pdf, heading: str, rows: list[tuple], widths: tuple) -> None:
    pdf.line_of(heading, size=10, bold=True)
    pdf.font(9)
    with pdf.table(col_widths=widths, width=sum(widths), align="LEFT",
                   first_row_as_headings=False, line_height=5,
                   text_align=("LEFT",) + ("RIGHT",) * (len(widths) - 1)) as table:
        for r in rows:
            table.row([pdf.text_of(x) for x in r])
    pdf.ln(2)
