"""Kairan api."""
