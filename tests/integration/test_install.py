"""provisioning/install.sh into a scratch root: every file, owner and mode; sealed secrets;
idempotence; refusal without systemd-creds (N7, S6, K4, S12).

What this covers honestly: everything install.sh does except creating the venv under
/opt/kairan (run with --skip-venv: a pip install of every dependency takes minutes) and the
activation steps that need a running systemd (enable/start, sshd reload), which install.sh
performs only when installing into / on a booted system.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kairand.config import load_config
from kairand.store.database import open_connection
from kairand.store.migrations import current_version, latest_version

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "provisioning" / "install.sh"
LINE_SECRET = "0123456789abcdef0123456789abcdef"
LINE_TOKEN = "token-" + "x" * 100
MAIL_IMAP = "imap-pass-" + "y" * 20


def ids(root: Path, table: str) -> dict[str, int]:
    out = {}
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        out[fields[0]] = int(fields[2])
    return out


def run_install(root: Path, *extra: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    env.pop("SYSTEMD_CREDENTIAL_SECRET", None)
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--skip-venv", *extra],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "secret": tmp_path / "secret.txt",
        "token": tmp_path / "token.txt",
        "known_hosts": tmp_path / "known_hosts",
        "pub": tmp_path / "recovery.pub",
    }
    files["secret"].write_text(LINE_SECRET + "\n")
    files["token"].write_text(LINE_TOKEN + "\n")
    files["mail_imap"] = tmp_path / "imap-password.txt"
    files["mail_imap"].write_text(MAIL_IMAP + "\n")
    files["known_hosts"].write_text("relay.example.jp ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n")
    from kairand.backup.envelope import generate_recovery_key

    generate_recovery_key(tmp_path / "recovery.key", files["pub"])
    return files


def full_args(files: dict[str, Path]) -> list[str]:
    return [
        "--relay-host", "relay.example.jp", "--relay-addr", "203.0.113.10",
        "--relay-addr", "2001:db8::10", "--relay-listen-port", "18443",
        "--relay-known-hosts", str(files["known_hosts"]), "--recovery-pub", str(files["pub"]),
        "--line-channel-secret-file", str(files["secret"]),
        "--line-channel-access-token-file", str(files["token"]),
        "--mail-imap-password-file", str(files["mail_imap"]),
        "--staff-net", "192.168.10.0/24", "--bot-user-id", "U" + "a" * 32,
        "--kiosk-printer", "192.168.10.50",
        # --skip-venv: this test's interpreter (which has Kairan) creates the store.
        "--python", sys.executable,
    ]  # fmt: skip


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """path -> (mode, uid, gid, sha256 or 'dir') for everything in ROOT."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest)
    return out


def decrypt(root: Path, name: str, folder: str = "etc/credstore.encrypted/kairan") -> str:
    env = {
        **os.environ,
        "SYSTEMD_CREDENTIAL_SECRET": str(root / "var/lib/systemd/credential.secret"),
    }
    return subprocess.run(
        ["systemd-creds", "decrypt", f"--name={name}", str(root / folder / name), "-"],
        capture_output=True,
        check=True,
        env=env,
    ).stdout.decode()


