"""Several features reacting to the same event, each in the event's own transaction.

The worker runs exactly one handler per event (see ``worker``). Outbound webhooks and customer
notifications both react to ``refund.*`` events, so they do not register handlers; they
*subscribe* here, and one handler registered on ``*`` calls every subscriber whose pattern
matches, in subscription order, inside the event's transaction. A subscriber only writes rows
(a webhook delivery, a notification) and follow-up outbox events; the slow work (HTTP, SMTP) is
done by the follow-up event's own non-transactional handler.

Patterns: an exact topic, a prefix ending in ``.`` or ``.*``, or ``*`` for every topic. Topics of
the follow-up jobs themselves (``INTERNAL_PREFIXES``) never reach subscribers.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

Subscriber = Callable[[Connection, dict], None]
#: Outbox topics that are Payback's own jobs, not business events.
INTERNAL_PREFIXES = ("gateway.", "webhook.", "notification.", "reconcile.")


class Subscribers:
    def __init__(self) -> None:
        self._subs: list[tuple[str, Subscriber]] = []

    def subscribe(self, pattern: str, fn: Subscriber) -> Subscriber:
        pattern = pattern.strip()
        if not pattern:
            raise ValueError("a topic pattern is required")
        if (pattern, fn) not in self._subs:
            self._subs.append((pattern, fn))
        return fn

    def matching(self, topic: str) -> list[Subscriber]:
        if topic.startswith(INTERNAL_PREFIXES):
            return []
        return [fn for pattern, fn in self._subs if matches(pattern, topic)]

    def __call__(self, conn: Connection, event: dict) -> None:
        """The ``*`` handler: run every matching subscriber."""
        for fn in self.matching(event["topic"]):
            fn(conn, event)


def matches(pattern: str, topic: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        pattern = pattern[:-1]
    return topic.startswith(pattern) if pattern.endswith(".") else topic == pattern


DEFAULT_SUBSCRIBERS = Subscribers()


def subscribe(pattern: str, fn: Subscriber) -> Subscriber:
    return DEFAULT_SUBSCRIBERS.subscribe(pattern, fn)
