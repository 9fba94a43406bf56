"""The ``payback`` command line (entry point ``payback = "payback.cli:app"``).

Importing this package registers every command on ``app`` (the order of the imports is the
order of the groups in ``payback --help``):

- ``core``: the Typer app, the error mapper ``exit_for``, ``audited_write`` and shared helpers;
- ``data``: ``db upgrade``, ``serve``, ``demo``;
- ``reports``: ``report revenue``, ``ledger trial-balance``;
- ``audit``: ``audit verify|list``;
- ``access``: ``users create|list|bootstrap``, ``keys create|revoke|list``;
- ``policies``: ``policy load|show|presets|preset``;
- ``refunds``: ``refunds overdue|approve|reject``;
- ``exports``: ``export beancount|csv``, ``report tax``;
- ``store_credit``: ``store-credit expire|statement``;
- ``documents``: ``documents invoice|credit-note``, ``credit-notes list``;
- ``worker``: ``worker``, ``outbox list|retry``;
- ``gateways``: ``reconcile``, ``sandbox pump``;
- ``webhooks``: ``webhooks add|list|log``.

No business rule lives here: every command calls the same service functions as the HTTP API.
"""

# isort: off
from payback.cli.core import EXIT_DOMAIN_ERROR, EXIT_UNEXPECTED, app, exit_for, mapped
from payback.cli import data, reports, audit, access, policies, refunds  # noqa: F401 (register)
from payback.cli import exports  # noqa: F401 (register: export, report tax)
from payback.cli import store_credit  # noqa: F401 (register: store-credit expire|statement)
from payback.cli import documents  # noqa: F401 (register: documents, credit-notes list)
from payback.cli import worker  # noqa: F401 (register: worker, outbox list|retry)
from payback.cli import gateways  # noqa: F401 (register: reconcile, sandbox pump)
from payback.cli import webhooks  # noqa: F401 (register: webhooks add|list|log)
from payback.cli.audit import EXIT_AUDIT_BROKEN
# isort: on

__all__ = ["EXIT_AUDIT_BROKEN", "EXIT_DOMAIN_ERROR", "EXIT_UNEXPECTED", "app", "exit_for",
           "mapped"]
