"""`kairanctl richmenu apply` against a LINE stand-in: safe replacement of the default menu."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kairand import ctl
from kairand.errors import ExitCode
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import audit
from kairand.store.bootstrap import open_store
from tests.support.line_fakes import LineStandIn, setup_dev
from tests.support.ports import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "provisioning" / "richmenu" / "default.toml"


async def test_apply_creates_uploads_sets_default_then_deletes_old(short_tmp: Path) -> None:
    """S2: create → upload image (PNG content type) → set default → delete the old default,
    in that order; the change is in the audit log. A failed upload leaves the old menu as
    default and removes the half-made one."""
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    config_path, config = await asyncio.to_thread(
        setup_dev, short_tmp / "dev", port, data_port=port
    )
    args = ["--config", str(config_path), "richmenu", "apply", str(EXAMPLE)]
    try:
        assert await asyncio.to_thread(ctl.main, args) == ExitCode.OK
        first = line.default_rich_menu
        assert first is not None and line.rich_menu_images[first][0] == "image/png"
        assert line.rich_menus[first]["chatBarText"] == "メニュー"
        line.calls.clear()
        assert await asyncio.to_thread(ctl.main, args) == ExitCode.OK
        second = line.default_rich_menu
        assert [c[0] for c in line.calls] == ["create", "upload", "default", "delete"]
        assert line.calls[-1] == ("delete", first) and second != first
        assert set(line.rich_menus) == {second}

        line.calls.clear()
        line.fail_status["upload"] = 500
        assert await asyncio.to_thread(ctl.main, args) == ExitCode.FAILURE
        assert line.default_rich_menu == second and set(line.rich_menus) == {second}
        assert [c[0] for c in line.calls] == ["create", "delete"]
    finally:
        await line.stop()

    def audit_actions() -> list[str]:
        store = open_store(config)
        try:
            return [e.entry.action for e in store.read_sync(lambda c: list(audit.iter_entries(c)))]
        finally:
            store.close()

    assert await asyncio.to_thread(audit_actions) == ["richmenu.apply", "richmenu.apply"]


async def test_apply_against_the_simulator(short_tmp: Path) -> None:
    """S2: the LINE Platform simulator (which checks LINE's rich-menu schema, size and image
    rules) accepts the shipped menu; residents then see the links and 「設定を変更」."""
    port, data_port = free_port(), free_port()
    config_path, config = await asyncio.to_thread(
        setup_dev, short_tmp / "dev", port, data_port=data_port
    )
    assert config.keyring.directory is not None
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    args = ["--config", str(config_path), "richmenu", "apply", str(EXAMPLE)]
    sim_config = SimulatorConfig(port=port, data_port=data_port, access_token=token, population=1)
    async with Simulator(sim_config) as sim:
        assert await asyncio.to_thread(ctl.main, args) == ExitCode.OK
        assert await asyncio.to_thread(ctl.main, args) == ExitCode.OK
        assert len(sim.platform.rich_menus) == 1  # the first one was replaced and deleted
        actions = sim.rich_menu_actions(next(iter(sim.population)).user_id)
    assert [a["type"] for a in actions] == ["uri", "uri", "postback"]
    assert actions[-1]["data"] == "a=settings"
