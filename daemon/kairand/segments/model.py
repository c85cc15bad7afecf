"""The segment filter model (pure). Built out by the segments work; see docs/api.md."""
