"""Sealed backups of the store (S9): an online-consistent copy sealed to an offline recovery key.

`agefmt` is the file format (the standard age format via pyrage, so Debian's `age` opens a
backup); `envelope` is the legacy v1 format, read on restore only; `service` makes, verifies,
restores (re-applying the deletion journal) and destroys backups past their lifetime;
`handover` is the contract-end hand-over. `kairanctl backup` is kairand.ctl.backup. The
format is described in docs/appliance.md.
"""
