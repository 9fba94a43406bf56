"""``payback policy load|show|presets|preset``: the seller's refund policy from a YAML or JSON
file, the active policy, and the jurisdiction presets shipped in the package.

``load`` validates through the same service as ``POST /v1/policies`` (unknown keys, wrong types,
negative windows and undercut statutory floors are refused, naming the field or rule, and nothing
is stored); the stored body is the file's plain mapping, so a later version of Payback reads it
exactly as written. Loading is audited, a refused file too.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from payback.cli.core import (
    JsonOpt,
    SellerOpt,
    _echo_json,
    _engine,
    _print_wide,
    app,
    audited_write,
    cli_actor,
    mapped,
)
from payback.settings import Settings

policy_app = typer.Typer(no_args_is_help=True,
                         help="Refund policies: the seller's own, and the presets.")
app.add_typer(policy_app, name="policy")


def read_policy_file(path: Path) -> dict:
    """The file's mapping: JSON for ``*.json``, else YAML. YAML dates become ISO strings, so the
    body stores as JSON unchanged in meaning."""
    from payback.policies import PolicyInvalid

    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise PolicyInvalid(f"(policy): not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyInvalid("(policy): must be a mapping of fields")
    return _plain(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


@policy_app.command("load")
@mapped
def policy_load(file: Annotated[Path, typer.Argument(
                    exists=True, dir_okay=False, readable=True,
                    help="A policy file, YAML or JSON (*.json).")],
                seller: SellerOpt = "sel_default") -> None:
    """Validate a policy file and make it the seller's active policy (a new version)."""
    from payback.policies.service import set_policy

    def load(conn, clock, actor):
        data = read_policy_file(file)
        active = set_policy(conn, clock, seller_id=seller, data=data, actor=actor)
        policy = active["policy"]
        return policy, ("policy", policy["id"], {"policy_id": policy["id"],
                                                 "version": policy["version"], "body": data})

    policy = audited_write(Settings(), "cli.policy.load", cli_actor(seller), load,
                           request={"file": str(file), "seller": seller}, seller_id=seller,
                           target=("policy", None))
    typer.echo(f"Policy {policy['id']} version {policy['version']} is now active for {seller}"
               + (f" (extends {policy['extends']})." if policy.get("extends") else "."))


@policy_app.command("show")
@mapped
def policy_show(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """The seller's active policy, with everything it inherits from its preset."""
    from payback.db import read
    from payback.policies.service import get_active

    with _engine(Settings()) as engine, read(engine) as conn:
        active = get_active(conn, seller)
    if as_json:
        _echo_json(active)
    elif not active["active"]:
        typer.echo(f"No refund policy is configured for {seller}. {active['note']}")
    else:
        policy = active["policy"]
        typer.echo(f"Active policy {policy['id']} version {policy['version']} of {seller}:")
        typer.echo(_yaml(policy))


@policy_app.command("presets")
@mapped
def policy_presets(as_json: JsonOpt = False) -> None:
    """The jurisdiction presets shipped with Payback."""
    from payback.policies import list_presets, load_preset

    presets = [load_preset(p) for p in list_presets()]
    if as_json:
        _echo_json([{"id": p.id, "jurisdiction": p.jurisdiction, "version": p.version,
                     "name": p.name} for p in presets])
        return
    table = Table(title="Policy presets")
    for title in ("Id", "Jurisdiction", "Version", "Name"):
        table.add_column(title, no_wrap=True)
    for p in presets:
        table.add_row(p.id, p.jurisdiction, p.version, p.name)
    _print_wide(Console(), table)


@policy_app.command("preset")
@mapped
def policy_preset(preset_id: Annotated[str, typer.Argument(
                      metavar="ID", help="A preset id, e.g. EU-CRD.")],
                  as_json: JsonOpt = False) -> None:
    """One preset in full: its rules, legal basis and statutory floor."""
    from payback.policies.service import preset

    body = preset(preset_id)
    if as_json:
        _echo_json(body)
    else:
        typer.echo(_yaml(body))


def _yaml(body: dict) -> str:
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100).rstrip()
