"""Tamper-evident audit log: a hash chain over canonical entries, with signed checkpoints."""
