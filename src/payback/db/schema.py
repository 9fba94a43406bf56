"""Imports every feature's tables so that ``metadata`` knows the whole schema (Alembic, tests)."""

from payback.access import tables as _access  # noqa: F401
from payback.api import tables as _api  # noqa: F401
from payback.audit import tables as _audit  # noqa: F401
from payback.credit_notes import tables as _credit_notes  # noqa: F401
from payback.customers import tables as _customers  # noqa: F401
from payback.db import metadata
from payback.gateways import tables as _gateways  # noqa: F401
from payback.notifications import tables as _notifications  # noqa: F401
from payback.invoicing import tables as _invoicing  # noqa: F401
from payback.ledger import tables as _ledger  # noqa: F401
from payback.outbox import tables as _outbox  # noqa: F401
from payback.payments import tables as _payments  # noqa: F401
from payback.policies import tables as _policies  # noqa: F401
from payback.refunds import tables as _refunds  # noqa: F401
from payback.store_credit import tables as _store_credit  # noqa: F401
from payback.web import tables as _web  # noqa: F401
from payback.webhooks import tables as _webhooks  # noqa: F401

__all__ = ["metadata"]
