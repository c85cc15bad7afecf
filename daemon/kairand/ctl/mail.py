"""kairanctl mail status: the mail channel in counts. No address is ever shown:
subscribers per stage, sends per state (with the 'unconfirmed' ones a person must check),
bounces and inbound mails per outcome."""

from __future__ import annotations

from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode
from kairand.store import mail as mail_store
from kairand.store.database import Connection

STAGES = (
    ("registered", "登録済み"),
    ("asking", "回答中"),
    ("confirming", "確認待ち"),
    ("bounced", "不達で停止"),
)
SENDS = (
    ("sent", "送信済み"),
    ("unconfirmed", "未確認（要確認・自動再送なし）"),
    ("retry", "再送待ち"),
    ("failed", "失敗"),
    ("pending", "送信中"),
)


def _gather(
    conn: Connection,
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    return (
        mail_store.stage_counts(conn),
        mail_store.send_states(conn),
        mail_store.counters(conn),
        mail_store.notice_states(conn),
    )


def _cmd_status(ctx: Context) -> int:
    with ctx.store() as store:
        stages, sends, counters, notices = store.read_sync(_gather)
    print("メール登録者 / mail subscribers:")
    for key, ja in STAGES:
        print(f"  {ja} / {key}: {stages.get(key, 0)}")
    print("送信 / sends:")
    for key, ja in SENDS:
        print(f"  {ja} / {key}: {sends.get(key, 0)}")
    print("お知らせ（再同意・年度更新） / notices:")
    for key, ja in SENDS:
        print(f"  {ja} / {key}: {notices.get(key, 0)}")
    print(f"不達通知 / bounces: {counters.get('bounces', 0)}")
    inbound = {
        k.removeprefix("inbound_"): v for k, v in counters.items() if k.startswith("inbound_")
    }
    print("受信 / inbound: " + (", ".join(f"{k}={v}" for k, v in sorted(inbound.items())) or "0"))
    if sends.get("unconfirmed", 0) or notices.get("unconfirmed", 0):
        print(
            "未確認の送信があります。送信サーバーの記録を確認してください"
            " / unconfirmed sends: check the relay's log for their Message-IDs (never resent)"
        )
        return ExitCode.FAILURE
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    mail = subparsers.add_parser("mail", help="the mail channel (counts only)")
    sub = mail.add_subparsers(dest="mail_command", required=True)
    status = sub.add_parser("status", help="subscribers, sends and bounces in counts")
    status.set_defaults(func=_cmd_status)
