"""Customers table: who is billed. Personal data lives only here."""

from sqlalchemy import Column, ForeignKey, String, Table, Text

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

customers = Table(
    "customers", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("locale", String(20), nullable=False, server_default="en_US"),
    Column("country", String(2), nullable=True),
    Column("address", Text, nullable=True),
    Column("vat_number", String(40), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
