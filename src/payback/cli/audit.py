"""``payback audit verify`` and ``payback audit list``: check the hash chain (naming the first
broken record, exit status 3) and read records. Read-only: verifying never repairs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import JsonOpt, _echo_json, _engine, _print_wide, app, mapped
from payback.settings import Settings

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")

#: ``payback audit verify`` exits with this status when the hash chain is broken.
EXIT_AUDIT_BROKEN = 3


@audit_app.command("verify")
@mapped
def audit_verify() -> None:
    """Check every record's hash and link; name the first broken record (exit status 3)."""
    from payback.audit.service import verify
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        result = verify(conn)
    if result.ok:
        typer.echo(f"audit trail intact: {result.checked} records")
        typer.echo(f"last hash: {result.last_hash}")
        return
    typer.echo(f"audit trail BROKEN at record #{result.first_broken_seq}: {result.reason}")
    raise typer.Exit(EXIT_AUDIT_BROKEN)


@audit_app.command("list")
@mapped
def audit_list(object_id: Annotated[str | None, typer.Option(
                   "--object-id", help="Only records about this object.")] = None,
               actor: Annotated[str | None, typer.Option(
                   "--actor", help="Only records by this actor id.")] = None,
               action: Annotated[str | None, typer.Option(
                   "--action", help="Only this action, e.g. refund.create.")] = None,
               limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
               as_json: JsonOpt = False) -> None:
    """Audit records, oldest first, filtered by object, actor and action."""
    from payback.audit.domain import iso_utc
    from payback.audit.service import query
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = query(conn, object_id=object_id, actor_id=actor, action=action, limit=limit)
    if as_json:
        _echo_json([{**r, "at": iso_utc(r["at"])} for r in rows])
    elif not rows:
        Console().print("No audit records match.")
    else:
        _print_wide(Console(), _audit_table(rows))


def _audit_table(rows: list[dict]) -> Table:
    from rich.markup import escape  # ids and actions are data, never markup

    table = Table(title="Audit trail")
    for title in ("#", "At (UTC)", "Actor", "Role", "Action", "Object", "Outcome", "Origin"):
        table.add_column(title, no_wrap=True, justify="right" if title == "#" else "left")
    for r in rows:
        obj = f"{r['object_type'] or ''} {r['object_id'] or ''}".strip()
        cells = (r["at"].strftime("%Y-%m-%d %H:%M:%S"), f"{r['actor_kind']}:{r['actor_id']}",
                 r["actor_role"] or "", r["action"], obj, r["outcome"], r["origin"])
        table.add_row(str(r["seq"]), *(escape(c) for c in cells))
    return table
