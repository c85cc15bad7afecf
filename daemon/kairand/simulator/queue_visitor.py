"""How a synthetic resident uses the same-day queue — pure, no I/O, nothing of Kairan's formats.

The resident reads the messages the way a person does: when asked 「どちらの窓口の番号札を
お取りしますか」 they tap the quick reply whose label is the service they came for; when told
their number they remember it; when 「まもなく順番です」 arrives they check the order once; when
called (「…番窓口へお越しください」) they go — or, for a no-show, never come. A walk-in at the kiosk
"scans" the ticket's QR code: the LINE link's pre-filled text is sent as a message.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from kairand.simulator.behaviour import Action

MARKERS = (
    "番号札の窓口",
    "どちらの窓口の番号札",
    "番号札をお取りしました",
    "番号札をLINEと連携しました",
    "まもなく順番です",
    "窓口へお越しください",
    "番号札を取り消",
    "すでに番号札",
    "本日お取りの番号札",
    "番号札の受付時間",
    "この番号札のQRコード",
)
_LABEL = re.compile(r"([A-Z]-\d{3,})")


@dataclass(frozen=True)
class Visit:
    service_hint: str = ""
    """Part of the service name they came for (empty: the first offered)."""
    no_show: bool = False
    label: str = ""
    called: bool = False
    checked: bool = False


def plan_for(rng: random.Random, services: tuple[str, ...] = ()) -> Visit:
    return Visit(service_hint=rng.choice(services) if services else "", no_show=rng.random() < 0.1)


def is_queue_message(messages: list[dict[str, Any]]) -> bool:
    text = "\n".join(str(m.get("text", "")) for m in messages)
    return any(marker in text for marker in MARKERS) or _LABEL.search(text) is not None


def _items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i["action"]
        for m in messages
        for i in (m.get("quickReply") or {}).get("items", [])
        if isinstance(i.get("action"), dict)
    ]


def react(
    visit: Visit, messages: list[dict[str, Any]], rng: random.Random
) -> tuple[Action | None, Visit]:
    """What the resident does after MESSAGES, and what they remember."""
    text = "\n".join(str(m.get("text", "")) for m in messages)
    if "どちらの窓口の番号札" in text:
        choices = [a for a in _items(messages) if a.get("type") == "postback"]
        if not choices:
            return None, visit
        wanted = [a for a in choices if visit.service_hint and visit.service_hint in a["label"]]
        pick = (wanted or choices)[0] if visit.service_hint else rng.choice(choices)
        return Action("postback", data=pick["data"]), visit
    found = _LABEL.search(text)
    if ("番号札をお取りしました" in text or "連携しました" in text) and found:
        return None, replace(visit, label=found.group(1))
    if "まもなく順番です" in text and not visit.checked:
        return Action("text", text="順番を確認"), replace(visit, checked=True)
    if "窓口へお越しください" in text:
        return None, replace(visit, called=True)
    return None, visit


def text_of_qr(url: str) -> str:
    """The message a phone's LINE app pre-fills from a `line.me/R/oaMessage/{id}/?{text}` QR
    code (what the resident then sends)."""
    parts = urlsplit(url)
    if parts.netloc != "line.me" or not parts.path.startswith("/R/oaMessage/"):
        raise ValueError("not a LINE oaMessage link")
    return unquote(parts.query)
