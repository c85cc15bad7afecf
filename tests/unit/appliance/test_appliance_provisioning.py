"""Provisioning files: shellcheck, nftables syntax, sshd drop-ins, config template (N5, N7, S6)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kairan_tui import main as tui_main
from kairand.config import load_config

REPO = Path(__file__).resolve().parents[3]
PROV = REPO / "provisioning"


def test_scripts_pass_shellcheck() -> None:
    """N7: the installer and the tunnel script pass shellcheck (all severities)."""
    result = subprocess.run(
        [
            "shellcheck",
            "--shell=bash",
            str(PROV / "install.sh"),
            str(PROV / "kairan-tunnel"),
            str(PROV / "kairanctl-with-credentials"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def render_nft(**over: str) -> str:
    values = {
        "@RELAY_V4_ELEMENTS@": "elements = { 203.0.113.10 }",
        "@RELAY_V6_ELEMENTS@": "",
        "@STAFF_V4_ELEMENTS@": "",
        "@STAFF_V6_ELEMENTS@": "elements = { 2001:db8:1::/64 }",
        "@DNS_UIDS@": "0, 991, 992",
        "@NTP_UIDS@": "0",
        "@KAIRAN_UID@": "991",
        "@TUNNEL_UID@": "992",
        "@APT_UIDS@": "42",
        "@RELAY_SSH_PORT@": "22",
        "@MAIL_V4_ELEMENTS@": "elements = { 198.51.100.25 }",
        "@MAIL_V6_ELEMENTS@": "",
        "@MAIL_PORTS@": "465,587,993",
        "@PRINTER_V4_ELEMENTS@": "elements = { 192.168.10.50 }",
        "@PRINTER_V6_ELEMENTS@": "",
        "@PRINTER_PORT@": "9100",
        "@KIOSK_UID@": "993",
        **over,
    }
    text = (PROV / "nftables" / "kairan.nft.in").read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    return subprocess.run(
        ["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )


def test_nftables_ruleset_is_accepted_and_default_drop(tmp_path: Path) -> None:
    """N7, S6: `nft -c` accepts the rendered ruleset; input, forward and output drop by default;
    new outbound 443 only for the two service uids. A broken variant is rejected (the check
    can fail)."""
    text = render_nft()
    result = nft_check(text, tmp_path)
    assert result.returncode == 0, result.stderr
    for chain in ("input", "forward", "output"):
        assert f"type filter hook {chain} priority filter; policy drop;" in text
    assert "meta skuid { 991, 992 } tcp dport 443 ct state new accept" in text
    assert "meta skuid 993 ip daddr @printer_v4 tcp dport 9100 ct state new accept" in text
    rules = "".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for name in ("@relay_v", "@staff_v", "@mail_v", "@printer_v"):
        rules = rules.replace(name, "")
    assert "@" not in rules  # every placeholder filled
    assert nft_check(render_nft(**{"@KAIRAN_UID@": "kairan-no-such-user"}), tmp_path).returncode
    assert nft_check(text.replace("policy drop;", "policy maybe;", 1), tmp_path).returncode


def ensure_privsep_dir() -> None:
    """sshd refuses to start without /run/sshd (systemd's tmpfiles makes it on a booted box)."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def sshd_effective(config_text: str, tmp_path: Path, spec: str) -> dict[str, str]:
    """`sshd -T` for a connection described by SPEC, with CONFIG_TEXT as the whole config."""
    ensure_privsep_dir()
    host_key = tmp_path / "host_key"
    if not host_key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
        )
    conf = tmp_path / "sshd_config"
    conf.write_text(f"HostKey {host_key}\nUsePAM no\n" + config_text)
    result = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(conf), "-C", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, value)
    return out


def test_staff_dropin_forces_the_tui_and_disables_forwarding(tmp_path: Path) -> None:
    """N5, K3: a member of kairan-staff gets only the TUI, with every kind of forwarding off.
    (The group is mapped to root's group here so sshd can evaluate the Match.)"""
    dropin = (PROV / "sshd" / "kairan-staff.conf").read_text()
    staff = sshd_effective(
        dropin.replace("Match Group kairan-staff", "Match Group root"),
        tmp_path,
        "user=root,host=pc,addr=192.168.10.5",
    )
    assert staff["forcecommand"] == "/opt/kairan/bin/kairan"
    assert staff["disableforwarding"] == "yes"
    assert staff["allowtcpforwarding"] == "no"
    assert staff["allowstreamlocalforwarding"] == "no"
    assert staff["permittunnel"] == "no"
    other = sshd_effective(dropin, tmp_path, "user=root,host=pc,addr=192.168.10.5")
    assert "forcecommand" not in other or other["forcecommand"] == "none"


def test_relay_match_block_allows_only_remote_forwarding(tmp_path: Path) -> None:
    """N7: on the relay the tunnel account may only request remote forwards: no tty, no local
    forwards, no agent/X11/streamlocal, public-key only."""
    block = (PROV / "relay" / "sshd-kairan-relay.conf").read_text()
    relay = sshd_effective(block, tmp_path, "user=kairan-relay,host=office,addr=198.51.100.7")
    assert relay["allowtcpforwarding"] == "remote"
    assert relay["permittty"] == "no"
    assert relay["permitopen"] == "none"
    assert relay["allowstreamlocalforwarding"] == "no"
    assert relay["gatewayports"] == "no"
    assert relay["authenticationmethods"] == "publickey"
    assert relay["authorizedkeysfile"] == "/etc/ssh/kairan-relay/authorized_keys"
    template = (PROV / "relay" / "authorized_keys.template").read_text()
    assert (
        'restrict,port-forwarding,permitlisten="127.0.0.1:@LISTEN_PORT@" @PUBLIC_KEY@' in template
    )


@pytest.mark.parametrize("bot", ["", "U" + "0" * 32])
def test_config_template_validates(tmp_path: Path, bot: str) -> None:
    """N7: the appliance config template (as install.sh renders it) passes kairand's own
    validation, serves TLS on the unix socket and opens no TCP listener."""
    text = (PROV / "kairan.toml.template").read_text().replace("@BOT_USER_ID@", bot)
    path = tmp_path / "kairan.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.webhook.tcp_host == "" and config.webhook.tls_cert is not None
    assert config.webhook.socket == Path("/run/kairan/webhook.sock")
    assert config.api.socket_group == "kairan-staff"
    assert config.webhook.bot_user_id == bot


@pytest.mark.req("W2")
def test_kiosk_and_board_accounts_get_their_one_program_over_ssh(tmp_path: Path) -> None:
    """The kiosk and board accounts (members of kairan-staff for the API socket) get
    `kairan kiosk` / `kairan board` over ssh, never the staff terminal, with forwarding off."""
    dropin = (PROV / "sshd" / "kairan-staff.conf").read_text()
    for user, program in (("kairan-kiosk", "kiosk"), ("kairan-board", "board")):
        # The account is root here (it must exist); it is also in the staff group (root's).
        mapped = dropin.replace(f"Match User {user}", "Match User root").replace(
            "Match Group kairan-staff", "Match Group root"
        )
        got = sshd_effective(mapped, tmp_path, "user=root,host=pc,addr=192.168.10.5")
        assert (
            got["forcecommand"] == f"/opt/kairan/bin/kairan {program} --socket /run/kairan/api.sock"
        )
        assert got["disableforwarding"] == "yes" and got["permittunnel"] == "no"
        argv = got["forcecommand"].split()
        args = tui_main.build_parser().parse_args(argv[1:])
        assert args.mode == program and str(args.socket) == "/run/kairan/api.sock"
