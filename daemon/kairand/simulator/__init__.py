"""Kairan simulator."""
