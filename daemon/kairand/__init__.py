"""Kairan daemon: LINE official account appliance that keeps residents' data on the premises."""

__version__ = "0.1.0"
