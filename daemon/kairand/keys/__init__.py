"""Secrets: read only through the keyring API (service "kairan"), never from anywhere else."""
