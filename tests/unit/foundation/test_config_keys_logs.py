"""Configuration, keyring backends, PII-free logging, and the dev setup."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import keyring
import pytest

from kairand.config import load_config, parse_config
from kairand.devsetup import init_dev
from kairand.errors import AlreadyExistsError, ConfigError, ExitCode, SecretError
from kairand.keys import secrets
from kairand.keys.backends import CredentialsKeyring, DirectoryKeyring, MemoryKeyring
from kairand.logs import get_logger, setup_logging


def test_defaults_are_the_appliance_paths(tmp_path: Path) -> None:
    """An empty config gives the documented appliance defaults."""
    config = parse_config({}, base_dir=tmp_path)
    assert config.database_path == Path("/var/lib/kairan/kairan.db")
    assert config.api.socket == Path("/run/kairan/api.sock")
    assert config.delivery.multicast_rate_per_second == 200
    assert config.delivery.self_approval_threshold == 0
    assert config.privacy.store_display_name is False


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[daemon]\nlog_levle = 'info'\n", "daemon.log_levle"),
        ("[delivery]\nmulticast_rate_per_second = -1\n", "delivery.multicast_rate_per_second"),
        ("[daemon]\nlog_level = 'loud'\n", "daemon.log_level"),
        ("[unknown_section]\nx = 1\n", "unknown_section"),
        ("[api]\nsocket = '/" + "x" * 120 + "'\n", "api.socket"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    """A config error names the offending key and has the config exit code."""
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert names in str(caught.value)
    assert caught.value.exit_code == ExitCode.CONFIG


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    path.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_relative_paths_resolve_against_the_config_folder(dev_setup: Path) -> None:
    config = load_config(dev_setup)
    assert config.daemon.state_dir == dev_setup.parent / "state"
    assert config.keyring.directory == dev_setup.parent / "keys"


def test_credentials_backend_reads_systemd_credentials_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K4: on the appliance secrets come from $CREDENTIALS_DIRECTORY and cannot be written."""
    (tmp_path / "db-key").write_text("aa" * 32 + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    backend = CredentialsKeyring()
    assert backend.get_password("kairan", "db-key") == "aa" * 32
    assert backend.get_password("other-service", "db-key") is None
    assert backend.get_password("kairan", "../etc/passwd") is None
    with pytest.raises(keyring.errors.PasswordSetError):
        backend.set_password("kairan", "db-key", "x")
    assert CredentialsKeyring.priority == 10
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(RuntimeError):
        _ = CredentialsKeyring.priority


def test_backend_selected_by_environment(tmp_path: Path) -> None:
    """PYTHON_KEYRING_BACKEND selects Kairan's backends (how the systemd unit pins it)."""
    (tmp_path / "line-channel-secret").write_text("s3cret")
    code = (
        "import keyring; print(type(keyring.get_keyring()).__name__,"
        " keyring.get_password('kairan', 'line-channel-secret'))"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON_KEYRING_BACKEND": "kairand.keys.backends.CredentialsKeyring",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["CredentialsKeyring", "s3cret"], out.stderr


def test_directory_and_memory_backends(tmp_path: Path) -> None:
    backend = DirectoryKeyring(tmp_path / "keys")
    backend.set_password("kairan", "signing-key", "abc")
    assert (tmp_path / "keys" / "signing-key").stat().st_mode & 0o777 == 0o600
    assert backend.get_password("kairan", "signing-key") == "abc"
    memory = MemoryKeyring()
    memory.set_password("kairan", "db-key", "x")
    assert memory.get_password("kairan", "db-key") == "x"


def test_missing_secret_is_a_key_error(tmp_path: Path) -> None:
    keyring.set_keyring(DirectoryKeyring(tmp_path))
    with pytest.raises(SecretError) as caught:
        secrets.db_key()
    assert caught.value.exit_code == ExitCode.KEY


def test_init_dev_refuses_to_overwrite(short_tmp: Path) -> None:
    """`kairanctl init --dev` never overwrites an existing store."""
    init_dev(short_tmp / "d")
    with pytest.raises(AlreadyExistsError) as caught:
        init_dev(short_tmp / "d")
    assert caught.value.exit_code == ExitCode.EXISTS
    result = subprocess.run(
        [sys.executable, "-m", "kairand.ctl", "init", "--dev", str(short_tmp / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == ExitCode.EXISTS
    assert "refusing to overwrite" in result.stderr


def test_log_lines_never_carry_line_user_ids() -> None:
    """Privacy: a LINE user id that reaches a log call is redacted, in the message and fields."""
    stream = io.StringIO()
    setup_logging("debug", stream=stream, with_time=False)
    user = "U" + "0123456789abcdef" * 2
    log = get_logger("kairand.test")
    log.info(f"event for {user}", who=user, count=3)
    try:
        raise ValueError(f"bad {user}")
    except ValueError:
        log.error("failed", exc_info=True)
    logging.getLogger("kairand.other").warning("plain %s", user)
    out = stream.getvalue()
    assert user not in out
    assert "count=3" in out
    assert out.count("[redacted]") >= 4
