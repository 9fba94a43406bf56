"""``payback users create|list|bootstrap`` and ``payback keys create|revoke|list``: staff
accounts and API keys. A password or a key's token is printed at most once, when it is made, and
never reaches the audit trail: every write here goes through ``audited_write``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import (
    JsonOpt,
    RoleOpt,
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

users_app = typer.Typer(no_args_is_help=True, help="Staff accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (the token is shown once).")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

_USER_AFTER = ("id", "email", "name", "role", "seller_id")
_KEY_AFTER = ("id", "name", "role", "scopes", "seller_id", "expires_at", "revoked_at")


@users_app.command("create")
@mapped
def users_create(email: Annotated[str, typer.Option(help="Login email (unique).")],
                 name: Annotated[str, typer.Option(help="Display name.")],
                 role: RoleOpt,
                 password: Annotated[str | None, typer.Option(
                     help="Password (≥ 12 characters, letters and digits). Prompted, hidden, "
                          "when left out: prefer that, a command line ends up in shell "
                          "history.")] = None,
                 generate: Annotated[bool, typer.Option(
                     "--generate-password", help="Generate a password and print it once.")
                 ] = False,
                 seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Create a staff account."""
    from payback.access.service import create_user, random_password

    if generate:
        password = random_password()
    elif password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    def create(conn, clock, _actor):
        user = create_user(conn, clock, seller_id=seller, email=email, name=name, role=role,
                           password=password)
        return user, ("usr", user["id"], {k: user[k] for k in _USER_AFTER})

    user = audited_write(Settings(), "cli.users.create", cli_actor(seller), create,
                         request={"email": email, "name": name, "role": role,
                                  "seller": seller, "generated": generate},
                         seller_id=seller)
    if as_json:
        _echo_json({**user, **({"password": password} if generate else {})})
        return
    typer.echo(f"Created staff user {user['id']} {user['email']} (role {user['role']}, "
               f"seller {user['seller_id']}).")
    if generate:
        typer.echo(f"Password (shown once, store it now): {password}")


@users_app.command("list")
@mapped
def users_list(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Staff accounts of a seller (never their password hashes)."""
    from payback.access.service import list_users
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_users(conn, seller_id=seller, limit=10_000)
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"Staff users of {seller}")
    for title in ("Id", "Email", "Name", "Role", "Active", "Last login (UTC)"):
        table.add_column(title, no_wrap=True)
    for r in rows:
        table.add_row(r["id"], r["email"], r["name"], r["role"], "yes" if r["active"] else "no",
                      _utc(r["last_login_at"]))
    _print_wide(Console(), table)


@users_app.command("bootstrap")
@mapped
def users_bootstrap(seller: SellerOpt = "sel_default") -> None:
    """First run only: create the admin account and print its password once."""
    from payback.access.service import ensure_first_admin, find_login

    def bootstrap(conn, clock, _actor):
        created = ensure_first_admin(conn, clock, seller_id=seller)
        if created is None:
            return None, None  # nothing written, nothing to record
        user_id = find_login(conn, created[0]).id
        return created, ("usr", user_id, {"id": user_id, "email": created[0], "role": "admin",
                                          "seller_id": seller})

    created = audited_write(Settings(), "cli.users.bootstrap", cli_actor(seller), bootstrap,
                            request={"seller": seller}, seller_id=seller)
    if created is None:
        typer.echo("Staff users exist already: no admin created.")
        return
    email, password = created
    typer.echo("First admin created. The password is shown ONCE: store it now.")
    typer.echo(f"  email:    {email}")
    typer.echo(f"  password: {password}")


@keys_app.command("create")
@mapped
def keys_create(name: Annotated[str, typer.Option(help="What the key is for.")],
                role: RoleOpt,
                scope: Annotated[list[str] | None, typer.Option(
                    "--scope", help="Restrict the key to this permission (repeatable); "
                                    "default: all of its role's.")] = None,
                expires_in_days: Annotated[int | None, typer.Option(
                    min=1, help="Expire after this many days (default: never).")] = None,
                seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Create an API key and print its token once (only a hash is stored)."""
    from datetime import timedelta

    from payback.access.service import create_key
    from payback.clock import FixedClock, SystemClock

    clock = FixedClock(SystemClock().now())  # one instant: expires exactly N days after creation
    expires = clock.now() + timedelta(days=expires_in_days) if expires_in_days else None

    def create(conn, clock, _actor):
        key, token = create_key(conn, clock, seller_id=seller, name=name, role=role,
                                scopes=scope or None, expires_at=expires, created_by="cli")
        return (key, token), ("key", key["id"], {k: key[k] for k in _KEY_AFTER})

    key, token = audited_write(Settings(), "cli.keys.create", cli_actor(seller), create,
                               request={"name": name, "role": role, "scopes": scope or None,
                                        "expires_in_days": expires_in_days, "seller": seller},
                               clock=clock, seller_id=seller)
    if as_json:
        _echo_json({**key, "token": token})
        return
    typer.echo(f"Created API key {key['id']} ({key['name']}, role {key['role']}, seller "
               f"{key['seller_id']}). The token is shown ONCE: store it now.")
    typer.echo(token)


@keys_app.command("revoke")
@mapped
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
                seller: SellerOpt = "sel_default") -> None:
    """Revoke an API key at once."""
    from payback.access.service import revoke_key

    def revoke(conn, clock, _actor):
        key = revoke_key(conn, clock, seller_id=seller, key_id=key_id)
        return key, ("key", key["id"], {k: key[k] for k in _KEY_AFTER})

    key = audited_write(Settings(), "cli.keys.revoke", cli_actor(seller), revoke,
                        request={"key_id": key_id, "seller": seller}, seller_id=seller,
                        target=("key", key_id))
    typer.echo(f"Revoked API key {key['id']} ({key['name']}) at {_utc(key['revoked_at'])}.")


@keys_app.command("list")
@mapped
def keys_list(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """API keys of a seller: prefix, role, scopes, last use; never a secret."""
    from payback.access.service import list_keys
    from payback.clock import SystemClock
    from payback.db import read

    now = SystemClock().now()
    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_keys(conn, seller_id=seller, limit=10_000)
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"API keys of {seller}")
    for title in ("Id", "Name", "Prefix", "Role", "Scopes", "Status", "Last used (UTC)"):
        table.add_column(title, no_wrap=True)
    for r in rows:
        status = ("revoked" if r["revoked_at"] else
                  "expired" if r["expires_at"] and r["expires_at"] <= now else "active")
        table.add_row(r["id"], r["name"], f"pb_{r['prefix']}_…", r["role"],
                      ", ".join(r["scopes"]) if r["scopes"] is not None else "all of role",
                      status, _utc(r["last_used_at"]))
    _print_wide(Console(), table)
