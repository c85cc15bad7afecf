"""Keyring backends shipped with Kairan.

- `CredentialsKeyring` (appliance): read-only, one file per secret in $CREDENTIALS_DIRECTORY,
  as systemd's LoadCredentialEncrypted= provides them. The unit pins it with
  PYTHON_KEYRING_BACKEND=kairand.keys.backends.CredentialsKeyring.
- `DirectoryKeyring` (development and tests): the same file layout in a folder of your choice,
  writable, files 0600. Never for production: the files are plain on disk.
- `MemoryKeyring` (unit tests): a process-local dict.

None of them is chosen automatically unless its environment is present, so a headless box never
silently falls back to a plaintext keyring.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import ClassVar

from jaraco.classes import properties
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

SERVICE = "kairan"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check(service: str, username: str) -> bool:
    """Only service "kairan" with plain secret names is served; everything else is unknown."""
    return service == SERVICE and bool(_NAME_RE.match(username))


class _FileKeyring(KeyringBackend):
    directory: Path

    def get_password(self, service: str, username: str) -> str | None:
        if not _check(service, username):
            return None
        try:
            return (self.directory / username).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None

    def delete_password(self, service: str, username: str) -> None:
        raise PasswordDeleteError("Kairan secrets are not deleted through keyring")


class CredentialsKeyring(_FileKeyring):
    """systemd credentials in $CREDENTIALS_DIRECTORY (read-only, non-swappable ramfs)."""

    @properties.classproperty
    def priority(cls) -> float:
        if not os.environ.get("CREDENTIALS_DIRECTORY"):
            raise RuntimeError("no $CREDENTIALS_DIRECTORY: not running under systemd credentials")
        return 10

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's __init__ is unannotated
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise RuntimeError("CredentialsKeyring needs $CREDENTIALS_DIRECTORY (set by systemd)")
        self.directory = Path(directory)

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PasswordSetError(
            "systemd credentials are read-only: seal a new one with `systemd-creds encrypt` "
            "(see docs/運用マニュアル.md, key rotation)"
        )


class DirectoryKeyring(_FileKeyring):
    """Development keyring: one 0600 file per secret in a folder (KAIRAN_KEYRING_DIRECTORY or
    the folder passed in). Selected by a dev config's [keyring] section."""

    ENV: ClassVar[str] = "KAIRAN_KEYRING_DIRECTORY"

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("DirectoryKeyring is only used when selected explicitly")

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's __init__ is unannotated
        chosen = directory or os.environ.get(self.ENV)
        if not chosen:
            raise RuntimeError(f"DirectoryKeyring needs a folder: set {self.ENV}")
        self.directory = Path(chosen)

    def set_password(self, service: str, username: str, password: str) -> None:
        if not _check(service, username):
            raise PasswordSetError(f"Kairan stores only service {SERVICE!r} with plain names")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write-then-rename so a crash never leaves a half-written secret.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, password.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / username)


class MemoryKeyring(KeyringBackend):
    """Process-local secrets for unit tests."""

    store: ClassVar[dict[str, str]] = {}

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("MemoryKeyring is only used when selected explicitly")

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get(username) if _check(service, username) else None

    def set_password(self, service: str, username: str, password: str) -> None:
        if not _check(service, username):
            raise PasswordSetError(f"Kairan stores only service {SERVICE!r} with plain names")
        self.store[username] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop(username, None) is None:
            raise PasswordDeleteError(username)
