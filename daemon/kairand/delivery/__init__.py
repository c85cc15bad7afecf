"""Kairan delivery."""
