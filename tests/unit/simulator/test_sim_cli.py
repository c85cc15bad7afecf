"""`kairan-sim`: configuration from a development setup, the training banner, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairand.errors import ExitCode
from kairand.keys.backends import SERVICE, DirectoryKeyring
from kairand.keys.secrets import CHANNEL_ACCESS_TOKEN, CHANNEL_SECRET
from kairand.simulator import BANNER
from kairand.simulator.cli import build_parser, config_from_args, dev_setup_config, main


def test_dev_setup_supplies_secrets_bot_id_and_ports(dev_setup: Path) -> None:
    """S5: kairan-sim --dev-config signs with the setup's channel secret, accepts its token,
    uses its bot user id as destination and listens where the daemon's config points."""
    keys = DirectoryKeyring(dev_setup.parent / "keys")
    args = build_parser().parse_args(
        ["--dev-config", str(dev_setup), "--faults", "flaky", "--error-ratio", "0.2", "--seed", "4"]
    )
    config = config_from_args(args)
    assert config.channel_secret == keys.get_password(SERVICE, CHANNEL_SECRET)
    assert config.access_token == keys.get_password(SERVICE, CHANNEL_ACCESS_TOKEN)
    toml = dev_setup.read_text(encoding="utf-8")
    assert config.bot_user_id is not None and f'bot_user_id = "{config.bot_user_id}"' in toml
    assert f"127.0.0.1:{config.port}" in toml
    assert config.webhook is not None and config.webhook.url.startswith("http://127.0.0.1:")
    assert (config.faults.error_ratio, config.faults.seed) == (0.2, 4)
    assert config.faults.lost_ratio > 0  # the rest of the flaky profile is kept
    assert config.freeze_gc  # its own process: long-lived objects leave the collector


def test_missing_secrets_and_bad_faults_exit_with_the_config_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S5: without secrets, or with impossible fault ratios, kairan-sim explains and exits 78."""
    assert main(["--population", "3"]) == ExitCode.CONFIG
    assert "hint:" in capsys.readouterr().err
    code = main(["--channel-secret", "s", "--access-token", "t", "--error-ratio", "2"])
    assert code == ExitCode.CONFIG
    assert main(["--keyring-dir", str(tmp_path)]) == ExitCode.CONFIG


def test_run_prints_the_training_banner(capsys: pytest.CaptureFixture[str]) -> None:
    """S5: a standalone run starts with the 訓練モード banner and reports what happened."""
    code = main(
        [
            "--channel-secret",
            "s",
            "--access-token",
            "t",
            "--port",
            "0",
            "--population",
            "20",
            "--follow",
            "5",
            "--duration",
            "0.3",
        ]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert out.splitlines()[0] == BANNER
    assert "実在の住民には送信されません" in BANNER
    assert "友だち 5" in out


def test_dev_setup_config_for_the_demo(dev_setup: Path) -> None:
    """S5: the demo builds its simulator from the dev setup, overriding what it needs."""
    config = dev_setup_config(dev_setup, population=42, think_time_s=(0.5, 1.0))
    cli = config_from_args(build_parser().parse_args(["--dev-config", str(dev_setup)]))
    assert (config.population, config.think_time_s) == (42, (0.5, 1.0))
    assert (config.channel_secret, config.port, config.bot_user_id) == (
        cli.channel_secret,
        cli.port,
        cli.bot_user_id,
    )


def test_dev_setup_with_tls_and_a_custom_path(dev_setup: Path) -> None:
    """S5: a dev webhook served over TLS is reached over https, trusting its own certificate."""
    text = dev_setup.read_text(encoding="utf-8")
    text = text.replace(
        "bot_user_id =", 'path = "/hook"\ntls_cert = "tls/dev.crt"\nbot_user_id =', 1
    )
    dev_setup.write_text(text, encoding="utf-8")
    config = dev_setup_config(dev_setup)
    assert config.webhook is not None
    assert config.webhook.url.startswith("https://127.0.0.1:")
    assert config.webhook.url.endswith("/hook")
    assert config.webhook.ca_file == str(dev_setup.parent.resolve() / "tls" / "dev.crt")
