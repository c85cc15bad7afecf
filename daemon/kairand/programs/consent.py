"""Re-consent prompts: when staff raise a program's consent version (its purpose notice changed
in substance), the members who agreed only to the older notice are suspended at once in the
same transaction (kairand.programs.service.put_program: no delivery of the program reaches
them), and each is told once in LINE that the notice changed and how to agree again.

The prompt is one push per member and consent version, sent like the annual notice
(kairand.retention.notices: the retry key is stored before the push, a retry reuses it, at
most MAX_ATTEMPTS tries), so it goes out exactly once across restarts. It also reaches members
who stopped the city information (deliveries_stopped): the program's alerts reached them until
now, so they must learn why they stop.
"""

from __future__ import annotations

import time
from collections import Counter

from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.programs.model import ProgramDefinition
from kairand.retention.notices import send_notices
from kairand.retention.rules import Notice
from kairand.store import programs as q
from kairand.store.database import Store

log = get_logger(__name__)

RECONSENT_TEXT = (
    "【{program}からのお知らせ】\n"
    "{program}の利用目的の内容を改めました。改めて同意いただくまで、{program}の配信を"
    "停止しています。\n"
    "引き続き受け取りを希望される場合は、メニューの「{program}」から新しい内容をご確認の"
    "うえ、同意をお願いします。登録内容（学校区など）はそのまま引き継ぎます。"
)


def cycle(program: str, version: int) -> str:
    """The notice cycle of a program's consent version (one prompt per member and version)."""
    return f"{program}@consent{version}"


def prompt_text(definition: ProgramDefinition) -> str:
    return RECONSENT_TEXT.replace("{program}", definition.name)


async def send_prompts(store: Store, line: LineApi, now: int | None = None) -> Counter[str]:
    """Push the re-consent prompt to every suspended member not yet prompted for the
    program's current consent version; counts by outcome (sent / retry / failed)."""
    at = int(now if now is not None else time.time())
    result: Counter[str] = Counter()
    for row in await store.read(q.list_programs):
        if row.is_default or not row.active:
            continue
        definition = ProgramDefinition.model_validate(row.definition)
        if definition.consent_version <= 1:
            continue
        name = cycle(row.code, definition.consent_version)
        text = prompt_text(definition)
        targets = await store.read(
            q.members_to_reconsent, row.code, definition.consent_version, name
        )
        notices = [Notice(rid, name, 0, text) for rid, _ in targets]
        result.update(await send_notices(store, line, notices, {name: text}, at, program=True))
    if result:
        log.info("programs.reconsent_prompts", **dict(result))
    return result
