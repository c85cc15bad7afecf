"""Facts about the host for doctor and the handling report (S23, S18): when OS packages were
last upgraded, which Debian security updates are pending, and which backup generations exist
where. Read-only; each answers "unknown, because ..." rather than guessing."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import subprocess
from pathlib import Path

from kairand.backup.service import NAME_RE
from kairand.config import Config

DPKG_LOGS = (Path("/var/log/dpkg.log"), Path("/var/log/dpkg.log.1"))
_UPGRADE = re.compile(rb"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (upgrade|install) ")


def last_package_upgrade(logs: tuple[Path, ...] = DPKG_LOGS) -> dt.datetime | None:
    """The newest `upgrade`/`install` in dpkg's log (local time of the box), or None."""
    newest: bytes | None = None
    for path in logs:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for line in data.splitlines():
            match = _UPGRADE.match(line)
            if match and (newest is None or match.group(1) > newest):
                newest = match.group(1)
    if newest is None:
        return None
    return dt.datetime.strptime(newest.decode(), "%Y-%m-%d %H:%M:%S").astimezone()


def pending_security_updates(timeout: float = 60.0) -> tuple[int | None, str]:
    """(count, note): packages `apt-get -s upgrade` would take from a security suite, from the
    package lists as they are (no download). None when apt cannot tell."""
    try:
        run = subprocess.run(
            ["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"apt-get を実行できませんでした（{type(exc).__name__}）"
    if run.returncode != 0:
        return None, "apt-get が失敗しました（" + (run.stderr.strip().splitlines() or [""])[
            -1
        ] + "）"
    count = sum(
        1 for line in run.stdout.splitlines() if line.startswith("Inst ") and "security" in line
    )
    return count, "パッケージ一覧の最終更新時点の情報です"


def backup_generations(config: Config) -> dict[str, list[str]]:
    """Backup generation file names per place (local folder, mirror), oldest first."""
    places = [config.backup.directory]
    if config.backup.mirror is not None:
        places.append(config.backup.mirror)
    found: dict[str, list[str]] = {}
    for place in places:
        try:
            names = sorted(p.name for p in place.iterdir() if NAME_RE.match(p.name))
        except OSError:
            names = []
        found[str(place)] = names
    return found
