"""Sealed backups of the store (S9): an online-consistent copy sealed to an offline recovery key.

`envelope` is the file format (X25519 + HKDF-SHA256 + AES-256-GCM, streamed in authenticated
chunks); `service` makes, verifies, restores and prunes backups; `cli` is `kairanctl backup`.
The format is described in docs/appliance.md.
"""
