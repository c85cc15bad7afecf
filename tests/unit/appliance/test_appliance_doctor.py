"""`kairanctl doctor` against a real development setup and a loopback stand-in for the LINE
API's /v2/bot/info (S9 monitoring, N7, K4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kairand import ctl, doctor, tls
from kairand.backup import envelope, service
from kairand.config import load_config
from kairand.errors import ExitCode
from kairand.keys import secrets
from kairand.keys.backends import SERVICE, DirectoryKeyring
from kairand.store.bootstrap import select_keyring


class LineStub:
    """GET /v2/bot/info answering 200 for the expected bearer token and 401 otherwise."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.calls = 0

    async def _bot_info(self, request: web.Request) -> web.Response:
        self.calls += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Authentication failed"}, status=401)
        return web.json_response(
            {
                "userId": "U" + "1" * 32,
                "basicId": "@123abcde",
                "displayName": "テスト市",
                "chatMode": "bot",
            }
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/bot/info", self._bot_info)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> LineStub:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def setup(dev_setup: Path, short_tmp: Path) -> Iterator[tuple[Path, LineStub]]:
    """A dev setup with a valid webhook certificate, one backup, and the LINE stub as api_base."""
    keys = DirectoryKeyring(dev_setup.parent / "keys")
    token = keys.get_password(SERVICE, secrets.CHANNEL_ACCESS_TOKEN)
    assert token is not None
    with LineStub(token) as stub:
        cert_pem, key_pem = tls.self_signed("webhook.example-city.jp", days=90)
        cert, key = dev_setup.parent / "webhook.crt", dev_setup.parent / "webhook.key"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        key.chmod(0o600)
        text = dev_setup.read_text()
        text = text.replace("[webhook]\n", f'[webhook]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
        base = f"http://127.0.0.1:{stub.port}"
        text = "\n".join(
            f'api_base = "{base}"' if line.startswith("api_base") else line
            for line in text.splitlines()
        )
        dev_setup.write_text(text + "\n")
        envelope.generate_recovery_key(short_tmp / "r.key", short_tmp / "r.pub")
        config = load_config(dev_setup)
        select_keyring(config)
        service.create_backup(config, short_tmp / "r.pub", short_tmp / "backups")
        yield dev_setup, stub


def run(config_path: Path, **kw) -> dict[str, doctor.Check]:
    ctx = doctor.Context(
        config_path,
        systemctl=kw.pop("systemctl", lambda unit: "active"),
        timedatectl=kw.pop("timedatectl", lambda: "yes"),
        updates=kw.pop("updates", lambda: (dt.datetime.now(dt.UTC), 0, "stub")),
        **kw,
    )
    return {c.name_en: c for c in doctor.run_checks(ctx)}


def with_socket(config_path: Path) -> socket.socket:
    """Something listening on the webhook socket path, as kairand would."""
    path = load_config(config_path).webhook.socket
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen()
    return s


def test_healthy_setup_passes_every_check(setup) -> None:
    """S9: config, permissions, keys, schema, backup, TLS, tunnel, LINE API and clock all OK;
    the LINE stand-in was really asked with the channel access token."""
    config_path, stub = setup
    with with_socket(config_path):
        results = run(config_path)
    # The mail channel is not configured in this setup: skipped, not failed.
    assert results.pop("mail channel").status == doctor.SKIP
    assert {name: c.status for name, c in results.items()} == {
        name: doctor.OK for name in results
    }, doctor.render(list(results.values()))
    assert len(results) == 10 and stub.calls == 1
    assert "@123abcde" in results["LINE API"].en


def test_each_fault_is_reported_as_a_failure(setup) -> None:
    """S9, N7, K4: a rejected token, an inactive tunnel, an unsynchronised clock, a readable
    state folder, an expired certificate and a missing secret each fail their own check."""
    config_path, stub = setup
    config = load_config(config_path)
    stub.token = "rotated-elsewhere"
    results = run(config_path, systemctl=lambda unit: "failed", timedatectl=lambda: "no")
    assert results["LINE API"].status == doctor.FAIL and "401" in results["LINE API"].en
    assert results["tunnel"].status == doctor.FAIL and "failed" in results["tunnel"].en
    assert results["clock sync"].status == doctor.FAIL
    config.daemon.state_dir.chmod(0o755)
    assert run(config_path)["file permissions"].status == doctor.FAIL
    config.daemon.state_dir.chmod(0o700)
    loose = config_path.parent / "credstore"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    original, doctor.CREDSTORE = doctor.CREDSTORE, loose
    try:
        perms = run(config_path)["file permissions"]
    finally:
        doctor.CREDSTORE = original
    assert perms.status == doctor.FAIL and "sealed credentials folder" in perms.en
    assert config.webhook.tls_cert is not None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=100)
    assert run(config_path, now=later)["webhook TLS"].status == doctor.FAIL
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=75)
    tls_check = run(config_path, now=soon)["webhook TLS"]
    assert tls_check.status == doctor.WARN and "日" in tls_check.ja
    (config_path.parent / "keys" / secrets.RECEIPT_HMAC_KEY).unlink()
    keys_check = run(config_path)["secrets"]
    assert keys_check.status == doctor.FAIL and secrets.RECEIPT_HMAC_KEY in keys_check.en


def test_kairanctl_doctor_exit_codes_and_bilingual_output(setup, capsys) -> None:
    """S9: `kairanctl doctor` prints Japanese and English per check and exits 0 when nothing
    failed (warnings allowed), 1 when something did; a broken config is reported, not raised."""
    config_path, stub = setup
    assert ctl.main(["--config", str(config_path), "doctor"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "鍵: すべて読み出せます" in out and "secrets: all 5 readable" in out
    assert "結果" in out and "result" in out
    stub.token = "other"
    assert ctl.main(["--config", str(config_path), "doctor"]) == ExitCode.FAILURE
    assert "[FAIL] LINE API" in capsys.readouterr().out
    config_path.write_text(config_path.read_text() + "\n[nonsense]\nkey = 1\n")
    assert ctl.main(["--config", str(config_path), "doctor"]) == ExitCode.FAILURE
    assert "[FAIL] 設定ファイル" in capsys.readouterr().out


@pytest.mark.req("S23")
def test_os_updates_are_reported(setup) -> None:
    """S23: pending Debian security updates, an old last upgrade, or apt being unable to tell
    are warnings with the count and date; none pending after a recent upgrade is OK."""
    config_path, _ = setup
    now = dt.datetime.now(dt.UTC)
    cases: list[tuple[tuple[dt.datetime | None, int | None, str], str, str]] = [
        ((now, 3, "x"), doctor.WARN, "3 件"),
        ((now - dt.timedelta(days=40), 0, "x"), doctor.WARN, "31 日以上"),
        ((None, None, "apt-get を実行できませんでした"), doctor.WARN, "確認できません"),
        ((now, 0, "x"), doctor.OK, "ありません"),
    ]
    for facts, status, words in cases:

        def updates(
            facts: tuple[dt.datetime | None, int | None, str] = facts,
        ) -> tuple[dt.datetime | None, int | None, str]:
            return facts

        ctx = doctor.Context(config_path, updates=updates)
        result = doctor.check_updates(ctx)
        assert result.status == status and words in result.ja, (facts, result)
