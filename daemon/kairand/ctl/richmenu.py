"""kairanctl richmenu apply|check: the LINE rich menu (S2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from linebot.v3.messaging import ApiException

from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode
from kairand.keys import secrets
from kairand.line.client import line_api
from kairand.line.richmenu import RichMenuError, apply_plan, load_plan
from kairand.logs import get_logger

log = get_logger(__name__)


def _cmd_check(ctx: Context) -> int:
    plan = load_plan(ctx.args.file)
    print(f"リッチメニューの定義は有効です / rich menu definition is valid: {ctx.args.file}")
    print(f"areas={len(plan.request['areas'])} image={plan.content_type} bytes={len(plan.image)}")
    return ExitCode.OK


def _cmd_apply(ctx: Context) -> int:
    plan = load_plan(ctx.args.file)  # before any network call
    config = ctx.keyring()
    token = secrets.get_secret(secrets.CHANNEL_ACCESS_TOKEN)

    async def run() -> tuple[str, str | None]:
        async with line_api(
            config.line.api_base,
            token,
            config.line.request_timeout_seconds,
            data_base=config.line.data_base,
        ) as line:
            return await apply_plan(line, plan)

    try:
        new_id, old_id = asyncio.run(run())
    except ApiException as exc:
        raise RichMenuError(
            f"LINE refused the rich menu (HTTP {exc.status})",
            "check the channel access token and the definition; the previous menu is unchanged",
        ) from None
    except (OSError, TimeoutError) as exc:
        raise RichMenuError(
            f"LINE could not be reached: {type(exc).__name__}",
            "check the network or proxy; the previous menu is unchanged",
        ) from None
    with ctx.store() as store:
        store.write_sync(
            ctx.audit,
            "richmenu.apply",
            {"replaced": old_id or "", "areas": len(plan.request["areas"])},
            "ok",
            new_id,
        )
    log.info("richmenu.applied", replaced=bool(old_id))
    print(f"リッチメニューを設定しました / default rich menu set: {new_id}")
    if old_id:
        print(f"以前のメニューを削除しました / previous menu deleted: {old_id}")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("richmenu", help="the LINE rich menu (S2)")
    sub = parser.add_subparsers(dest="richmenu_command", required=True)
    apply = sub.add_parser("apply", help="create the default rich menu from FILE.toml")
    apply.add_argument("file", type=Path, help="rich menu definition (TOML)")
    apply.set_defaults(func=_cmd_apply)
    check = sub.add_parser("check", help="check FILE.toml against LINE's limits (no network)")
    check.add_argument("file", type=Path, help="rich menu definition (TOML)")
    check.set_defaults(func=_cmd_check)
