"""A free invoice (every line priced at zero) is issued and voided without a journal entry:
it moves no money, so there is nothing to book (and an empty entry would be refused)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from payback import db
from payback.customers.service import create_customer
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, void_invoice
from payback.ledger.tables import journal_entries


def test_free_invoice_issues_and_voids_without_entries(engine, clock):
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Sample seeker")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Free sample", 2, 0, Decimal("0.2"))])
        assert (inv["total_minor"], inv["status"]) == (0, "paid")
        voided = void_invoice(conn, clock, inv["id"])
        assert voided["status"] == "void"
        assert conn.execute(select(func.count()).select_from(journal_entries)).scalar_one() == 0
