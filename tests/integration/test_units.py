"""The systemd units: exposure scores, credentials, users, and argv that the programs accept
(N7, S6, K4, S9)."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kairan_tui import main as tui_main
from kairand import ctl
from kairand.keys import secrets

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SERVICES = [
    "kairand.service",
    "kairan-tunnel.service",
    "kairan-backup.service",
    "kairan-kiosk@.service",
    "kairan-board@.service",
]
MAX_SCORE = 2.0


def score(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out[-2000:]
    return float(match.group(1))


def directives(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of the unit (all sections), multi-valued."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_exposure_score_at_most_two(name: str) -> None:
    """N7, S6: `systemd-analyze security --offline=yes` rates every service ≤ 2.0."""
    value = score(UNITS / name)
    print(f"BENCH unit_exposure {name} {value}")
    assert value <= MAX_SCORE


def verify_problems(*units: Path) -> list[str]:
    """`systemd-analyze verify` findings, minus the one expected off the appliance: the
    ExecStart programs under /opt/kairan do not exist on the test machine."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line and "is not executable" not in line]


def test_units_have_no_unknown_or_misplaced_directives(tmp_path: Path) -> None:
    """N7: systemd accepts every directive of every unit in its section (a misplaced key is
    silently ignored by systemd, so it would weaken the unit without anyone noticing)."""
    units = [UNITS / n for n in (*SERVICES, "kairan-backup.timer")]
    assert verify_problems(*units) == []
    typo = tmp_path / "typo.service"
    typo.write_text("[Service]\nExecStart=/bin/true\nStartLimitIntervalSec=0\n")
    assert verify_problems(typo)  # the check can fail


def test_score_parser_sees_an_unhardened_unit(tmp_path: Path) -> None:
    """The score check can fail: a bare unit scores far above the limit."""
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert score(bare) > 9.0


def test_daemon_unit_loads_every_secret_and_pins_the_credentials_keyring() -> None:
    """K4: each secret kairand reads is a sealed credential; the keyring backend is pinned to
    systemd credentials; the unit is Type=notify with a watchdog and never PrivateUsers."""
    d = directives(UNITS / "kairand.service")
    loaded = {v.split(":", 1)[0] for v in d["LoadCredentialEncrypted"]}
    assert loaded == set(secrets.ALL) | set(secrets.OPTIONAL)
    for value in d["LoadCredentialEncrypted"]:
        name, path = value.split(":", 1)
        assert path == f"/etc/credstore.encrypted/kairan/{name}"
    assert "PYTHON_KEYRING_BACKEND=kairand.keys.backends.CredentialsKeyring" in d["Environment"]
    from kairand.keys.backends import CredentialsKeyring  # the pinned class exists

    assert CredentialsKeyring.__name__ == "CredentialsKeyring"
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert "PrivateUsers" not in d and "DynamicUser" not in d
    assert d["User"] == ["kairan"] and d["StateDirectory"] == ["kairan"]


def test_backup_unit_argv_is_accepted_by_kairanctl() -> None:
    """S9: the timer's service runs a command line kairanctl really accepts; the timer is daily
    and catches up missed runs."""
    d = directives(UNITS / "kairan-backup.service")
    argv = shlex.split(d["ExecStart"][0])
    assert argv[0] == "/opt/kairan/bin/kairanctl"
    args = ctl.build_parser().parse_args(argv[1:])
    assert (args.command, args.backup_command) == ("backup", "create")
    # Count and lifetime come from [backup] in kairan.toml (the defaults are 14 and 14 days).
    assert args.keep is None and str(args.recipient) == "/etc/kairan/recovery.pub"
    assert "-/mnt/kairan-backup" in d["ReadWritePaths"]
    timer = configparser.ConfigParser()
    timer.read(UNITS / "kairan-backup.timer")
    assert timer["Timer"]["OnCalendar"].startswith("*-*-* ")
    assert timer["Timer"]["Persistent"] == "true"
    assert d["PrivateNetwork"] == ["yes"]


def test_tunnel_unit_runs_the_shared_script_as_its_own_user() -> None:
    """N7: the tunnel runs the one shared ssh command line, restarts forever, as kairan-tunnel,
    with its key as a sealed credential."""
    d = directives(UNITS / "kairan-tunnel.service")
    assert d["ExecStart"] == ["/opt/kairan/libexec/kairan-tunnel"]
    assert d["Restart"] == ["always"] and d["StartLimitIntervalSec"] == ["0"]
    assert d["User"] == ["kairan-tunnel"]
    assert d["LoadCredentialEncrypted"] == [
        "tunnel-ssh-key:/etc/credstore.encrypted/kairan/tunnel-ssh-key"
    ]
    script = (REPO / "provisioning" / "kairan-tunnel").read_text()
    for option in (
        "ExitOnForwardFailure=yes",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
    ):
        assert option in script


def test_sysusers_and_tmpfiles_parse(tmp_path: Path) -> None:
    """N7: the sysusers file creates the two users and the staff group (into a scratch root),
    and tmpfiles creates the private folders with their modes."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(UNITS / "kairan.sysusers")],
        check=True,
        capture_output=True,
    )
    passwd = (root / "etc" / "passwd").read_text()
    group = (root / "etc" / "group").read_text()
    assert re.search(r"^kairan:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^kairan-tunnel:x:\d+:", passwd, re.M)
    assert re.search(r"^kairan:x:\d+:kairan-tunnel$", group, re.M)
    assert re.search(r"^kairan-staff:x:\d+:kairan(,|$)", group, re.M)
    subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(UNITS / "kairan.tmpfiles")],
        check=True,
        capture_output=True,
    )
    for device in ("kairan-kiosk", "kairan-board"):  # the window's devices
        assert re.search(rf"^{device}:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
        assert re.search(rf"^kairan-staff:x:\d+:.*\b{device}\b", group, re.M)
    assert (root / "var/lib/kairan").stat().st_mode & 0o777 == 0o700
    assert (root / "etc/credstore.encrypted/kairan").stat().st_mode & 0o777 == 0o700


@pytest.mark.req("W2")
@pytest.mark.parametrize("device", ["kiosk", "board"])
def test_kiosk_and_board_units_run_their_program_as_their_own_user(device: str) -> None:
    """The kiosk and the board run full screen on a console (cage + foot) as their
    own account, reaching only the staff API socket; the kairan command line is one the
    program accepts; the kiosk gets a private copy of kairan.toml for its printer settings."""
    d = directives(UNITS / f"kairan-{device}@.service")
    argv = shlex.split(d["ExecStart"][0])
    assert argv[:3] == ["/usr/bin/cage", "-s", "--"] and argv[3] == "/usr/bin/foot"
    program = argv.index("/opt/kairan/bin/kairan")
    args = tui_main.build_parser().parse_args(argv[program + 1 :])
    assert args.mode == device and str(args.socket) == "/run/kairan/api.sock"
    assert d["User"] == [f"kairan-{device}"] and d["SupplementaryGroups"] == ["kairan-staff"]
    assert d["TTYPath"] == ["/dev/%I"] and d["Restart"] == ["always"]
    assert d["PAMName"] == ["login"] and d["Conflicts"] == ["getty@%i.service"]
    if device == "kiosk":
        assert d["LoadCredential"] == ["kairan.toml:/etc/kairan/kairan.toml"]
        assert str(args.config) == "%d/kairan.toml"
    else:
        assert "LoadCredential" not in d
        assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_NETLINK"]  # no network at all
