"""`kairanctl doctor`: one command that says whether the appliance is healthy, and why not.

Each check prints one line in Japanese and one in English; the exit code is 1 when any check
fails (warnings and skipped checks do not fail). Checks never print secrets or personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kairand import hostfacts
from kairand.config import Config, load_config
from kairand.errors import KairanError
from kairand.keys import secrets
from kairand.mail.component import settings_from
from kairand.mail.probe import probe_imap, probe_smtp
from kairand.store import backup as store_backup
from kairand.store.bootstrap import select_keyring
from kairand.store.database import open_connection
from kairand.store.migrations import latest_version
from kairand.timeutil import JST
from kairand.tls import certificate_health, describe

OK, WARN, FAIL, SKIP = "ok", "warning", "fail", "skipped"
_MARK = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", SKIP: "[SKIP]"}
BACKUP_MAX_AGE = dt.timedelta(hours=36)
CREDSTORE = Path("/etc/credstore.encrypted")
BACKUPS = Path("/var/backups/kairan")


@dataclass(frozen=True)
class Check:
    name_ja: str
    name_en: str
    status: str
    ja: str
    en: str


@dataclass
class Context:
    config_path: Path
    config: Config | None = None
    db_key: bytes | None = None
    now: dt.datetime | None = None
    systemctl: Callable[[str], str | None] | None = None
    timedatectl: Callable[[], str | None] | None = None
    last_backup: dict[str, Any] | None = None
    updates: Callable[[], tuple[dt.datetime | None, int | None, str]] | None = None
    """(last package upgrade, pending security updates or None, note); default: the host's."""


def _c(ja_name: str, en_name: str, status: str, ja: str, en: str) -> Check:
    return Check(ja_name, en_name, status, ja, en)


# -- individual checks --------------------------------------------------------------------------


def check_config(ctx: Context) -> Check:
    try:
        ctx.config = load_config(ctx.config_path)
    except KairanError as exc:
        return _c(
            "設定ファイル", "configuration", FAIL, "設定ファイルに誤りがあります", exc.message
        )
    return _c("設定ファイル", "configuration", OK, "読み込めました", f"{ctx.config_path} is valid")


def _mode_problem(path: Path, forbidden: int, what: str) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:  # absent, or not ours to inspect (doctor runs as kairan on the appliance)
        return None
    if mode & forbidden:
        return f"{what} {path} has mode {mode:04o} (must not have {forbidden:04o})"
    return None


