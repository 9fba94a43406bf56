"""The refund state machine as data: which status may follow which.

    requested ──► pending_approval ──► approved ──► processing ──► succeeded
        │               │    │            │             └────────► failed
        │               │    └► rejected  └► canceled
        └► approved     └► canceled
        └► rejected / canceled

Terminal states (succeeded, failed, rejected, canceled) never change. A request that is not in
the table is refused with ``InvalidTransition`` (HTTP 409, code ``invalid_transition``).
``ACTIVE`` lists the states whose amount counts against what remains refundable.
"""

from __future__ import annotations

from payback.errors import InvalidTransition

TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"pending_approval", "approved", "rejected", "canceled"}),
    "pending_approval": frozenset({"approved", "rejected", "canceled"}),
    "approved": frozenset({"processing", "canceled"}),
    "processing": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "rejected": frozenset(),
    "canceled": frozenset(),
}
STATES = tuple(TRANSITIONS)
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ACTIVE = frozenset({"requested", "pending_approval", "approved", "processing", "succeeded"})
#: States from which cancelling gives the reserved amount back without any money having moved.
RELEASABLE = frozenset({"requested", "pending_approval", "approved"})


def check(current: str, target: str) -> None:
    if current not in TRANSITIONS:
        raise InvalidTransition(f"unknown refund status {current!r}")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        raise InvalidTransition(
            f"a refund cannot go from {current} to {target}; allowed next: {allowed}",
            current=current, requested=target)


def path(current: str, target: str) -> list[str]:
    """The shortest chain of statuses from ``current`` to ``target`` (exclusive of current)."""
    frontier, seen = [[current]], {current}
    while frontier:
        route = frontier.pop(0)
        for nxt in sorted(TRANSITIONS[route[-1]]):
            if nxt == target:
                return route[1:] + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(route + [nxt])
    check(current, target)  # raises with the allowed list
    return []
