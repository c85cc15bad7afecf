"""テスト送信 in training: the simulator's trainee phone (研修用スマートフォン)
sends the テスト送信先 code as a signed webhook, the REAL daemon links it, and the test send
arrives at that phone, where `kairan-phone` (a separate process, as in `make phone`) shows it.

The daemon is `kairand.daemon.run` in-process with its real webhook (unix socket, signature
check) and its real staff API (SO_PEERCRED: the test's own OS user is the author); the
simulator's webhook sender signs with the channel secret of the development setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from textual.widgets import Checkbox, Input, Static, TextArea

from kairan_tui.app import make_app
from kairan_tui.modals.test_recipient import RecipientCodeModal
from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.widgets.wrapped import WrappedText
from kairand import daemon
from kairand.config import Config
from kairand.conversation.texts import TEST_CODE_NG, TEST_CODE_OK
from kairand.keys import secrets
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.phone import phone_user_id
from kairand.store import staff, test_recipients
from kairand.store.database import Store
from tests.support.line_fakes import channel_secret
from tests.support.tui_helpers import notifications, wait_until

MESSAGE = "年末年始の窓口のご案内です（テスト）。"


async def phone(socket: Path, *args: str) -> tuple[int, str, str]:
    """Run `kairan-phone` as its own process, as the trainee does in a second terminal."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kairand.simulator.phone",
        "--socket",
        str(socket),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def training_world(
    config: Config, store: Store, phone_socket: Path
) -> AsyncIterator[Simulator]:
    token = await asyncio.to_thread(secrets.get_secret, secrets.CHANNEL_ACCESS_TOKEN)
    secret = await asyncio.to_thread(channel_secret, config)
    assert config.webhook.socket is not None and config.daemon.training_mode
    sim_config = SimulatorConfig(
        population=5,
        seed=3,
        channel_secret=secret,
        access_token=token,
        bot_user_id=config.webhook.bot_user_id,
        webhook=WebhookTarget(
            "http://localhost" + config.webhook.path, unix_socket=str(config.webhook.socket)
        ),
        phone_socket=str(phone_socket),
        auto_react=False,
        redelivery=False,
    )
    me = pwd.getpwuid(os.getuid()).pw_name
    await store.write(
        staff.upsert, staff.StaffRecord(me, "研修 作成者", ("author",)), int(time.time())
    )
    async with Simulator(sim_config) as sim:
        webhook = config.webhook.model_copy(update={"tcp_host": "", "tcp_port": 0})
        line = config.line.model_copy(update={"api_base": sim.api_url})
        delivery = config.delivery.model_copy(update={"poll_seconds": 0.05})
        live = config.model_copy(update={"webhook": webhook, "line": line, "delivery": delivery})
        ready: asyncio.Future[web.Application] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(daemon.run(live, store, ready.set_result))
        app = await asyncio.wait_for(ready, 20)
        try:
            yield sim
        finally:
            app[daemon.STOPPING].set()
            await asyncio.wait_for(task, 20)


@pytest.fixture
def daemon_start_may_read_secrets(no_blocking_on_event_loop):
    """As in test_main_flow: the daemon reads its LINE token once at start, on the loop."""
    guard = no_blocking_on_event_loop
    for name in ("io.TextIOWrapper.read", "io.BufferedReader.read"):
        function = guard.functions.get(name)
        if function is not None:
            function.can_block_in("kairand/keys/backends.py", "get_password")
    return guard


@pytest.mark.timeout(120)
async def test_trainee_phone_registers_and_receives_the_test_send(
    config: Config, store: Store, short_tmp: Path, daemon_start_may_read_secrets
) -> None:
    """S5, S7: in training, a newcomer can practise テスト送信 end to end. The code dialog says
    to send the code from the 研修用スマートフォン (`make phone`); a wrong code is refused in
    the phone's chat; the right one, sent by `kairan-phone` through a signed webhook, makes that
    phone the author's test recipient; the test send then arrives at that phone only (the
    simulator's ledger) and `kairan-phone inbox` shows it with the 【テスト送信】 notice."""
    store.bind_loop()
    socket = short_tmp / "phone.sock"
    async with training_world(config, store, socket) as sim:
        author = make_app(config.api.socket, connection_check_seconds=60, retry_seconds=0.2)
        async with author.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: author.me is not None)
            assert author.me is not None and author.me.training_mode
            await pilot.press("f3")
            await wait_until(pilot, lambda: isinstance(author.screen, ComposeScreen))
            screen = author.screen
            assert isinstance(screen, ComposeScreen)
            screen.query_one("#title", Input).value = "窓口のご案内"
            area = screen.query_one("#message-1 TextArea", TextArea)
            area.focus()
            area.insert(MESSAGE)
            await wait_until(pilot, lambda: screen.query("#segment-all"))
            screen.query_one("#segment-all", Checkbox).value = True
            await pilot.pause()

            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(author.screen, RecipientCodeModal))
            code = str(author.screen.query_one("#test-code", Static).render())
            hint = author.screen.query_one("#phone-hint", WrappedText).text
            assert "研修用スマートフォン" in hint and "make phone" in hint
            await pilot.press("escape")

            # A mistyped code: refused in the phone's chat, nothing registered.
            rc, out, err = await phone(socket, "send", "KAIRAN-000000")
            assert rc == 0, err
            assert "友だちに追加しました" in out  # the phone friends the account first
            await sim.ledger.wait_for(lambda ledger: bool(ledger.find(text=TEST_CODE_NG)))
            assert await store.read(test_recipients.count_of, author.me.username) == 0

            rc, out, err = await phone(socket, "send", code)
            assert rc == 0, err
            uid = phone_user_id(3)
            async with asyncio.timeout(30):
                await sim.ledger.wait_for(
                    lambda ledger: bool(ledger.find(user_id=uid, text=TEST_CODE_OK))
                )
            assert await store.read(test_recipients.recipients_of, author.me.username) == [uid]

            await pilot.press("ctrl+t")
            await wait_until(
                pilot,
                lambda: any(
                    "テスト送信しました（1 件）。研修用スマートフォン（make phone の画面）で確認"
                    in m
                    for m in notifications(author)
                ),
                30,
            )
        # The trainee reads it on the phone (`make phone` shows the same lines as they come).
        rc, out, err = await phone(socket, "inbox")
        assert rc == 0, err
        assert "公式アカウント:\n    【テスト送信】" in out and MESSAGE in out
        assert out.index(TEST_CODE_OK) < out.index(MESSAGE)

    # Only the phone got the test send, once, with the notice first.
    received = sim.ledger.find(text=MESSAGE)
    assert [(r.user_id, r.kind) for r in received] == [(uid, "push")]
    assert received[0].texts[0].startswith("【テスト送信】")
    assert sim.phone.received()[-1] == MESSAGE


