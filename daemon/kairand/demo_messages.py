"""The rich-message walkthrough of `make demo`.

What a newcomer does in the staff terminal, through the same staff API calls:

1. picks a poster from the image folder and sends a card (the poster as its picture, a title,
   a body and a 「詳しくはこちら」 link button) to a segment; 研修 作成者 writes it, 研修 承認者
   approves it. LINE (the simulator) fetches the picture through the relay path: TLS to the
   relay's name, piped unopened into the webhook socket, where kairand serves it;
2. sets up a weekly reminder (毎週, one weekday, 7:00) as a series, approved once by the other
   person; the residents receive its next two occurrences.

A week is long for a demo: the training setup (kairand.devsetup) turns on
`recurring.training_fast_forward_seconds`, so the daemon's schedule clock jumps to the next
occurrence once the previous one was sent (kairand.delivery.schedule_clock). The rule, the
series worker, the sender and the exactly-once bookkeeping are the real ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from kairand.api.client import ApiClient
from kairand.glossary import STATUS_LABELS
from kairand.timeutil import JST

POSTER_NAME = "kenshin-poster.jpg"
LINK = "https://www.city.example.jp/kenkou/kenshin"


def sample_poster() -> bytes:
    """A plain poster (shapes only: no font needed), as a JPEG a camera or designer gives."""
    image = Image.new("RGB", (1040, 1040), (246, 241, 228))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 1040, 220), fill=(32, 120, 86))
    draw.ellipse((360, 320, 680, 640), fill=(230, 120, 60))
    draw.rectangle((120, 760, 920, 840), fill=(32, 120, 86))
    draw.rectangle((120, 880, 720, 940), fill=(120, 170, 150))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def write_sample_images(folder: Path) -> Path:
    """Put the poster in the terminal's image folder (the picker lists it)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / POSTER_NAME
    if not path.exists():
        path.write_bytes(sample_poster())
    return path


def card_delivery(media_id: str) -> dict[str, Any]:
    return {
        "title": "特定健診のご案内（画像つき）",
        "confidentiality": 1,
        "messages": [
            {
                "kind": "card",
                "title": "特定健診を受けましょう",
                "body": "40歳から74歳の方が対象です。市内の医療機関で受けられます。",
                "image": media_id,
                "image_file_name": POSTER_NAME,
                "buttons": [{"label": "詳しくはこちら", "url": LINK}],
            }
        ],
        "segment": {"conditions": [{"question": "topics", "any_of": ["kenkou"]}]},
    }


def weekly_reminder(today: dt.date) -> dict[str, Any]:
    """毎週（今日の曜日） 7:00 until staff end it: the walkthrough waits for the next two
    occurrences, then ends the series (also on a rerun, when the training clock is ahead)."""
    return {
        "content": {
            "title": "資源ごみの日",
            "confidentiality": 1,
            "messages": ["【ごみ・環境】明日は資源ごみ（びん・缶・ペットボトル）の日です。"],
            "segment": {"conditions": [{"question": "topics", "any_of": ["gomi"]}]},
        },
        "rule": {
            "frequency": "weekly",
            "weekdays": [today.weekday()],
            "time": "07:00",
            "start": today.isoformat(),
            "holidays": "send",
        },
    }


class WalkthroughFailed(RuntimeError):
    pass


def _require(response: Any, status: int, what: str) -> dict[str, Any]:
    if response.status != status:
        raise WalkthroughFailed(f"{what}: HTTP {response.status} {response.body}")
    return dict(response.body or {})


async def send_card(author: ApiClient, approver: ApiClient, poster: bytes) -> int:
    """Upload the poster, compose the card, submit, approve (two people): the delivery id."""
    media = _require(
        await author.post(
            "/v1/media",
            raw=poster,
            headers={"Content-Type": "image/jpeg", "X-File-Name": POSTER_NAME},
        ),
        201,
        "upload the poster",
    )
    created = _require(
        await author.post("/v1/deliveries", card_delivery(media["id"])), 201, "create the card"
    )
    did = int(created["id"])
    _require(await author.post(f"/v1/deliveries/{did}/submit", {}), 200, "submit the card")
    _require(await approver.post(f"/v1/deliveries/{did}/approve", {}), 200, "approve the card")
    return did


