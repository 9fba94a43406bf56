"""What the worker does with each outbox event: every feature's handlers and subscribers,
installed into a worker registry in one place (the CLI's ``worker`` and ``serve --with-worker``
and the tests call ``install``).

- ``gateway.refund.submit`` — call the gateway for one refund intent (``payback.gateways.flow``);
- ``gateway.refund.poll`` — ask the gateway about an intent still pending;
- ``*`` — the fan-out (``payback.outbox.fanout``): outbound webhooks and customer notifications
  subscribe to business events there and queue their own follow-up jobs
  (``webhook.deliver``, ``notification.send``).
"""

from __future__ import annotations

import importlib

from payback.outbox.fanout import DEFAULT_SUBSCRIBERS, Subscribers
from payback.outbox.worker import DEFAULT_REGISTRY, Registry

#: Modules with ``install(registry, subscribers)``; one that is missing is skipped, so a feature
#: can be built in steps.
FEATURE_MODULES = ("payback.gateways.flow", "payback.webhooks.delivery",
                   "payback.notifications.service")


def install(registry: Registry = DEFAULT_REGISTRY,
            subscribers: Subscribers = DEFAULT_SUBSCRIBERS) -> Registry:
    for name in FEATURE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.install(registry, subscribers)
    registry.register("*", subscribers)
    return registry
