"""``payback export beancount|csv`` (the journal for accountants) and ``payback report tax``
(tax collected, refunded and due per country and rate). Read-only.

An export is rendered completely before anything is written, so a refused request (a reversed
or empty range: exit 2) leaves no file behind, and ``-o FILE`` is replaced atomically.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.access.tables import DEFAULT_SELLER_ID
from payback.cli.core import (
    CurrencyOpt,
    JsonOpt,
    _echo_json,
    _engine,
    _money,
    _print_wide,
    app,
    mapped,
)
from payback.cli.reports import report_app
from payback.settings import Settings

export_app = typer.Typer(no_args_is_help=True,
                         help="Accounting exports of the journal (Beancount, CSV).")
app.add_typer(export_app, name="export")

FromDay = Annotated[datetime, typer.Option(
    "--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
    help="First day, inclusive (UTC posting time).")]
ToDay = Annotated[datetime, typer.Option(
    "--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last day, exclusive.")]
OutOpt = Annotated[Path | None, typer.Option(
    "-o", "--output", help="Write to this file (default: standard output).")]
Seller = Annotated[str, typer.Option("--seller", help="Seller id (default: sel_default).")]


def _export(fmt: str, date_from: datetime, date_to: datetime, output: Path | None,
            seller: str) -> None:
    from payback.db import read
    from payback.exports.service import check_range, export

    check_range(date_from.date(), date_to.date())  # before connecting: nothing to undo
    with _engine(Settings()) as engine, read(engine) as conn:
        text = export(conn, fmt, date_from.date(), date_to.date(), seller_id=seller)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _write_atomically(output, text)
    typer.echo(f"wrote {output} ({len(text.encode('utf-8'))} bytes)", err=True)


def _write_atomically(path: Path, text: str) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@export_app.command("beancount")
@mapped
def export_beancount(date_from: FromDay, date_to: ToDay, output: OutOpt = None,
                     seller: Seller = DEFAULT_SELLER_ID) -> None:
    """The journal as Beancount text (bean-check accepts it; balances asserted at --to)."""
    _export("beancount", date_from, date_to, output, seller)


@export_app.command("csv")
@mapped
def export_csv(date_from: FromDay, date_to: ToDay, output: OutOpt = None,
               seller: Seller = DEFAULT_SELLER_ID) -> None:
    """The journal as CSV: one row per posting, amounts in major units (RFC 4180)."""
    _export("csv", date_from, date_to, output, seller)


TAX_COLUMNS = (("taxable_net_minor", "Taxable net"), ("tax_collected_minor", "Tax collected"),
               ("refunded_net_minor", "Net refunded"), ("tax_refunded_minor", "Tax refunded"),
               ("net_tax_due_minor", "Net tax due"))


@report_app.command("tax")
@mapped
def report_tax(date_from: FromDay, date_to: ToDay, currency: CurrencyOpt = None,
               seller: Seller = DEFAULT_SELLER_ID, as_json: JsonOpt = False) -> None:
    """Tax collected, refunded through credit notes and due, per country and rate, reconciled
    with Tax payable in the ledger."""
    from payback.db import read
    from payback.reports.tax import tax_report

    with _engine(Settings()) as engine, read(engine) as conn:
        report = tax_report(conn, date_from.date(), date_to.date(), seller_id=seller,
                            currency=currency)
    if as_json:
        _echo_json(report)
        return
    console = Console()
    if not report["totals"]:
        console.print("No tax in this period.")
    for total in report["totals"]:
        _print_wide(console, _tax_table(report, total))


def _tax_table(report: dict, total: dict) -> Table:
    cur = total["currency"]
    table = Table(title=f"Tax in {cur}, {report['from']} to {report['to']} (end exclusive)")
    table.add_column("Country")
    table.add_column("Rate", justify="right")
    for _key, title in TAX_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for row in (r for r in report["rows"] if r["currency"] == cur):
        table.add_row(row["country"], _percent(row["tax_rate"]),
                      *[_money(row[k], cur) for k, _ in TAX_COLUMNS])
    table.add_section()
    table.add_row("Total", "", *[_money(total[k], cur) for k, _ in TAX_COLUMNS])
    status = "reconciled" if total["reconciled"] else \
        f"[bold red]differs by {_money(total['difference_minor'], cur)}[/]"
    table.add_row("Ledger: change of Tax payable", "", "", "", "", "",
                  f"{_money(total['ledger_tax_change_minor'], cur)} ({status})")
    return table


def _percent(rate: str) -> str:
    from decimal import Decimal

    return f"{(Decimal(rate) * 100).normalize():f} %"