async def set_weekly_reminder(author: ApiClient, approver: ApiClient) -> dict[str, Any]:
    """Create, submit and approve the weekly series: the approved series (rule in words and
    the next dates, as the approver saw them)."""
    today = dt.datetime.now(JST).date()
    created = _require(
        await author.post("/v1/series", weekly_reminder(today)), 201, "create the series"
    )
    sid = int(created["id"])
    _require(await author.post(f"/v1/series/{sid}/submit", {}), 200, "submit the series")
    return _require(await approver.post(f"/v1/series/{sid}/approve", {}), 200, "approve the series")


async def wait_delivery(api: ApiClient, did: int, within: float) -> dict[str, Any]:
    """The delivery once it has finished (sent, failed...), or as it is at the deadline."""
    deadline = time.monotonic() + within
    while True:
        view = _require(await api.get(f"/v1/deliveries/{did}"), 200, "read the delivery")
        if view.get("status") in ("sent", "partially_failed", "failed", "needs_attention"):
            return view
        if time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.5)


async def wait_occurrences(
    api: ApiClient, sid: int, count: int, within: float
) -> list[dict[str, Any]]:
    """The series' first COUNT occurrence deliveries once each has finished (oldest first);
    fewer when the deadline passes."""
    deadline = time.monotonic() + within
    while True:
        series = _require(await api.get(f"/v1/series/{sid}"), 200, "read the series")
        history = sorted(series.get("history", []), key=lambda o: o["at"])
        done = [o for o in history if o.get("status") in ("sent", "partially_failed", "failed")]
        if len(done) >= count or time.monotonic() > deadline:
            views = []
            for occurrence in done[:count]:
                did = occurrence["delivery_id"]
                views.append(
                    _require(await api.get(f"/v1/deliveries/{did}"), 200, "read an occurrence")
                )
            return views
        await asyncio.sleep(0.5)


def _line(view: dict[str, Any]) -> str:
    return (
        f"配信番号 {view.get('id')} 「{view.get('title')}」："
        f"{STATUS_LABELS.get(str(view.get('status')), view.get('status'))}"
        f"（配信対象 {view.get('recipient_count')} 人、送信済み {view.get('sent_count')} 人）"
    )


async def walkthrough(author: ApiClient, approver: ApiClient, within: float = 150) -> bool:
    """Steps 1 and 2 above, printed as they happen (counts only); True when the card and both
    occurrences reached residents."""
    did = await send_card(author, approver, await asyncio.to_thread(sample_poster))
    print(
        f"画像つきカード 配信番号 {did} を作成・承認しました（作成者と承認者は別の方）",
        flush=True,
    )
    card = await wait_delivery(author, did, within)
    print(_line(card), flush=True)
    series = await set_weekly_reminder(author, approver)
    upcoming = "、".join(
        f"{dt.datetime.fromisoformat(at):%m/%d %H:%M}" for at in series["next_occurrences"][:2]
    )
    print(
        f"定期配信 {series['id']}「{series['title']}」{series['rule_text']} を承認しました"
        f"（次回 {upcoming}）",
        flush=True,
    )
    occurrences = await wait_occurrences(author, int(series["id"]), 2, within)
    for view in occurrences:
        print(_line(view), flush=True)
    _require(await author.post(f"/v1/series/{series['id']}/end", {}), 200, "end the series")
    print(f"定期配信 {series['id']} を終了しました", flush=True)
    sent = [v for v in [card, *occurrences] if v.get("status") == "sent" and v.get("sent_count")]
    return len(occurrences) == 2 and len(sent) == 3
