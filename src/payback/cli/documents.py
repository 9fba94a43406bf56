"""``payback documents invoice|credit-note ID --format pdf|html|xml -o FILE`` and
``payback credit-notes list``: download the same renderings as the API, list credit notes.
Read-only (no audit record: the audit trail records writes and refusals)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import JsonOpt, SellerOpt, _echo_json, _engine, _money, _print_wide, app, \
    mapped
from payback.settings import Settings

documents_app = typer.Typer(no_args_is_help=True,
                            help="Invoices and credit notes as PDF, HTML or UBL XML.")
credit_notes_app = typer.Typer(no_args_is_help=True, help="Credit notes.")
app.add_typer(documents_app, name="documents")
app.add_typer(credit_notes_app, name="credit-notes")

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="pdf, html or xml (EN 16931 UBL).")]
OutOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="File to write (default: <number>.<format> in this folder).")]
DEFAULT_SELLER = "sel_default"


def _write(load, fmt: str, output: Path | None) -> None:
    from payback.db import read
    from payback.documents.router import FORMATS, render
    from payback.errors import ValidationFailed

    if fmt not in FORMATS:
        raise ValidationFailed(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    with _engine(Settings()) as engine, read(engine) as conn:
        doc = load(conn)
    content, _, filename = render(doc, fmt)
    target = output or Path(filename)
    target.write_bytes(content)
    typer.echo(f"wrote {doc.number} ({fmt}, {len(content)} bytes) to {target}")


@documents_app.command("invoice")
@mapped
def invoice(invoice_id: str, fmt: FormatOpt = "pdf", output: OutOpt = None,
            seller: SellerOpt = DEFAULT_SELLER) -> None:
    """Write an invoice as PDF, HTML or UBL XML."""
    from payback.documents.service import invoice_document

    _write(lambda conn: invoice_document(conn, invoice_id, seller), fmt, output)


@documents_app.command("credit-note")
@mapped
def credit_note(credit_note_id: str, fmt: FormatOpt = "pdf", output: OutOpt = None,
                seller: SellerOpt = DEFAULT_SELLER) -> None:
    """Write a credit note as PDF, HTML or UBL XML (type code 381)."""
    from payback.documents.service import load_credit_note_document

    _write(lambda conn: load_credit_note_document(conn, credit_note_id, seller), fmt, output)


@credit_notes_app.command("list")
@mapped
def list_notes(invoice: Annotated[str | None, typer.Option(
                   "--invoice", help="Only the notes of this invoice id.")] = None,
               limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
               seller: SellerOpt = DEFAULT_SELLER, as_json: JsonOpt = False) -> None:
    """Credit notes, oldest first: number, kind, invoice, total and its split."""
    from payback.credit_notes.service import list_credit_notes
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_credit_notes(conn, after=None, limit=limit, invoice_id=invoice,
                                 seller_id=seller)
    if as_json:
        _echo_json(rows)
        return
    table = Table("Number", "Kind", "Invoice", "Issued", "Total", "Refunded", "Store credit",
                  "Outside", "Id")
    for r in rows:
        cur = r["currency"]
        table.add_row(r["number"], r["kind"], r["invoice_number"],
                      r["issued_at"].strftime("%Y-%m-%d"), _money(r["total_minor"], cur),
                      _money(r["refunded_minor"], cur), _money(r["credited_minor"], cur),
                      _money(r["outside_minor"], cur), r["id"])
    _print_wide(Console(), table)