async def test_phone_command_reports_what_it_cannot_do(short_tmp: Path) -> None:
    """Bad input gets a clear Japanese error and loses nothing: no simulator running → exit 2
    and where it looked; an empty message → exit 1, nothing sent (no follow either)."""
    rc, out, err = await phone(short_tmp / "none.sock", "inbox")
    assert rc == 2 and "研修用スマートフォンに接続できません" in err and "make demo" in err
    socket = short_tmp / "phone.sock"
    async with Simulator(SimulatorConfig(population=1, phone_socket=str(socket))) as sim:
        assert socket.stat().st_mode & 0o777 == 0o600
        rc, out, err = await phone(socket, "send", " ")
        assert rc == 1 and "メッセージが空です" in err
        assert sim.outbox == [] and sim.phone.chat == []
        rc, out, err = await phone(socket, "inbox")
        assert rc == 0 and "まだメッセージはありません" in out
        rc, out, err = await phone(socket, "send", "こんにちは")
        assert rc == 0, err
        assert [e["type"] for e in sim.outbox] == ["follow", "message"]
        assert sim.outbox[1]["source"]["userId"] == sim.phone.user_id
        assert sim.phone.user_id not in sim.population
        rc, out, err = await phone(socket, "inbox")
        assert rc == 0 and "あなた:\n    こんにちは" in out
    assert not socket.exists()


async def test_phone_chat_sends_typed_lines_and_ends_at_end_of_input(short_tmp: Path) -> None:
    """`make phone` (chat, the default): each typed line is sent; the conversation is printed
    as it grows; end of input (Ctrl+D) ends it cleanly."""
    socket = short_tmp / "phone.sock"
    async with Simulator(SimulatorConfig(population=1, phone_socket=str(socket))) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kairand.simulator.phone",
            "--socket",
            str(socket),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"KAIRAN-123456\n")
            await proc.stdin.drain()
            async with asyncio.timeout(30):
                lines = []
                while "    KAIRAN-123456" not in lines:
                    lines.append((await proc.stdout.readline()).decode().rstrip("\n"))
            assert [e["type"] for e in sim.outbox] == ["follow", "message"]
            assert sim.outbox[1]["message"]["text"] == "KAIRAN-123456"
            proc.stdin.close()
            async with asyncio.timeout(30):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_code_dialog_in_training_snapshot(size, app_for, snap_compare) -> None:
    """The code dialog in training, with the long Japanese hint to `make phone`, at both sizes
    (no character lost where the dialog crosses the screen's panels, textual#6357)."""
    app = app_for("ito")

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f3")
        await wait_until(pilot, lambda: app.screen.query("#choice-topics"))
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.screen.query("#phone-hint"))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_typing_a_button_label_taps_it(short_tmp: Path) -> None:
    """The phone shows quick-reply buttons as ［選択肢］; typing a label taps it (a postback, as
    LINE sends), a message button sends its text, a date picker is refused plainly; other
    text goes as typed."""
    socket = short_tmp / "phone.sock"
    config = SimulatorConfig(population=1, phone_socket=str(socket), auto_react=False)
    async with Simulator(config) as sim:
        sim.phone.send("こんにちは")
        token = config.access_token
        buttons = [
            {"type": "action", "action": {"type": "postback", "label": "同意する", "data": "a=1"}},
            {"type": "action", "action": {"type": "message", "label": "予約", "text": "予約"}},
            {
                "type": "action",
                "action": {"type": "datetimepicker", "label": "日付", "data": "d", "mode": "date"},
            },
        ]
        body = {
            "to": sim.phone.user_id,
            "messages": [
                {"type": "text", "text": "同意しますか", "quickReply": {"items": buttons}}
            ],
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                sim.api_url + "/v2/bot/message/push",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        rc, out, err = await phone(socket, "inbox")
        assert "同意しますか\n    ［選択肢］同意する / 予約 / 日付" in out
        rc, out, err = await phone(socket, "send", "同意する")
        assert rc == 0, err
        assert sim.outbox[-1]["type"] == "postback" and sim.outbox[-1]["postback"]["data"] == "a=1"
        rc, out, err = await phone(socket, "send", "予約")
        assert sim.outbox[-1]["message"]["text"] == "予約"
        rc, out, err = await phone(socket, "send", "日付")
        assert rc == 1 and "選べません" in err
        rc, out, err = await phone(socket, "inbox")
        assert "あなた:\n    ［同意する］を選択" in out
