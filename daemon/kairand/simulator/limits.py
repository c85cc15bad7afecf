"""LINE's limits that the OpenAPI spec does not encode (docs/line-facts.md "Message limits")."""

from __future__ import annotations

import json
import re
from typing import Any

from kairand.simulator.spec import ErrorDetail

USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
MAX_TEXT_UTF16 = 5000
MAX_QUICK_REPLY_ITEMS = 13
MAX_LABEL = 20
MAX_POSTBACK_DATA = 300
MAX_DISPLAY_TEXT = 300
MAX_ALT_TEXT = 1500
MAX_URI = 1000
MAX_BUBBLE_BYTES = 30 * 1024
MAX_IMAGE_URL = 2000


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _action_details(action: Any, where: str) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    if not isinstance(action, dict):
        return out
    label = action.get("label")
    if isinstance(label, str) and len(label) > MAX_LABEL:
        out.append(ErrorDetail(f"Length must be between 0 and {MAX_LABEL}", f"{where}.label"))
    for key, limit in (("data", MAX_POSTBACK_DATA), ("displayText", MAX_DISPLAY_TEXT)):
        value = action.get(key)
        if isinstance(value, str) and len(value) > limit:
            out.append(ErrorDetail(f"Length must be between 0 and {limit}", f"{where}.{key}"))
    if action.get("type") in ("postback", "datetimepicker") and "data" not in action:
        out.append(ErrorDetail("Must not be null", f"{where}.data"))
    if action.get("type") == "datetimepicker" and "mode" not in action:
        out.append(ErrorDetail("Must not be null", f"{where}.mode"))
    uri = action.get("uri")
    if action.get("type") == "uri":
        if not isinstance(uri, str) or not uri:
            out.append(ErrorDetail("Must not be null", f"{where}.uri"))
        elif len(uri) > MAX_URI:
            out.append(ErrorDetail(f"Length must be between 0 and {MAX_URI}", f"{where}.uri"))
        elif not uri.startswith(("https://", "http://", "line://", "tel:")):
            out.append(ErrorDetail("Invalid uri scheme", f"{where}.uri"))
    return out


def _flex_actions(node: Any, where: str) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    if isinstance(node, dict):
        if isinstance(node.get("action"), dict):
            out += _action_details(node["action"], f"{where}.action")
        if node.get("type") == "text" and node.get("text") == "":
            out.append(ErrorDetail("May not be empty", f"{where}.text"))
        for key, value in node.items():
            if key != "action" and isinstance(value, dict | list):
                out += _flex_actions(value, f"{where}.{key}")
    elif isinstance(node, list):
        for j, value in enumerate(node):
            out += _flex_actions(value, f"{where}[{j}]")
    return out


def message_details(messages: Any) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    if not isinstance(messages, list):
        return out
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        where = f"messages[{i}]"
        text = message.get("text")
        if message.get("type") == "text" and isinstance(text, str):
            if not text:
                out.append(ErrorDetail("May not be empty", f"{where}.text"))
            elif utf16_length(text) > MAX_TEXT_UTF16:
                out.append(
                    ErrorDetail(f"Length must be between 0 and {MAX_TEXT_UTF16}", f"{where}.text")
                )
        alt = message.get("altText")
        if isinstance(alt, str) and len(alt) > MAX_ALT_TEXT:
            out.append(
                ErrorDetail(f"Length must be between 0 and {MAX_ALT_TEXT}", f"{where}.altText")
            )
        quick = message.get("quickReply")
        if quick is not None:
            if i != len(messages) - 1:
                out.append(
                    ErrorDetail(
                        "Quick reply may only be set on the last message", f"{where}.quickReply"
                    )
                )
            items = quick.get("items") if isinstance(quick, dict) else None
            if isinstance(items, list):
                if not 1 <= len(items) <= MAX_QUICK_REPLY_ITEMS:
                    out.append(
                        ErrorDetail(
                            f"Size must be between 1 and {MAX_QUICK_REPLY_ITEMS}",
                            f"{where}.quickReply.items",
                        )
                    )
                for j, item in enumerate(items):
                    if isinstance(item, dict):
                        out += _action_details(
                            item.get("action"), f"{where}.quickReply.items[{j}].action"
                        )
        if message.get("type") == "flex":
            contents = message.get("contents")
            size = len(json.dumps(contents, ensure_ascii=False).encode())
            bubble = isinstance(contents, dict) and contents.get("type") == "bubble"
            if bubble and size > MAX_BUBBLE_BYTES:
                out.append(ErrorDetail("A bubble must be 30 KB or less", f"{where}.contents"))
            out += _flex_actions(contents, f"{where}.contents")
        for key in ("originalContentUrl", "previewImageUrl"):
            url = message.get(key)
            if isinstance(url, str) and len(url) > MAX_IMAGE_URL:
                out.append(
                    ErrorDetail(f"Length must be between 0 and {MAX_IMAGE_URL}", f"{where}.{key}")
                )
        template = message.get("template")
        if isinstance(template, dict):
            for j, action in enumerate(template.get("actions") or []):
                out += _action_details(action, f"{where}.template.actions[{j}]")
    return out


def recipient_details(to: Any, where: str = "to") -> list[ErrorDetail]:
    if isinstance(to, str):
        return [] if USER_ID_RE.match(to) else [ErrorDetail("Invalid user ID", where)]
    if isinstance(to, list):
        return [
            ErrorDetail("Invalid user ID", f"{where}[{i}]")
            for i, uid in enumerate(to)
            if not (isinstance(uid, str) and USER_ID_RE.match(uid))
        ]
    return []


def rich_menu_details(body: Any) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    if not isinstance(body, dict):
        return out
    for key in ("size", "selected", "name", "chatBarText", "areas"):
        if key not in body:
            out.append(ErrorDetail("Must not be null", key))
    size = body.get("size")
    if not isinstance(size, dict):
        size = {}
    width, height = size.get("width"), size.get("height")
    if (
        isinstance(width, int)
        and isinstance(height, int)
        and not (800 <= width <= 2500 and height >= 250 and width / height >= 1.45)
    ):
        out.append(
            ErrorDetail("Width must be 800-2500, height >= 250, width/height >= 1.45", "size")
        )
    areas = body.get("areas")
    if isinstance(areas, list):
        if len(areas) > 20:
            out.append(ErrorDetail("Size must be between 0 and 20", "areas"))
        for i, area in enumerate(areas):
            if isinstance(area, dict):
                out += _action_details(area.get("action"), f"areas[{i}].action")
    return out