def check_permissions(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    problems = [
        _mode_problem(ctx.config_path, 0o022, "configuration file"),
        _mode_problem(config.daemon.state_dir, 0o077, "state folder"),
        _mode_problem(config.database_path, 0o077, "store file"),
    ]
    if config.webhook.tls_key is not None:
        problems.append(_mode_problem(config.webhook.tls_key, 0o037, "webhook TLS key"))
    # Appliance-wide folders (absent on development machines).
    problems.append(_mode_problem(CREDSTORE, 0o077, "sealed credentials folder"))
    problems.append(_mode_problem(BACKUPS, 0o077, "backup folder"))
    if config.keyring.directory is not None:
        problems.append(_mode_problem(config.keyring.directory, 0o077, "keyring folder"))
        if config.keyring.directory.is_dir():
            for item in sorted(config.keyring.directory.iterdir()):
                problems.append(_mode_problem(item, 0o077, "secret file"))
    found = [p for p in problems if p]
    if found:
        return _c(
            "ファイルの権限",
            "file permissions",
            FAIL,
            "他の利用者が読める、または書き換えられるファイルがあります",
            "; ".join(found),
        )
    return _c("ファイルの権限", "file permissions", OK, "問題ありません", "modes are restrictive")


def check_keys(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    try:
        select_keyring(config)
        missing = []
        for name in secrets.ALL:
            try:
                secrets.get_secret(name)
            except (KairanError, RuntimeError):
                # RuntimeError: keyring.errors.NoKeyringError (no viable backend, e.g. run from
                # a root shell instead of kairanctl-with-credentials).
                missing.append(name)
        if missing:
            return _c(
                "鍵",
                "secrets",
                FAIL,
                "読み出せない鍵があります: "
                + ", ".join(missing)
                + "（アプライアンスでは kairanctl-with-credentials doctor で実行してください）",
                "not readable through the keyring: "
                + ", ".join(missing)
                + " (on the appliance run /opt/kairan/libexec/kairanctl-with-credentials doctor)",
            )
        ctx.db_key = secrets.db_key()
        secrets.signing_key()
    except (KairanError, ValueError) as exc:
        return _c("鍵", "secrets", FAIL, "鍵の形式が正しくありません", str(exc))
    return _c("鍵", "secrets", OK, "すべて読み出せます", f"all {len(secrets.ALL)} readable")


def check_schema(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    if ctx.db_key is None:
        return _c("データベース", "store", SKIP, "鍵がないため確認できません", "no db-key")
    try:
        conn = open_connection(config.database_path, ctx.db_key, readonly=True)
    except KairanError as exc:
        return _c("データベース", "store", FAIL, "データベースを開けません", exc.message)
    try:
        have = store_backup.schema_version(conn)
        last = store_backup.last_backup(conn)
    finally:
        conn.close()
    ctx.last_backup = last
    newest = latest_version()
    if have > newest:
        return _c(
            "データベース",
            "store",
            FAIL,
            "このプログラムより新しい形式のデータベースです",
            f"schema {have} is newer than this program's {newest}",
        )
    if have < newest:
        return _c(
            "データベース",
            "store",
            WARN,
            "kairand の起動時に形式が更新されます",
            f"schema {have}; kairand upgrades it to {newest} when it starts",
        )
    return _c("データベース", "store", OK, "開けます（形式は最新）", f"opens; schema {have}")


def check_backup(ctx: Context) -> Check:
    last = ctx.last_backup
    if last is None:
        return _c("バックアップ", "backup", SKIP, "データベースを開けないため確認できません", "")
    at = last.get("last_ok_at")
    now = ctx.now or dt.datetime.now(dt.UTC)
    if not at:
        return _c(
            "バックアップ",
            "backup",
            WARN,
            "バックアップがまだ一度も作成されていません",
            "no backup has been made yet (kairan-backup.timer)",
        )
    when = dt.datetime.fromtimestamp(int(at), dt.UTC)
    age = now - when
    hours = int(age.total_seconds() // 3600)
    if age > BACKUP_MAX_AGE:
        return _c(
            "バックアップ",
            "backup",
            WARN,
            f"最後のバックアップは {hours} 時間前です",
            f"the last backup is {hours} hours old ({last.get('last_file')})",
        )
    return _c(
        "バックアップ",
        "backup",
        OK,
        f"最後のバックアップは {hours} 時間前です",
        f"last backup {hours} h ago ({last.get('last_file')})",
    )


def check_tls(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    try:
        health = certificate_health(config.webhook.tls_cert, now=ctx.now)
    except KairanError as exc:
        return _c("Webhook 証明書", "webhook TLS", FAIL, "証明書を読めません", exc.message)
    ja, _, en = describe(health).partition(" / ")
    if health.status == "not_configured":
        # Development setups listen on loopback TCP; an appliance must serve TLS.
        status = WARN if config.webhook.tcp_host else FAIL
    else:
        status = {"ok": OK, "warning": WARN}.get(health.status, FAIL)
    return _c("Webhook 証明書", "webhook TLS", status, ja, en)


def _systemctl_is_active(unit: str) -> str | None:
    if not shutil.which("systemctl") or not Path("/run/systemd/system").is_dir():
        return None
    result = subprocess.run(
        ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def check_tunnel(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    name = ("トンネル", "tunnel")
    socket_path = config.webhook.socket
    socket_ok = socket_path is not None and socket_path.is_socket()
    state = (ctx.systemctl or _systemctl_is_active)("kairan-tunnel.service")
    if state is None:
        if socket_ok:
            return _c(
                *name,
                WARN,
                "待ち受けソケットはありますが、トンネルの状態は確認できません",
                f"{socket_path} exists; systemd is not running, tunnel state unknown",
            )
        return _c(
            *name,
            SKIP,
            "systemd が動いていないため確認できません",
            "systemd is not running here (development setup?)",
        )
    if state != "active":
        return _c(
            *name,
            FAIL,
            f"トンネルが動いていません（{state}）",
            f"kairan-tunnel.service is {state}: journalctl -u kairan-tunnel",
        )
    if not socket_ok:
        return _c(
            *name,
            FAIL,
            "トンネルは動いていますが、kairand の待ち受けソケットがありません",
            f"kairan-tunnel is active but {socket_path} is missing: is kairand running?",
        )
    return _c(*name, OK, "トンネルは動いています", "kairan-tunnel.service is active")


async def _bot_info(base: str, token: str, seconds: float) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(
            trust_env=True, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as session,
        session.get(f"{base}/v2/bot/info", headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        body = await resp.json(content_type=None) if resp.status == 200 else {}
        return resp.status, str(body.get("basicId", "")) if isinstance(body, dict) else ""


def check_line(ctx: Context) -> Check:
    config = ctx.config
    assert config is not None
    name = ("LINE API", "LINE API")
    try:
        token = secrets.get_secret(secrets.CHANNEL_ACCESS_TOKEN)
    except (KairanError, RuntimeError):
        return _c(*name, SKIP, "アクセストークンがないため確認できません", "no access token")
    base = config.line.api_base
    try:
        status, basic_id = asyncio.run(
            _bot_info(base, token, min(config.line.request_timeout_seconds, 15))
        )
    except Exception as exc:  # any network failure is the finding itself
        return _c(
            *name,
            FAIL,
            "LINE API に接続できません（ネットワーク・プロキシ・nftables を確認）",
            f"cannot reach {base}: {type(exc).__name__}: {exc}",
        )
    if status == 200:
        return _c(
            *name, OK, f"接続できます（{basic_id}）", f"{base} accepts the token ({basic_id})"
        )
    if status == 401:
        return _c(
            *name,
            FAIL,
            "アクセストークンが拒否されました。再発行して登録し直してください",
            f"{base} rejected the channel access token (401)",
        )
    return _c(
        *name,
        FAIL,
        f"LINE API が異常な応答を返しました（{status}）",
        f"{base}/v2/bot/info answered HTTP {status}",
    )


def check_mail(ctx: Context) -> Check:
    """The mail channel: the SMTP relay and the registration mailbox answer and
    accept the appliance's logins. Skipped when [mail] is not enabled."""
    config = ctx.config
    assert config is not None
    name = ("メール配信", "mail channel")
    if not config.mail.enabled:
        return _c(*name, SKIP, "メール配信は無効です", "[mail] enabled = false")
    try:
        settings = settings_from(config.mail)
        smtp_password = (
            secrets.get_secret(secrets.MAIL_SMTP_PASSWORD) if settings.smtp_username else None
        )
        imap_password = secrets.get_secret(secrets.MAIL_IMAP_PASSWORD)
    except (KairanError, RuntimeError) as exc:
        return _c(*name, FAIL, "メールの設定またはパスワードに問題があります", str(exc))
    ca = config.mail.ca_file
    tls = ssl.create_default_context(cafile=str(ca) if ca else None)

    async def both() -> tuple[str | None, str | None]:
        return (
            await probe_smtp(settings, smtp_password, tls),
            await probe_imap(settings, imap_password, tls),
        )

    smtp_problem, imap_problem = asyncio.run(both())
    if smtp_problem or imap_problem:
        parts_ja = [
            *(["送信サーバー（SMTP）に接続できません"] if smtp_problem else []),
            *(["受信サーバー（IMAP）に接続できません"] if imap_problem else []),
        ]
        parts_en = [
            *(
                [f"smtp {settings.smtp_host}:{settings.smtp_port}: {smtp_problem}"]
                if smtp_problem
                else []
            ),
            *(
                [f"imap {settings.imap_host}:{settings.imap_port}: {imap_problem}"]
                if imap_problem
                else []
            ),
        ]
        return _c(
            *name, FAIL, "、".join(parts_ja) + "（nftables・パスワードを確認）", "; ".join(parts_en)
        )
    return _c(
        *name,
        OK,
        "送信・受信サーバーに接続できます",
        f"smtp {settings.smtp_host}:{settings.smtp_port} and imap {settings.imap_host}:"
        f"{settings.imap_port} accept the logins",
    )


def _timedatectl() -> str | None:
    if not shutil.which("timedatectl"):
        return None
    result = subprocess.run(
        ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def check_clock(ctx: Context) -> Check:
    name = ("時刻同期", "clock sync")
    value = (ctx.timedatectl or _timedatectl)()
    if value is None:
        return _c(*name, WARN, "時刻同期の状態を確認できません", "timedatectl is not available")
    if value == "yes":
        return _c(*name, OK, "時刻は同期しています", "NTP synchronized")
    return _c(
        *name,
        FAIL,
        "時刻が同期していません（証明書・署名・予約配信に影響します）",
        "the clock is not NTP synchronized: check systemd-timesyncd and nftables (udp/123)",
    )


UPDATE_MAX_AGE = dt.timedelta(days=31)


def _host_updates() -> tuple[dt.datetime | None, int | None, str]:
    count, note = hostfacts.pending_security_updates()
    return hostfacts.last_package_upgrade(), count, note


def check_updates(ctx: Context) -> Check:
    """S23: when packages were last upgraded, and whether Debian security updates wait."""
    name = ("OS の更新", "OS updates")
    last, pending, note = (ctx.updates or _host_updates)()
    now = ctx.now or dt.datetime.now(dt.UTC)
    when_ja = f"{last.astimezone(JST):%Y年%m月%d日 %H:%M}" if last else "記録なし"
    when_en = last.isoformat(timespec="minutes") if last else "no record"
    if pending is None:
        return _c(
            *name,
            WARN,
            f"最終更新 {when_ja}。未適用の更新を確認できません（{note}）",
            f"last upgrade {when_en}; pending updates unknown",
        )
    if pending:
        return _c(
            *name,
            WARN,
            f"未適用のセキュリティ更新が {pending} 件あります（最終更新 {when_ja}）",
            f"{pending} security updates pending (last upgrade {when_en}): "
            "apply them (unattended-upgrades, or apt upgrade)",
        )
    if last is None or now - last > UPDATE_MAX_AGE:
        return _c(
            *name,
            WARN,
            f"最終更新から 31 日以上経っています（{when_ja}）",
            f"no package upgrade for over 31 days (last {when_en})",
        )
    return _c(
        *name,
        OK,
        f"未適用のセキュリティ更新はありません（最終更新 {when_ja}）",
        f"no pending security update (last upgrade {when_en})",
    )


CHECKS: list[Callable[[Context], Check]] = [
    check_permissions,
    check_keys,
    check_schema,
    check_backup,
    check_tls,
    check_tunnel,
    check_line,
    check_mail,
    check_clock,
    check_updates,
]


def run_checks(ctx: Context) -> list[Check]:
    first = check_config(ctx)
    if first.status == FAIL:
        return [first]
    return [first, *(check(ctx) for check in CHECKS)]


def render(results: list[Check]) -> str:
    lines = []
    for r in results:
        lines.append(f"{_MARK[r.status]} {r.name_ja}: {r.ja}")
        lines.append(f"       {r.name_en}: {r.en}")
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    if failed:
        lines.append(f"結果: {failed} 件の異常があります / result: {failed} check(s) failed")
    elif warned:
        lines.append(f"結果: 注意 {warned} 件 / result: OK with {warned} warning(s)")
    else:
        lines.append("結果: すべて正常です / result: all checks passed")
    return "\n".join(lines)


__all__ = ["Check", "Context", "render", "run_checks"]