def test_scratch_root_install_every_file_owner_and_mode(tmp_path: Path, inputs) -> None:
    """N7, S6, K4, S12: install.sh lays out exactly the expected files with the expected owners
    and modes; the secrets are sealed (not plaintext on disk) and decrypt to usable values; the
    config validates; the nftables ruleset is accepted by `nft -c`."""
    root = tmp_path / "root"
    root.mkdir()
    result = run_install(root, *full_args(inputs))
    assert result.returncode == 0, result.stderr + result.stdout
    users, groups = ids(root, "passwd"), ids(root, "group")
    k, t = users["kairan"], users["kairan-tunnel"]
    gk, gt = groups["kairan"], groups["kairan-tunnel"]
    assert "kairan-staff" in groups
    assert {"kairan-kiosk", "kairan-board"} <= users.keys()  # the window's devices
    expected = {
        # path: (mode, uid, gid)
        "etc/kairan": (0o750, 0, gk),
        "etc/kairan/kairan.toml": (0o640, 0, gk),
        "etc/kairan/tls": (0o750, 0, gk),
        "etc/kairan/tunnel.env": (0o640, 0, gt),
        "etc/kairan/relay_known_hosts": (0o644, 0, 0),
        "etc/kairan/recovery.pub": (0o644, 0, 0),
        "etc/kairan/tunnel-ssh-key.pub": (0o644, 0, 0),
        "etc/kairan/install-options": (0o644, 0, 0),
        "etc/kairan/nftables": (0o755, 0, 0),
        "etc/kairan/nftables/kairan.nft": (0o644, 0, 0),
        "etc/nftables.conf": (0o755, 0, 0),
        "etc/apt/apt.conf.d/20auto-upgrades": (0o644, 0, 0),
        "etc/apt/apt.conf.d/52kairan-unattended-upgrades": (0o644, 0, 0),
        "etc/credstore.encrypted": (0o700, 0, 0),
        "etc/credstore.encrypted/kairan": (0o700, 0, 0),
        "etc/ssh/sshd_config.d/kairan-staff.conf": (0o644, 0, 0),
        "etc/sysusers.d/kairan.conf": (0o644, 0, 0),
        "etc/tmpfiles.d/kairan.conf": (0o644, 0, 0),
        "var/lib/kairan": (0o700, k, gk),
        "var/backups/kairan": (0o700, k, gk),
        "var/lib/kairan/kairan.db": (0o600, k, gk),
        "opt/kairan/libexec/kairan-tunnel": (0o755, 0, 0),
        "opt/kairan/libexec/kairanctl-with-credentials": (0o755, 0, 0),
        "opt/kairan/share/doc/relay-README.md": (0o644, 0, 0),
    }
    for unit in (
        "kairand.service",
        "kairan-tunnel.service",
        "kairan-backup.service",
        "kairan-backup.timer",
        "kairan-kiosk@.service",
        "kairan-board@.service",
    ):
        expected[f"etc/systemd/system/{unit}"] = (0o644, 0, 0)
        assert (root / "etc/systemd/system" / unit).read_bytes() == (
            REPO / "systemd" / unit
        ).read_bytes()
    creds = (
        "db-key",
        "signing-key",
        "receipt-hmac-key",
        "line-channel-secret",
        "line-channel-access-token",
        "mail-smtp-password",
        "mail-imap-password",
        "tunnel-ssh-key",
    )
    for name in creds:
        expected[f"etc/credstore.encrypted/kairan/{name}"] = (0o600, 0, 0)
    for rel, (mode, uid, gid) in expected.items():
        st = (root / rel).lstat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid), rel
    # Every other file is one the test knows about (users database, the scratch host key, docs).
    known = {"etc/.pwd.lock", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"}
    docs = {
        f"opt/kairan/share/doc/{n}"
        for n in ("operations-manual.ja.md", "appliance.md", "threat-model.md")
    }
    files = {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}
    assert files - expected.keys() - known - docs == {"var/lib/systemd/credential.secret"}
    for rel in files & docs:
        assert stat.S_IMODE((root / rel).stat().st_mode) == 0o644
    # S23: daily unattended upgrades, Debian security suite only.
    origins = (root / "etc/apt/apt.conf.d/52kairan-unattended-upgrades").read_text()
    assert "codename=${distro_codename}-security" in origins and "Automatic-Reboot" in origins
    assert 'Unattended-Upgrade "1"' in (root / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    assert stat.S_IMODE((root / "var/lib/systemd/credential.secret").stat().st_mode) == 0o400
    # Nothing else that is sensitive was left behind (e.g. the plaintext tunnel key).
    stray = [
        p for p in root.rglob("*") if p.is_file() and "PRIVATE KEY" in p.read_text(errors="ignore")
    ]
    assert stray == []

    db_key = decrypt(root, "db-key")
    assert len(bytes.fromhex(db_key)) == 32
    assert db_key.encode() not in (root / "etc/credstore.encrypted/kairan/db-key").read_bytes()
    assert len(base64.b64decode(decrypt(root, "signing-key"))) == 32
    assert len(base64.b64decode(decrypt(root, "receipt-hmac-key"))) == 32
    assert decrypt(root, "line-channel-secret") == LINE_SECRET
    assert decrypt(root, "line-channel-access-token") == LINE_TOKEN
    # The mail channel's passwords: given -> sealed; not given -> an empty placeholder.
    assert decrypt(root, "mail-imap-password") == MAIL_IMAP
    assert decrypt(root, "mail-smtp-password") == ""
    tunnel_key = decrypt(root, "tunnel-ssh-key")
    assert "OPENSSH PRIVATE KEY" in tunnel_key
    pub_of_sealed = subprocess.run(
        ["ssh-keygen", "-y", "-f", "/dev/stdin"],
        input=tunnel_key,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[:2]
    assert (root / "etc/kairan/tunnel-ssh-key.pub").read_text().split()[:2] == pub_of_sealed
    assert 'permitlisten="127.0.0.1:18443"' in result.stdout

    # The empty store exists, opens with the sealed db-key and has the current schema.
    conn = open_connection(root / "var/lib/kairan/kairan.db", bytes.fromhex(db_key))
    try:
        assert current_version(conn) == latest_version()
    finally:
        conn.close()
    assert "created the empty store" in result.stdout

    config = load_config(root / "etc/kairan/kairan.toml")
    assert config.webhook.bot_user_id == "U" + "a" * 32
    assert config.webhook.tls_cert == Path("/etc/kairan/tls/webhook.crt")
    assert not config.webhook.tcp_host and not config.keyring.backend
    env = (root / "etc/kairan/tunnel.env").read_text()
    assert "KAIRAN_RELAY_HOST=relay.example.jp" in env and "KAIRAN_RELAY_LISTEN_PORT=18443" in env

    ruleset = (root / "etc/kairan/nftables/kairan.nft").read_text()
    assert "@" not in "".join(
        line for line in ruleset.splitlines() if not line.lstrip().startswith("#")
    ).replace("@relay_v", "").replace("@staff_v", "").replace("@mail_v", "").replace(
        "@printer_v", ""
    )
    assert f"meta skuid {{ {k}, {t} }} tcp dport 443" in ruleset
    assert "203.0.113.10" in ruleset and "2001:db8::10" in ruleset and "192.168.10.0/24" in ruleset
    # the kiosk user reaches its network printer, on the printer port only.
    kiosk = users["kairan-kiosk"]
    assert f"meta skuid {kiosk} ip daddr @printer_v4 tcp dport 9100 ct state new accept" in ruleset
    assert "elements = { 192.168.10.50 }" in ruleset
    check = subprocess.run(
        ["nft", "-c", "-f", str(root / "etc/kairan/nftables/kairan.nft")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_install_is_idempotent(tmp_path: Path, inputs) -> None:
    """N7: a second run with the same options changes no file, owner, mode or secret."""
    root = tmp_path / "root"
    root.mkdir()
    assert run_install(root, *full_args(inputs)).returncode == 0
    first = tree(root)
    again = run_install(root, *full_args(inputs))
    assert again.returncode == 0, again.stderr
    assert "sealed secret db-key" not in again.stdout
    second = tree(root)
    changed = {k for k in first.keys() | second.keys() if first.get(k) != second.get(k)}
    # The LINE credentials given again on the command line are re-sealed (new ciphertext,
    # same value): that is how an operator rotates them.
    assert changed <= {
        "etc/credstore.encrypted/kairan/line-channel-secret",
        "etc/credstore.encrypted/kairan/line-channel-access-token",
        "etc/credstore.encrypted/kairan/mail-imap-password",
    }
    assert decrypt(root, "line-channel-secret") == LINE_SECRET
    # And a bare re-run keeps everything, including the remembered relay and staff addresses.
    rerun = run_install(root)
    assert rerun.returncode == 0, rerun.stderr
    assert tree(root) == second


def path_without_systemd_creds(tmp_path: Path) -> str:
    """A PATH holding every program of this machine except systemd-creds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"):
        for entry in Path(folder).iterdir():
            if entry.name != "systemd-creds" and not (bin_dir / entry.name).exists():
                (bin_dir / entry.name).symlink_to(entry)
    assert shutil.which("systemd-creds", path=str(bin_dir)) is None
    return str(bin_dir)


def test_refuses_without_systemd_creds_unless_insecure_dev(tmp_path: Path, inputs) -> None:
    """K4: without systemd-creds install.sh stops before writing anything; with --insecure-dev
    it stores plain 0600 files and switches the units to LoadCredential= by drop-ins."""
    path = path_without_systemd_creds(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    refused = run_install(root, path=path)
    assert refused.returncode != 0
    assert "systemd-creds is required" in refused.stderr
    assert list(root.iterdir()) == []
    dev = run_install(
        root, "--insecure-dev", "--line-channel-secret-file", str(inputs["secret"]),
        "--python", sys.executable, path=path,
    )  # fmt: skip
    assert dev.returncode == 0, dev.stderr
    db_key = bytes.fromhex((root / "etc/credstore/kairan/db-key").read_text())
    open_connection(root / "var/lib/kairan/kairan.db", db_key).close()
    plain = root / "etc/credstore/kairan"
    assert stat.S_IMODE(plain.stat().st_mode) == 0o700
    assert (plain / "line-channel-secret").read_text() == LINE_SECRET
    assert stat.S_IMODE((plain / "db-key").stat().st_mode) == 0o600
    assert not (root / "etc/credstore.encrypted/kairan/db-key").exists()
    dropin = (root / "etc/systemd/system/kairand.service.d/insecure-dev.conf").read_text()
    assert "LoadCredentialEncrypted=\n" in dropin
    assert "LoadCredential=db-key:/etc/credstore/kairan/db-key" in dropin


def test_bad_options_are_refused(tmp_path: Path) -> None:
    """N7: typos and invalid values stop the installer with a message."""
    root = tmp_path / "root"
    root.mkdir()
    for args, message in (
        (["--relay-listen-port", "http"], "port number"),
        (["--bot-user-id", "someone"], "bot-user-id"),
        (["--frobnicate"], "unknown option"),
        (["--staff-net", "10.0.0.0/8 } accept; tcp dport 1-65535"], "not an IP"),
        (["--relay-host", "relay.example.jp\nKAIRAN_RELAY_USER=root"], "host name"),
    ):
        result = run_install(root, *args)
        assert result.returncode != 0 and message in result.stderr
    assert list(root.iterdir()) == []


def test_rebuilt_appliance_restores_a_backup(
    tmp_path: Path, inputs, dev_setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S9, K4: a box rebuilt with `install.sh --no-store` plus `kairanctl backup restore` gets
    the old store and the old db-key, re-sealed with systemd-creds for the new box: the sealed
    credential decrypts to the key that opens the restored store, which holds the old rows."""
    from kairand import ctl
    from kairand.backup import service
    from kairand.keys import secrets
    from kairand.keys.backends import SERVICE, DirectoryKeyring
    from kairand.store import staff
    from kairand.store.bootstrap import select_keyring

    old = load_config(dev_setup)
    select_keyring(old)
    key = tmp_path / "recovery.key"  # made by the inputs fixture with recovery.pub
    made = service.create_backup(old, inputs["pub"], tmp_path / "backups").path
    old_key = DirectoryKeyring(dev_setup.parent / "keys").get_password(SERVICE, secrets.DB_KEY)

    root = tmp_path / "root"
    root.mkdir()
    result = run_install(root, *full_args(inputs), "--no-store")
    assert result.returncode == 0, result.stderr
    assert not (root / "var/lib/kairan/kairan.db").exists()
    fresh_key = decrypt(root, "db-key")
    assert fresh_key != old_key
    # The appliance config, pointed at the scratch root's state folder.
    config = tmp_path / "restore.toml"
    config.write_text(
        (root / "etc/kairan/kairan.toml")
        .read_text()
        .replace('state_dir = "/var/lib/kairan"', f'state_dir = "{root}/var/lib/kairan"')
    )
    monkeypatch.setenv("SYSTEMD_CREDENTIAL_SECRET", str(root / "var/lib/systemd/credential.secret"))
    credstore = root / "etc/credstore.encrypted/kairan"
    rc = ctl.main(["--config", str(config), "backup", "restore", str(made),
                   "--recovery-key", str(key), "--credstore", str(credstore)])  # fmt: skip
    assert rc == 0
    restored_key = decrypt(root, "db-key")
    assert restored_key == old_key
    db = root / "var/lib/kairan/kairan.db"
    st = db.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, ids(root, "passwd")["kairan"])
    assert stat.S_IMODE((credstore / "db-key").stat().st_mode) == 0o600
    conn = open_connection(db, bytes.fromhex(restored_key))
    try:
        names = [s.username for s in staff.all_staff(conn)]
    finally:
        conn.close()
    assert names and names == [s.username for s in _staff_of(dev_setup)]


def _staff_of(config_path: Path) -> list:
    from kairand.store import staff
    from kairand.store.bootstrap import open_store, select_keyring

    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    try:
        return store.read_sync(staff.all_staff)
    finally:
        store.close()
