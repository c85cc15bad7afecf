"""Configuration history (S8, S15): every change of kairan.toml is an audited
"security-measure change" (安全管理措置の変更) with the keys that changed and their old and new
values. The configuration holds no secrets (those are credentials, never in the file), so the
values can be recorded; should a key ever name a secret, only the fact of its change is kept.

The store remembers the last configuration it saw (`settings["config.snapshot"]`). Whenever the
store is opened (kairand start, any kairanctl command) the current configuration is compared to
it; a difference is appended to the audit chain as `config.change` by `system:config` (who edited
the file is not knowable from here; the entry says when the change took effect). The very first
observation records the baseline without an audit entry.
"""

from __future__ import annotations

import time
from typing import Any

from kairand.config import Config
from kairand.evidence.audit import AuditEntry
from kairand.store import audit, settings
from kairand.store.database import Connection, transaction

SNAPSHOT_KEY = "config.snapshot"
SECRET_WORDS = ("secret", "token", "password")


def flatten(config: Config) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in config.model_dump(mode="json").items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if any(word in key for word in SECRET_WORDS):
                changed[key] = "changed (value not recorded)"
            else:
                changed[key] = {"old": old.get(key), "new": new.get(key)}
    return changed


def observe(conn: Connection, config: Config, now: float | None = None) -> dict[str, Any]:
    """Compare CONFIG with the last one the store saw; audit and remember a change."""
    current = flatten(config)
    with transaction(conn):
        previous = settings.get(conn, SNAPSHOT_KEY)
        if previous == current:
            return {}
        changed = diff(previous, current) if isinstance(previous, dict) else {}
        settings.put(conn, SNAPSHOT_KEY, current)
        if changed:
            audit.append(
                conn,
                AuditEntry(
                    at_ms=int((now or time.time()) * 1000),
                    actor="system:config",
                    action="config.change",
                    outcome="ok",
                    target=", ".join(sorted(changed)),
                    detail={"changed": changed},
                ),
            )
    return changed


def history(conn: Connection, start_ms: int, end_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """(time, changed keys) of every configuration change in the period."""
    return [
        (e.entry.at_ms, e.entry.detail.get("changed", {}))
        for e in audit.iter_entries(conn)
        if e.entry.action == "config.change" and start_ms <= e.entry.at_ms < end_ms
    ]
