"""Who is behind a kairanctl run (S8): the person, not the service account.

On the appliance kairanctl often runs as `kairan` (through kairanctl-with-credentials /
systemd-run) or as root through sudo; the audit must name the administrator who logged in.
Order: SUDO_USER (sudo keeps it), then the login uid of the session (/proc/self/loginuid,
inherited across su, sudo and systemd-run --pipe from a login session), then the process's own
user. (Issue 12's kairand.ctl context supersedes this helper when it lands.)
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

UNSET_LOGINUID = 4294967295


def login_name(loginuid_path: Path = Path("/proc/self/loginuid")) -> str:
    name = os.environ.get("SUDO_USER", "").strip()
    if name and name != "root":
        return name
    try:
        uid = int(loginuid_path.read_text().strip())
        if uid != UNSET_LOGINUID:
            return pwd.getpwuid(uid).pw_name
    except (OSError, ValueError, KeyError):
        pass
    return name or pwd.getpwuid(os.getuid()).pw_name


def kairanctl_actor() -> str:
    return f"kairanctl:{login_name()}"
