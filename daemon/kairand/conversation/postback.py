"""Postback data: `a=ACTION&v=SURVEY_VERSION&q=QUESTION&o=OPTION&p=PAGE` (≤ 300 characters).

The survey version and question code travel with every answer so a button from an old message
(or forged data) is recognised and answered politely instead of being stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_DATA = 300
ACTIONS = frozenset(
    {
        "start",  # begin registration (someone without a record)
        "consent",  # o=yes|no
        "ans",  # choice answer, o=option code or "skip"
        "page",  # p=page number of a long question
        "tog",  # multi-select toggle, o=option code
        "done",  # multi-select finished
        "year",  # datetime picker answer (params.date), or o=skip
        "settings",  # 設定を変更 (rich menu)
        "restart",
        "edit",  # q=question to change
        "stop",
        "resume",
        "del",  # 登録情報を削除: ask for confirmation
        "delok",
        "delno",
    }
)
_VALUE_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_KEYS = frozenset({"a", "v", "q", "o", "p"})


@dataclass(frozen=True)
class Postback:
    action: str
    version: int | None = None
    question: str = ""
    option: str = ""
    page: int = 0


def encode(
    action: str, version: int | None = None, question: str = "", option: str = "", page: int = 0
) -> str:
    parts = [f"a={action}"]
    if version is not None:
        parts.append(f"v={version}")
    if question:
        parts.append(f"q={question}")
    if option:
        parts.append(f"o={option}")
    if page:
        parts.append(f"p={page}")
    data = "&".join(parts)
    assert len(data) <= MAX_DATA
    return data


def decode(data: str) -> Postback | None:
    """The postback, or None when the data is not something Kairan could have sent."""
    if not data or len(data) > MAX_DATA:
        return None
    fields: dict[str, str] = {}
    for part in data.split("&"):
        key, sep, value = part.partition("=")
        if not sep or key not in _KEYS or key in fields or not _VALUE_RE.match(value):
            return None
        fields[key] = value
    action = fields.get("a", "")
    if action not in ACTIONS:
        return None
    try:
        version = int(fields["v"]) if "v" in fields else None
        page = int(fields.get("p", "0"))
    except ValueError:
        return None
    if page < 0 or page > 100:
        return None
    return Postback(action, version, fields.get("q", ""), fields.get("o", ""), page)
