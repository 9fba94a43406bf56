"""``payback store-credit expire|statement``: the expiry job and a customer's statement.

``expire`` is the scheduled job of store-credit expiry (run it daily from cron or a scheduler;
the worker will run it on a schedule): it closes every lot whose expiry has come, posts the
breakage and emits ``store_credit.expired``. It is idempotent, so running it twice, or from two
machines at once, expires each lot once. Each run that expired something is audited (origin
``cli``); a run that found nothing writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from payback.cli.core import (
    DayFrom,
    DayTo,
    JsonOpt,
    _echo_json,
    _engine,
    _money,
    _print_wide,
    _utc,
    app,
    audited_write,
    cli_actor,
    mapped,
)
from payback.settings import Settings

store_credit_app = typer.Typer(no_args_is_help=True,
                               help="Store credit: the expiry job and customer statements.")
app.add_typer(store_credit_app, name="store-credit")

SellerAll = Annotated[str | None, typer.Option(
    "--seller", help="Only this seller's store credit (default: every seller).")]


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


@store_credit_app.command("expire")
@mapped
def expire(seller: SellerAll = None, as_json: JsonOpt = False) -> None:
    """Expire every store-credit lot whose expiry date has passed (posts breakage income)."""
    from payback.access.tables import DEFAULT_SELLER_ID
    from payback.store_credit.service import expire_due

    def run(conn, clock, actor):
        done = expire_due(conn, clock, seller_id=seller)
        audit = ("store_credit", None, {"count": done["count"], "totals": done["totals"]})
        return done, audit if done["count"] else None

    done = audited_write(Settings(), "cli.store_credit.expire",
                         cli_actor(seller or DEFAULT_SELLER_ID), run,
                         request={"seller": seller}, seller_id=seller)
    if as_json:
        _echo_json({**done, "now": _iso(done["now"])})
        return
    if not done["count"]:
        typer.echo("No store credit is due to expire.")
        return
    totals = ", ".join(_money(t["amount_minor"], t["currency"]) for t in done["totals"])
    typer.echo(f"Expired {done['count']} store-credit lot(s): {totals} to breakage income.")


@store_credit_app.command("statement")
@mapped
def statement(customer_id: Annotated[str, typer.Argument(help="The customer's id (cus_…).")],
              currency: Annotated[str, typer.Option(help="ISO 4217 code of the wallet.")],
              date_from: DayFrom = None, date_to: DayTo = None,
              seller: Annotated[str | None, typer.Option(
                  "--seller", help="Only if the customer is this seller's.")] = None,
              as_json: JsonOpt = False) -> None:
    """A customer's store-credit statement: opening balance, each transaction of the period with
    its kind, lot and running balance, closing balance (default: the whole history)."""
    from payback.db import read
    from payback.store_credit.service import statement as build

    with _engine(Settings()) as engine, read(engine) as conn:
        st = build(conn, customer_id, currency,
                   date_from=date_from.date() if date_from else None,
                   date_to=date_to.date() if date_to else None, seller_id=seller)
    if as_json:
        _echo_json({**{k: _iso(v) for k, v in st.items() if k != "transactions"},
                    "transactions": [{k: _iso(v) for k, v in t.items()}
                                     for t in st["transactions"]]})
        return
    _print_wide(Console(), _statement_table(st))


def _statement_table(st: dict) -> Table:
    cur = st["currency"]
    period = (f"{_utc(st['from']) if st['from'] else 'the beginning'} to "
              f"{_utc(st['to']) if st['to'] else 'now'}")
    table = Table(title=f"Store credit of {escape(st['customer_id'])} in {cur}, {period}",
                  caption=f"Closing balance {_money(st['closing_balance_minor'], cur)}")
    for name, justify in (("Date (UTC)", "left"), ("Kind", "left"), ("Lot", "left"),
                          ("Amount", "right"), ("Balance", "right"), ("Memo", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "Memo")
    table.add_row("", "opening balance", "", "", _money(st["opening_balance_minor"], cur), "")
    for t in st["transactions"]:
        lot = f"{t['lot_id']} ({t['lot_kind']})" if t["lot_id"] else ""
        table.add_row(_utc(t["created_at"]), t["kind"], escape(lot),
                      _money(t["amount_minor"], cur), _money(t["balance_minor"], cur),
                      escape(t["memo"] or ""))
    table.add_row("", "closing balance", "", "", _money(st["closing_balance_minor"], cur), "")
    return table
