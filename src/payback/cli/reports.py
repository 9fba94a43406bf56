"""``payback report revenue`` and ``payback ledger trial-balance``: the books as tables (amounts
formatted, never cut) or as JSON (integer minor units, the API's bodies). Read-only."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import (
    CurrencyOpt,
    DayFrom,
    DayTo,
    JsonOpt,
    _echo_json,
    _engine,
    _money,
    _print_wide,
    app,
    mapped,
)
from payback.settings import Settings

report_app = typer.Typer(no_args_is_help=True, help="Reports read from the ledger.")
ledger_app = typer.Typer(no_args_is_help=True, help="The double-entry ledger.")
app.add_typer(report_app, name="report")
app.add_typer(ledger_app, name="ledger")

REVENUE_COLUMNS = (("gross_sales_minor", "Gross sales"), ("returns_minor", "Returns"),
                   ("net_revenue_minor", "Net revenue"), ("tax_collected_minor", "Tax collected"),
                   ("tax_refunded_minor", "Tax refunded"), ("net_tax_minor", "Net tax"),
                   ("refunds_paid_out_minor", "Refunds paid out"),
                   ("refunds_to_store_credit_minor", "To store credit"))


@report_app.command("revenue")
@mapped
def report_revenue(date_from: DayFrom = None, date_to: DayTo = None,
                   currency: CurrencyOpt = None,
                   group_by: Annotated[str, typer.Option(
                       "--group-by", help="none or month.")] = "none",
                   as_json: JsonOpt = False) -> None:
    """Gross sales, returns, net revenue and tax per currency, read from the ledger."""
    from payback.db import read
    from payback.money import normalise_currency
    from payback.reports.service import revenue

    year = date.today().year
    start = date_from.date() if date_from else date(year, 1, 1)
    end = date_to.date() if date_to else date(year + 1, 1, 1)
    cur = normalise_currency(currency) if currency else None
    with _engine(Settings()) as engine, read(engine) as conn:
        report = revenue(conn, start, end, currency=cur, group_by=group_by)
    if as_json:
        _echo_json(report)
    else:
        _print_revenue(report)


def _print_revenue(report: dict) -> None:
    """Without grouping: one table, a row per figure and a column per currency (narrow enough
    for any terminal). By month: a table per currency, a row per month."""
    console = Console()
    periods = [p for p in report["periods"] if p["currencies"]]
    if not periods:
        console.print("No ledger entries in this period.")
    elif report["group_by"] == "none":
        _print_wide(console, _revenue_by_currency(report, periods[0]["currencies"]))
    else:
        for cur in sorted({row["currency"] for p in periods for row in p["currencies"]}):
            _print_wide(console, _revenue_by_month(report, cur))


def _revenue_by_currency(report: dict, rows: list[dict]) -> Table:
    table = Table(title=f"Revenue {report['from']} to {report['to']} (end exclusive)")
    table.add_column("")
    for row in rows:
        table.add_column(row["currency"], justify="right", no_wrap=True)
    for key, title in REVENUE_COLUMNS:
        table.add_row(title, *[_money(row[key], row["currency"]) for row in rows])
    return table


def _revenue_by_month(report: dict, cur: str) -> Table:
    table = Table(title=f"Revenue in {cur} by month, {report['from']} to {report['to']} "
                        "(end exclusive)")
    table.add_column("Period", no_wrap=True)
    for _key, title in REVENUE_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for period in report["periods"]:
        row = next((r for r in period["currencies"] if r["currency"] == cur), None)
        figures = [_money(row[k] if row else 0, cur) for k, _ in REVENUE_COLUMNS]
        table.add_row(_period_label(period["from"], period["to"]), *figures)
    return table


def _period_label(start: str, end: str) -> str:
    """"2026-03" for a whole calendar month, else "2026-03-15 to 2026-04-01"."""
    first, nxt = date.fromisoformat(start), date.fromisoformat(end)
    whole = first.day == 1 and nxt == date(first.year + (first.month == 12),
                                            first.month % 12 + 1, 1)
    return start[:7] if whole else f"{start} to {end}"


@ledger_app.command("trial-balance")
@mapped
def trial_balance(currency: CurrencyOpt = None, as_json: JsonOpt = False) -> None:
    """Debits, credits and balance of every account per currency; totals must agree."""
    from payback.db import read
    from payback.ledger.service import trial_balance as service_trial_balance
    from payback.money import normalise_currency

    cur = normalise_currency(currency) if currency else None
    with _engine(Settings()) as engine, read(engine) as conn:
        tb = service_trial_balance(conn, currency=cur)
    if as_json:
        _echo_json(tb)
    else:
        _print_trial_balance(tb)


def _print_trial_balance(tb: dict) -> None:
    console = Console()
    if not tb["totals"]:
        console.print("The ledger is empty.")
        return
    for total in tb["totals"]:
        cur = total["currency"]
        table = Table(title=f"Trial balance — {cur}")
        for title, justify in (("Account", "left"), ("Debit", "right"), ("Credit", "right"),
                               ("Balance", "right")):
            table.add_column(title, justify=justify, no_wrap=True)
        for acct in (a for a in tb["accounts"] if a["currency"] == cur):
            table.add_row(f"{acct['account_code']} {acct['account_name']}",
                          _money(acct["debit_minor"], cur), _money(acct["credit_minor"], cur),
                          _money(acct["balance_minor"], cur))
        table.add_section()
        table.add_row("Total", _money(total["debit_minor"], cur),
                      _money(total["credit_minor"], cur),
                      "balanced" if total["balanced"] else "[bold red]NOT BALANCED[/]")
        _print_wide(console, table)
