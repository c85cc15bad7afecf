"""kairanctl tls install|status: the webhook's TLS certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kairand.ctl.context import Context, Subparsers
from kairand.errors import ConfigError, ExitCode, KairanError
from kairand.keys import secrets
from kairand.store import settings
from kairand.store.database import open_connection, transaction
from kairand.tls import NOT_AFTER_SETTING, certificate_health, describe, install_pair


def _configured_paths(ctx: Context) -> tuple[Path, Path]:
    config = ctx.config
    if config.webhook.tls_cert is None or config.webhook.tls_key is None:
        raise ConfigError(
            "webhook.tls_cert and webhook.tls_key are not set in the configuration",
            "set them (the appliance template uses /etc/kairan/tls/webhook.crt and .key)",
        )
    return config.webhook.tls_cert, config.webhook.tls_key


def _cmd_install(ctx: Context) -> int:
    dest_cert, dest_key = _configured_paths(ctx)
    leaf = install_pair(ctx.args.cert, ctx.args.key, dest_cert, dest_key)
    _record_not_after(ctx, leaf.not_valid_after_utc)
    print(
        "証明書をインストールしました / certificate installed: "
        f"{dest_cert} (valid until {leaf.not_valid_after_utc:%Y-%m-%d})"
    )
    print("kairand を再起動してください / restart kairand: systemctl restart kairand")
    return ExitCode.OK


def _record_not_after(ctx: Context, not_after: dt.datetime) -> None:
    """Best effort: note the expiry in the store's settings (unix seconds) for health. Where the
    db-key is not available to kairanctl (the appliance keeps it in systemd credentials), health
    and doctor read the certificate file itself."""
    try:
        if not ctx.config.database_path.exists():
            return
        config = ctx.keyring()
        conn = open_connection(config.database_path, secrets.db_key())
    except (KairanError, RuntimeError):
        return
    try:
        with transaction(conn):
            settings.put(conn, NOT_AFTER_SETTING, int(not_after.timestamp()))
            # S8: a certificate change is a change of the channel personal data travels on.
            ctx.audit(
                conn,
                "tls.install",
                {"not_after": not_after.isoformat(timespec="seconds")},
                target=str(ctx.config.webhook.tls_cert),
            )
    finally:
        conn.close()


def _cmd_status(ctx: Context) -> int:
    cert, _ = _configured_paths(ctx)
    health = certificate_health(cert)
    print(describe(health))
    return ExitCode.OK if health.status == "ok" else ExitCode.FAILURE


def register(subparsers: Subparsers) -> None:
    tls = subparsers.add_parser("tls", help="the webhook's TLS certificate")
    sub = tls.add_subparsers(dest="tls_command", required=True)
    install = sub.add_parser("install", help="validate and install a certificate and its key")
    install.add_argument("cert", type=Path, help="PEM certificate chain (leaf first)")
    install.add_argument("key", type=Path, help="PEM private key (no passphrase)")
    install.set_defaults(func=_cmd_install)
    status = sub.add_parser("status", help="show the installed certificate's expiry")
    status.set_defaults(func=_cmd_status)
