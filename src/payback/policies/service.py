"""The seller's refund policy: store a new version (from the API or a config file through the
CLI), read the active one. Validation is ``load_policy``'s: unknown keys, wrong types, negative
windows and undercut statutory floors are refused with the field or rule named, and nothing is
stored."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection, insert, select, update

from payback.actor import Actor
from payback.clock import Clock
from payback.errors import Conflict, NotFound
from payback.outbox.service import emit
from payback.policies import Policy, PolicyInvalid, list_presets, load_policy, load_preset
from payback.policies.tables import merchant_policies


def set_policy(conn: Connection, clock: Clock, *, seller_id: str, data: dict,
               actor: Actor) -> dict:
    """Validate ``data`` and make it the seller's active policy (a new immutable version)."""
    policy = _validated(data)
    taken = conn.execute(select(merchant_policies.c.id).where(
        merchant_policies.c.seller_id == seller_id, merchant_policies.c.policy_id == policy.id,
        merchant_policies.c.version == str(policy.version))).first()
    if taken:
        raise Conflict(f"policy {policy.id} version {policy.version} already exists; "
                       "give the new one a new version")
    now = clock.now()
    conn.execute(update(merchant_policies).where(merchant_policies.c.seller_id == seller_id)
                 .values(active=False))
    conn.execute(insert(merchant_policies), {
        "seller_id": seller_id, "policy_id": policy.id, "version": str(policy.version),
        "body": data, "active": True, "created_by": actor.id, "created_at": now})
    emit(conn, "policy.activated", policy.id, {"id": policy.id, "version": str(policy.version)},
         now, seller_id)
    return get_active(conn, seller_id)


def _validated(data: dict) -> Policy:
    """``load_policy`` with its messages as structured errors, like the API's other 422s."""
    try:
        return load_policy(data)
    except PolicyInvalid as err:
        messages = err.extra.get("errors") or [err.detail]
        raise PolicyInvalid(err.detail, errors=[
            {"loc": ["body", *m.split(":", 1)[0].split(".")], "msg": m,
             "code": "unknown_field" if m.endswith("unknown field") else "policy_invalid"}
            for m in messages]) from None


def active_policy(conn: Connection, seller_id: str) -> Policy | None:
    row = conn.execute(select(merchant_policies.c.policy_id, merchant_policies.c.version,
                              merchant_policies.c.body)
                       .where(merchant_policies.c.seller_id == seller_id,
                              merchant_policies.c.active.is_(True))).first()
    if row is None:
        return None
    return _parsed(seller_id, row.policy_id, row.version, _freeze(row.body))


@lru_cache(maxsize=256)
def _parsed(seller_id: str, policy_id: str, version: str, frozen) -> Policy:
    # Stored versions never change, so a parsed policy can be reused for every refund.
    return load_policy(_thaw(frozen))


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__list__",) + tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, tuple) and value[:1] == ("__list__",):
        return [_thaw(v) for v in value[1:]]
    if isinstance(value, tuple):
        return {k: _thaw(v) for k, v in value}
    return value


def get_active(conn: Connection, seller_id: str) -> dict:
    policy = active_policy(conn, seller_id)
    if policy is None:
        return {"active": False, "policy": None,
                "note": "No policy is configured: every refund is allowed, due within 14 days."}
    return {"active": True, "policy": policy.model_dump(mode="json")}


def list_versions(conn: Connection, seller_id: str) -> list[dict]:
    q = (select(merchant_policies.c.policy_id, merchant_policies.c.version,
                merchant_policies.c.active, merchant_policies.c.created_by,
                merchant_policies.c.created_at)
         .where(merchant_policies.c.seller_id == seller_id)
         .order_by(merchant_policies.c.id.desc()))
    return [dict(r._mapping) for r in conn.execute(q)]


def preset(preset_id: str) -> dict:
    if preset_id not in list_presets():
        raise NotFound(f"no preset {preset_id!r}; presets: {', '.join(list_presets())}")
    return load_preset(preset_id).model_dump(mode="json")
