"""Webhook event → the few facts the conversation needs. Pure and tolerant: LINE adds fields,
event types and enum values without notice, so anything unknown becomes kind "other"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MEDIA_TYPES = frozenset({"image", "video", "audio", "file", "location", "sticker"})


@dataclass(frozen=True)
class Event:
    kind: str
    """follow | unfollow | text | media | postback | other"""
    user_id: str | None
    timestamp: int
    reply_token: str | None = None
    standby: bool = False
    text: str = ""
    data: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_event(raw: Mapping[str, Any]) -> Event:
    """Read one webhook event object. Never raises on unexpected shapes."""
    source = raw.get("source")
    user_id = None
    if isinstance(source, Mapping) and source.get("type") == "user":
        user_id = _str(source.get("userId")) or None
    timestamp = raw.get("timestamp")
    ts = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0
    token = _str(raw.get("replyToken")) or None
    standby = raw.get("mode") == "standby"
    event_type = raw.get("type")
    base = Event(kind="other", user_id=user_id, timestamp=ts, reply_token=token, standby=standby)
    if user_id is None:
        return base  # groups and rooms are not part of Kairan
    if event_type in ("follow", "unfollow"):
        return replace(base, kind=str(event_type))
    if event_type == "message":
        message = raw.get("message")
        if isinstance(message, Mapping):
            if message.get("type") == "text":
                return replace(base, kind="text", text=_str(message.get("text")))
            if message.get("type") in MEDIA_TYPES:
                return replace(base, kind="media")
        return base
    if event_type == "postback":
        postback = raw.get("postback")
        if isinstance(postback, Mapping):
            params = postback.get("params")
            clean = (
                {k: v for k, v in params.items() if isinstance(k, str) and isinstance(v, str)}
                if isinstance(params, Mapping)
                else {}
            )
            return replace(base, kind="postback", data=_str(postback.get("data")), params=clean)
    return base
