"""The main flow against the REAL daemon: compose → テスト送信 → 承認依頼 → 承認 by another staff
member → live progress → 配信済み, with LINE played by the simulator (kairand.simulator).

The daemon is `kairand.daemon.run` in-process: its API identifies the author through the real
SO_PEERCRED path (the test's own OS user, put on the roster). A second API site on another socket,
sharing the daemon's store, identifies the approver through an injected peer resolver (as the
API's own tests do): the kernel cannot give one process two uids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from textual.widgets import Input, ProgressBar, SelectionList, Static, TextArea

from kairan_tui.app import make_app
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.test_recipient import RecipientCodeModal
from kairan_tui.screens.approvals import ApprovalsScreen
from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.screens.history import HistoryScreen
from kairan_tui.widgets.wrapped import WrappedText
from kairand import daemon
from kairand.api.app import serve
from kairand.api.identity import Peer
from kairand.config import Config
from kairand.delivery import service
from kairand.keys import secrets
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import staff, synthetic, test_recipients
from kairand.store.database import Store
from tests.support.tui_helpers import notifications, wait_until

MESSAGE = "子育て支援センターの秋のイベントのお知らせです。"
TITLE = "子育てイベントのお知らせ"


@dataclass
class World:
    config: Config
    store: Store
    sim: Simulator
    author_socket: Path
    approver_socket: Path
    in_segment: set[str]
    staff_phone: str


def _with(config: Config, **sections: dict) -> Config:
    update = {
        name: getattr(config, name).model_copy(update=values) for name, values in sections.items()
    }
    return config.model_copy(update=update)


@contextlib.asynccontextmanager
async def real_daemon(config: Config, store: Store) -> AsyncIterator[World]:
    token = await asyncio.to_thread(secrets.get_secret, secrets.CHANNEL_ACCESS_TOKEN)
    sim_config = SimulatorConfig(population=40, seed=11, access_token=token, auto_react=False)
    async with Simulator(sim_config) as sim:
        residents = sim.follow(40)
        in_segment: set[str] = set()
        rows = []
        for i, resident in enumerate(residents[:39]):
            kosodate = i < 24
            area = "honmachi" if i % 2 == 0 else "ekimae"
            rows.append(
                synthetic.SyntheticResident(
                    resident.user_id,
                    choices={"topics": ["kosodate" if kosodate else "bousai"], "area": [area]},
                    years={"birth_year": 1985},
                )
            )
            if kosodate and area == "honmachi":
                in_segment.add(resident.user_id)
        await store.write(synthetic.insert_residents, rows, int(time.time()))
        me = pwd.getpwuid(os.getuid()).pw_name
        await store.write(
            staff.upsert, staff.StaffRecord(me, "佐藤 花子", ("author",)), int(time.time())
        )
        await store.write(
            staff.upsert, staff.StaffRecord("suzuki", "鈴木 一郎", ("approver",)), int(time.time())
        )
        config = _with(
            config,
            line={"api_base": sim.api_url},
            webhook={"tcp_host": "", "tcp_port": 0},  # unix socket only: no shared TCP port
            delivery={"poll_seconds": 0.05, "retry_base_seconds": 0.01, "retry_max_seconds": 0.05},
        )
        ready: asyncio.Future[web.Application] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(daemon.run(config, store, ready.set_result))
        app = await asyncio.wait_for(ready, 20)
        approver_config = _with(config, api={"socket": config.api.socket.with_name("apr.sock")})

        async def approver(_: web.Request) -> Peer:
            return Peer(1001, "suzuki")

        try:
            async with serve(approver_config, store, app[daemon.LINE], approver):
                yield World(
                    config,
                    store,
                    sim,
                    config.api.socket,
                    approver_config.api.socket,
                    in_segment,
                    residents[39].user_id,
                )
        finally:
            app[daemon.STOPPING].set()
            await asyncio.wait_for(task, 20)


def _audience_text(app) -> str:
    return str(app.screen.query_one("#audience", Static).render())


@pytest.fixture
def daemon_start_may_read_secrets(no_blocking_on_event_loop):
    """The daemon reads its LINE token through keyring once, at start, on the loop (a small
    file read in kairand.keys.backends): allow exactly that; everything else stays guarded."""
    guard = no_blocking_on_event_loop
    for name in ("io.TextIOWrapper.read", "io.BufferedReader.read"):
        function = guard.functions.get(name)
        if function is not None:
            function.can_block_in("kairand/keys/backends.py", "get_password")
    return guard


@pytest.mark.timeout(90)
async def test_compose_test_send_submit_approve_and_watch_it_sent(
    config: Config, store: Store, daemon_start_may_read_secrets
):
    """S7, S5, G3, N2: an author composes a message to 子育て residents in 本町 and sees the live
    audience count; a test send reaches only their own registered LINE; holding Enter on the
    confirmation does not submit and does not change the audience; Y does; a different staff
    member approves (the confirmation shows the audience count) and watches the progress bar
    reach 配信済み; exactly the selected residents received the message, once each."""
    store.bind_loop()
    async with real_daemon(config, store) as world:
        # -- the author ------------------------------------------------------------------
        author = make_app(world.author_socket, connection_check_seconds=60, retry_seconds=0.2)
        async with author.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: author.me is not None)
            assert "approvals" not in author.visible_screens
            await pilot.press("f3")
            await wait_until(pilot, lambda: isinstance(author.screen, ComposeScreen))
            screen = author.screen
            assert isinstance(screen, ComposeScreen)
            await wait_until(pilot, lambda: screen.query("#choice-topics"))
            screen.query_one("#title", Input).value = TITLE
            area = screen.query_one("#message-1 TextArea", TextArea)
            area.focus()
            area.insert(MESSAGE)
            await pilot.pause()
            topics = screen.query_one("#choice-topics", SelectionList)
            topics.focus()
            topics.highlighted = 0  # 子育て
            await pilot.press("space")
            areas = screen.query_one("#choice-area", SelectionList)
            areas.focus()
            areas.highlighted = 0  # 本町
            await pilot.press("space")
            expected = len(world.in_segment)
            await wait_until(pilot, lambda: f"{expected:,} 人" in _audience_text(author))

            # テスト送信先の登録: the code shown is claimed from "the staff member's LINE".
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(author.screen, RecipientCodeModal))
            code = str(author.screen.query_one("#test-code", Static).render())
            # The daemon runs in training mode: the code comes from the trainee's phone.
            assert "研修用スマートフォンからこのコードを公式アカウントに送信します" in (
                author.screen.query_one(".dialog-body", WrappedText).text
            )
            await pilot.press("escape")
            claimed = await world.store.write(
                test_recipients.claim, code, world.staff_phone, int(time.time())
            )
            assert claimed is not None

            await pilot.press("ctrl+t")
            await wait_until(
                pilot, lambda: any("テスト送信しました" in m for m in notifications(author))
            )
            test_receipts = world.sim.ledger.find(text=MESSAGE)
            assert [r.user_id for r in test_receipts] == [world.staff_phone]
            draft_id = screen.draft_id
            assert draft_id is not None

            # Holding Enter on the confirmation only ever cancels.
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: isinstance(author.screen, ConfirmModal))
            assert f"{expected:,} 人" in str(
                author.screen.query_one("#confirm-audience", Static).render()
            )
            for _ in range(12):
                await pilot.press("enter")
                await pilot.pause(0.06)
            await wait_until(pilot, lambda: author.screen is screen)
            assert (await service.get(world.store, draft_id)).status == "draft"
            # ... and the rest of the held Enter does not reach the form (the 本町 option had
            # the focus: each repeat used to toggle it).
            assert list(areas.selected) == ["honmachi"]

            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: isinstance(author.screen, ConfirmModal))
            assert f"{expected:,} 人" in str(
                author.screen.query_one("#confirm-audience", Static).render()
            )
            await pilot.pause(0.6)
            await pilot.press("y")
            await wait_until(
                pilot, lambda: any("承認を依頼しました" in m for m in notifications(author))
            )
            assert (await service.get(world.store, draft_id)).status == "pending_approval"

        # -- the approver (another staff member) -----------------------------------------
        approver = make_app(world.approver_socket, connection_check_seconds=60, retry_seconds=0.2)
        async with approver.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: approver.me is not None)
            assert "compose" not in approver.visible_screens
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: (
                    isinstance(approver.screen, ApprovalsScreen)
                    and approver.screen.selected is not None
                    and approver.screen.selected.id == draft_id
                ),
            )
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(approver.screen, ConfirmModal))
            assert f"{expected:,} 人" in str(
                approver.screen.query_one("#confirm-audience", Static).render()
            )
            await pilot.pause(0.6)
            await pilot.press("y")
            await wait_until(
                pilot, lambda: any("承認しました" in m for m in notifications(approver))
            )
            await pilot.press("f5")
            await wait_until(pilot, lambda: isinstance(approver.screen, HistoryScreen))
            history = approver.screen
            assert isinstance(history, HistoryScreen)
            await wait_until(
                pilot,
                lambda: history.selected is not None and history.selected.id == draft_id,
            )
            await wait_until(
                pilot,
                lambda: history.selected is not None and history.selected.status == "sent",
                limit=30,
            )
            bar = history.query_one("#progress", ProgressBar)
            assert bar.percentage == 1.0
            counts = str(history.query_one("#history-counts", Static).render())
            assert f"{expected:,} 人" in counts
            status = str(history.query_one("#history-status", Static).render())
            assert "配信済み" in status

    received = world.sim.ledger.recipients(text=MESSAGE, kind="multicast")
    assert set(received) == world.in_segment
    assert set(received.values()) == {1}
