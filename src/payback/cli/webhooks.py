"""``payback webhooks add|list|log``: register an outbound webhook endpoint (its signing secret
is printed once), list a seller's endpoints (secrets masked), and read an endpoint's delivery
log with every attempt. The same service functions as ``/v1/webhook-endpoints``; the write is
audited (origin ``cli``) and its record never holds the secret.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from payback.cli.core import (
    JsonOpt,
    SellerOpt,
    _echo_json,
    _engine,
    _print_wide,
    _utc,
    app,
    audited_write,
    cli_actor,
    mapped,
)
from payback.settings import Settings

webhooks_app = typer.Typer(no_args_is_help=True,
                           help="Outbound webhooks: endpoints and their delivery logs.")
app.add_typer(webhooks_app, name="webhooks")

_AFTER = ("id", "url", "event_types", "enabled", "description", "seller_id")


@webhooks_app.command("add")
@mapped
def add(url: Annotated[str, typer.Option(help="Where to POST deliveries (http or https).")],
        events: Annotated[str, typer.Option(
            help="Comma-separated event types: exact (refund.succeeded), families (refund.*) "
                 "or * for all.")],
        description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
        seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Register an endpoint and print its signing secret (shown ONCE)."""
    from payback.webhooks.service import create_endpoint

    event_types = [e.strip() for e in events.split(",") if e.strip()]

    def create(conn, clock, _actor):
        endpoint = create_endpoint(conn, clock, seller_id=seller, url=url,
                                   event_types=event_types, description=description)
        return endpoint, ("webhook_endpoint", endpoint["id"], {k: endpoint[k] for k in _AFTER})

    endpoint = audited_write(Settings(), "cli.webhooks.add", cli_actor(seller), create,
                             request={"url": url, "events": event_types,
                                      "description": description, "seller": seller},
                             seller_id=seller)
    if as_json:
        _echo_json(endpoint)
        return
    typer.echo(f"Registered webhook endpoint {endpoint['id']} → {endpoint['url']} "
               f"({', '.join(endpoint['event_types'])}, seller {endpoint['seller_id']}).")
    typer.echo("Signing secret (shown ONCE, store it now):")
    typer.echo(endpoint["secret"])


@webhooks_app.command("list")
@mapped
def list_(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """A seller's endpoints, disabled ones included (secrets masked)."""
    from payback.db import read
    from payback.webhooks.service import list_endpoints

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_endpoints(conn, seller_id=seller, limit=10_000)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo(f"No webhook endpoints for {seller}. Add one with `payback webhooks add`.")
        return
    table = Table(title=f"Webhook endpoints of {seller}")
    for title in ("Id", "URL", "Events", "Enabled", "Secret", "Description"):
        table.add_column(title, no_wrap=title in ("Id", "Secret"))
    for r in rows:
        table.add_row(r["id"], escape(r["url"]), escape(", ".join(r["event_types"])),
                      "yes" if r["enabled"] else "no", r["secret_hint"],
                      escape(r["description"] or ""))
    _print_wide(Console(), table)


@webhooks_app.command("log")
@mapped
def log(endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (we_…).")],
        limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest deliveries shown.")
                         ] = 20,
        status: Annotated[str | None, typer.Option(
            help="Only deliveries in this status: pending, delivered or failed.")] = None,
        seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """An endpoint's delivery log, newest first, with every attempt."""
    from payback.db import read
    from payback.webhooks.service import list_deliveries

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_deliveries(conn, endpoint_id, seller, limit=limit, status=status)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo(f"No deliveries to {endpoint_id} yet.")
        return
    _print_wide(Console(), _log_table(endpoint_id, rows))


def _log_table(endpoint_id: str, rows: list[dict]) -> Table:
    table = Table(title=f"Deliveries to {endpoint_id}, newest first")
    for title in ("Delivery", "Event", "Type", "Status", "Attempt at (UTC)", "Answer", "ms",
                  "Next attempt (UTC)"):
        table.add_column(title, no_wrap=True)
    for d in rows:
        attempts = d["attempts"] or [None]
        for i, a in enumerate(attempts):
            first = i == 0
            answer = "" if a is None else (str(a["status_code"]) if a["status_code"] is not None
                                           else escape((a["error"] or "")[:60]))
            table.add_row(d["id"] if first else "", d["event_id"] if first else "",
                          d["event_type"] if first else "", d["status"] if first else "",
                          _utc(a["attempted_at"]) if a else "not yet", answer,
                          str(a["duration_ms"]) if a else "",
                          _utc(d["next_attempt_at"]) if first and d["status"] == "pending"
                          else "")
    return table
