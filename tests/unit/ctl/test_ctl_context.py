"""kairanctl's shared context: the operator's real identity (S8: an action is attributed to the
person who typed it, not to the service account it runs as), and the command-group registry."""

from __future__ import annotations

import getpass
import os
import pkgutil
import pwd
from pathlib import Path

import pytest

from kairand import ctl
from kairand.ctl import context
from kairand.ctl.context import UNSET_LOGINUID, real_operator
from kairand.errors import ExitCode
from kairand.store import audit as audit_store
from kairand.store.database import Store

ROOT = pwd.getpwuid(0).pw_name
NO_SUCH_UID = 3_999_999  # a uid with no passwd entry


def _loginuid(tmp_path: Path, value: int | str) -> Path:
    path = tmp_path / "loginuid"
    path.write_text(str(value))
    return path


@pytest.mark.req("S8")
def test_the_login_uid_names_the_person_even_under_sudo(tmp_path: Path) -> None:
    """The kernel's login uid survives sudo/su and cannot be set from the environment, so it
    wins over SUDO_USER."""
    found = real_operator({"SUDO_USER": "someone-else"}, _loginuid(tmp_path, 0))
    assert (found.user, found.uid, found.source) == (ROOT, 0, "loginuid")
    assert found.actor == f"kairanctl:{ROOT}"


@pytest.mark.req("S8")
def test_without_a_login_session_sudo_user_names_the_person(tmp_path: Path) -> None:
    found = real_operator(
        {"SUDO_USER": "tanaka", "SUDO_UID": "1001"}, _loginuid(tmp_path, UNSET_LOGINUID)
    )
    assert (found.user, found.uid, found.source) == ("tanaka", 1001, "sudo")
    unknown_uid = real_operator({"SUDO_USER": "tanaka"}, _loginuid(tmp_path, NO_SUCH_UID))
    assert (unknown_uid.user, unknown_uid.uid, unknown_uid.source) == ("tanaka", None, "sudo")


def test_otherwise_the_process_account(tmp_path: Path) -> None:
    for loginuid in (tmp_path / "absent", _loginuid(tmp_path, "garbage")):
        found = real_operator({}, loginuid)
        assert (found.user, found.uid, found.source) == (getpass.getuser(), os.getuid(), "process")


@pytest.mark.req("S8")
def test_kairanctl_records_the_real_operator_in_the_audit_log(
    dev_setup: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sudo -u kairan kairanctl staff add ...` run by tanaka is tanaka's action in the log."""
    monkeypatch.setattr(context, "LOGINUID", _loginuid(tmp_path, UNSET_LOGINUID))
    monkeypatch.setenv("SUDO_USER", "tanaka")
    code = ctl.main(
        ["--config", str(dev_setup), "staff", "add", "suzuki", "--name", "鈴木", "--role", "author"]
    )
    assert code == ExitCode.OK
    entries = store.read_sync(lambda c: [s.entry for s in audit_store.iter_entries(c)])
    put = [e for e in entries if e.action == "staff.put" and e.target == "suzuki"]
    assert [e.actor for e in put] == ["kairanctl:tanaka"]


def test_every_command_group_module_is_registered() -> None:
    """A new command group is one module in kairand/ctl/ plus its name in GROUPS: a module
    left out of GROUPS (its commands silently missing) fails here."""
    modules = {m.name for m in pkgutil.iter_modules(ctl.__path__)} - {"context", "__main__"}
    assert modules == set(ctl.GROUPS)
    parser = ctl.build_parser()
    for command in ("init --dev d", "staff list", "roster", "audit verify", "backup list"):
        assert parser.parse_args(command.split()).func is not None
