"""Accounting exports of the journal: Beancount text (``bean-check`` accepts it, and its balance
assertions pin Payback's own balances) and a CSV journal. See docs/exports.md."""
