"""Identity from the OS, for real (N5, S7, S8): a child process running under another uid
connects to the API socket and is refused, because SO_PEERCRED names a uid that is not on the
staff roster; the refusal is in the audit log. The test process (root, on the roster as the
developer) is served on the same socket. CI runs as root, which setuid needs."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import stat
import sys
from pathlib import Path

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.config import Config
from kairand.store import audit as audit_store
from kairand.store.database import Store

SYSTEM_PYTHON = "/usr/bin/python3"  # readable by any uid, unlike a venv under /root or /work
OTHER_UID = 65534  # nobody on Debian; any uid that is not on the roster would do

# Runs as OTHER_UID with only the standard library: a raw HTTP/1.1 request over the socket.
CHILD = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: kairan\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
status = int(head.split(b" ")[1])
print(json.dumps({"uid": os.getuid(), "status": status, "body": json.loads(body)}))
"""


def public_socket_config(config: Config, folder: Path) -> Config:
    # As on the appliance: socket 0660 owned by the staff group (here OTHER_UID's own group,
    # which the child holds), in a folder the child may traverse.
    folder.mkdir(mode=0o755)
    for parent in (folder, folder.parent):
        parent.chmod(0o755)
    api = config.api.model_copy(
        update={
            "socket": folder / "api.sock",
            "socket_mode": 0o660,
            "socket_group": grp.getgrgid(OTHER_UID).gr_name,
        }
    )
    return config.model_copy(update={"api": api})


async def test_other_uid_is_refused_and_audited(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """N5, S7, S8: a real process under uid 65534 (in the socket's group, so it may connect to the
    0660 socket) gets 403 forbidden (not_on_roster); the audit
    log holds the denied call with that uid; root (on the roster) gets its /v1/me."""
    assert os.geteuid() == 0, "this test needs root (as in CI) to start a child under another uid"
    cfg = public_socket_config(config, short_tmp / "public")
    python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
    async with serve(cfg, store):
        info = cfg.api.socket.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == OTHER_UID
        proc = await asyncio.create_subprocess_exec(
            python,
            "-I",
            "-S",
            "-c",
            CHILD,
            str(cfg.api.socket),
            user=OTHER_UID,
            group=OTHER_UID,
            extra_groups=[],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["uid"] == OTHER_UID
        assert result["status"] == 403
        assert result["body"]["type"] == "urn:kairan:problem:forbidden"
        assert result["body"]["code"] == "not_on_roster"

        entries = await store.read(audit_store.query, audit_store.AuditFilter(), 10)
        denied = [e for e in entries if e.entry.outcome == "denied"]
        assert len(denied) == 1
        assert denied[0].entry.actor == pwd.getpwuid(OTHER_UID).pw_name
        assert denied[0].entry.detail["uid"] == OTHER_UID
        assert denied[0].entry.action == "api.me"

        async with connect(cfg.api.socket) as client:
            me = await client.get("/v1/me")
        assert me.status == 200 and me.body["username"] == pwd.getpwuid(0).pw_name
