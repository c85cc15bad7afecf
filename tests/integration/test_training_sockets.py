"""Training sockets (item 13, config api.training_sockets): on such a socket the
daemon's own OS user acts as a trainee identity (研修 作成者 / 研修 承認者). Another OS user must
never become that identity: SO_PEERCRED names them, and they are served (or refused) as
themselves. A real child process under another uid, as in test_api_peercred (CI runs as root,
which setuid needs)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
import time
from pathlib import Path

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.api.identity import training_resolver
from kairand.config import Config
from kairand.store import audit as audit_store
from kairand.store import staff
from kairand.store.database import Store
from tests.integration.test_api_peercred import (
    CHILD,
    OTHER_UID,
    SYSTEM_PYTHON,
    public_socket_config,
)

TRAINEE = "kenshu_sakusei"


async def _me_as_other_uid(socket: Path) -> dict:
    python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
    proc = await asyncio.create_subprocess_exec(
        python,
        "-I",
        "-S",
        "-c",
        CHILD,
        str(socket),
        user=OTHER_UID,
        group=OTHER_UID,
        extra_groups=[],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    result: dict = json.loads(out)
    assert result["uid"] == OTHER_UID
    return result


async def test_another_os_user_never_acts_as_the_trainee(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """N5, S7, S8: on a training socket the daemon's own user is 研修 作成者; a process of
    another OS user (allowed to connect by the socket's group) is not: off the roster it gets
    403 not_on_roster, audited under its own name; on the roster it is served as itself."""
    assert os.geteuid() == 0, "this test needs root (as in CI) to start a child under another uid"
    cfg = public_socket_config(config, short_tmp / "public")
    socket = cfg.api.socket.with_name("kenshu.sock")
    await store.write(staff.upsert, staff.StaffRecord(TRAINEE, "研修 作成者", ("author",)), 1)
    async with serve(cfg, store, None, training_resolver(TRAINEE), path=socket):
        async with connect(socket) as client:
            me = await client.get("/v1/me")
        assert me.status == 200 and me.body["username"] == TRAINEE

        refused = await _me_as_other_uid(socket)
        assert refused["status"] == 403
        assert refused["body"]["code"] == "not_on_roster"
        entries = await store.read(audit_store.query, audit_store.AuditFilter(), 10)
        denied = [e.entry for e in entries if e.entry.outcome == "denied"]
        other = pwd.getpwuid(OTHER_UID).pw_name
        assert [(d.actor, d.detail["uid"]) for d in denied] == [(other, OTHER_UID)]

        await store.write(
            staff.upsert, staff.StaffRecord(other, "別の職員", ("approver",)), int(time.time())
        )
        served = await _me_as_other_uid(socket)
        assert served["status"] == 200
        assert served["body"]["username"] == other and served["body"]["roles"] == ["approver"]
