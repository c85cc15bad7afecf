"""What every `kairanctl` command shares: the configuration, the keyring, the store, the
operator's real identity, the audit record of an action, usage errors, periods and the owner-only
output file. Command modules take a `Context` and never repeat this setup.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import pwd
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from kairand.config import Config, load_config
from kairand.errors import UsageError
from kairand.evidence.audit import AuditEntry
from kairand.reports.common import Period, parse_period
from kairand.store import audit as audit_store
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, Store

__all__ = ["Context", "Operator", "Subparsers", "UsageError", "real_operator"]

LOGINUID = Path("/proc/self/loginuid")
UNSET_LOGINUID = 4294967295  # (uid_t)-1: no login session (a service, a container, early boot)


@dataclass(frozen=True)
class Operator:
    """The human behind a kairanctl run, not the account it runs as (`sudo -u kairan` must
    still name the administrator who typed it)."""

    user: str
    uid: int | None
    source: str  # "loginuid" | "sudo" | "process": where the identity came from

    @property
    def actor(self) -> str:
        """The audit log's actor for this person's kairanctl actions."""
        return f"kairanctl:{self.user}"


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def real_operator(environ: Mapping[str, str] | None = None, loginuid: Path = LOGINUID) -> Operator:
    """The login uid (set by the kernel at login, kept across sudo and su, not changeable by
    the user) names the person when there is one; else SUDO_USER (set by sudo); else the
    account running the process."""
    env = os.environ if environ is None else environ
    try:
        uid = int((loginuid or LOGINUID).read_text().strip())
    except (OSError, ValueError):
        uid = UNSET_LOGINUID
    if uid != UNSET_LOGINUID:
        name = _user_name(uid)
        if name is not None:
            return Operator(name, uid, "loginuid")
    sudo_user = env.get("SUDO_USER")
    if sudo_user:
        sudo_uid = env.get("SUDO_UID", "")
        return Operator(sudo_user, int(sudo_uid) if sudo_uid.isdigit() else None, "sudo")
    return Operator(getpass.getuser(), os.getuid(), "process")


@dataclass
class Context:
    """One kairanctl run: built from the parsed command line, opens things on first use."""

    config_path: Path
    args: argparse.Namespace = field(default_factory=argparse.Namespace)
    _config: Config | None = None
    _keyring_selected: bool = False
    _operator: Operator | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(config_path=args.config, args=args)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def keyring(self) -> Config:
        """The configuration, with its keyring selected (secrets can now be read)."""
        if not self._keyring_selected:
            select_keyring(self.config)
            self._keyring_selected = True
        return self.config

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """The store, opened (and migrated) with the keyring's key, closed afterwards."""
        store = open_store(self.keyring())
        try:
            yield store
        finally:
            store.close()

    @property
    def operator(self) -> Operator:
        if self._operator is None:
            self._operator = real_operator()
        return self._operator

    @property
    def actor(self) -> str:
        return self.operator.actor

    def audit(
        self,
        conn: Connection,
        action: str,
        detail: dict[str, Any] | None = None,
        outcome: str = "ok",
        target: str = "",
    ) -> None:
        """Append one entry for the operator's action (inside the caller's write transaction)."""
        audit_store.append(
            conn,
            AuditEntry(
                at_ms=int(time.time() * 1000),
                actor=self.actor,
                action=action,
                outcome=outcome,
                target=target,
                detail=detail or {},
            ),
        )

    @staticmethod
    def period(first: str | None, last: str | None) -> Period:
        if first is None or last is None:
            raise UsageError(
                "--from and --to are both needed", "e.g. --from 2026-04-01 --to 2027-03-31"
            )
        return parse_period(first, last)

    @staticmethod
    def write_output(path: Path | None, text: str, *, newline: str | None = None) -> None:
        """TEXT to PATH (owner-only: an export may be personal, and even statistics are not
        for everyone), or to stdout when PATH is None."""
        if path is None:
            sys.stdout.write(text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8", newline=newline or "") as handle:
            handle.write(text)
        print(f"出力しました / written: {path}", file=sys.stderr)


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What a command group's `register(subparsers)` receives."""
