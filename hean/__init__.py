"""HEAN: hardened execution-and-risk runtime for Bybit v5."""

__version__ = "0.1.0"
