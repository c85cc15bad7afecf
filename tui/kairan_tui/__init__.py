"""Kairan staff terminal (Textual). Its only I/O is the staff API client."""
