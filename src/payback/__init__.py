"""Payback: billing software whose heart is refunds done right."""

__version__ = "0.1.0"
