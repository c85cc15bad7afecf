"""Segments: the filter that selects a delivery's recipients, and its SQL compilation."""
