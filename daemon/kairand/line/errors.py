"""What LINE's answers mean: one place that knows the Messaging API's error statuses (like
line-bot-sdk keeps its ApiException in one layer). The sender, the approval route and the
retention notices act on the verdict; none of them parses LINE's errors itself.

docs/line-facts.md: retry only on 5xx or a timeout; 409 with x-line-accepted-request-id means the
retry key was already accepted (the message went out); 429 is either the rate limit or the
monthly limit ("monthly limit" in the message).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from linebot.v3.messaging import ApiException

MONTHLY_LIMIT = "monthly limit"

LINE_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError)
"""What a Messaging API call raises when LINE cannot be reached or answers with an error."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    """sent | retry | rate | quota | failed"""
    detail: str = ""
    accepted_request_id: str | None = None
    recipients_refused: bool = False
    """A 400 that refused the whole request because of its recipients (an invalid user id):
    nothing was sent and the key was not accepted, so the other recipients can be sent alone."""
    refused_indexes: tuple[int, ...] = ()
    """The positions in `to` LINE named (`details[].property` "to[3]"), when it named them."""


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    with contextlib.suppress(Exception):
        value = headers.get(name)
        if value is not None:
            return str(value)
    with contextlib.suppress(Exception):
        for key, value in headers.items():
            if str(key).lower() == name:
                return str(value)
    return None


_TO_PROPERTY = re.compile(r"^to(?:\[(\d+)\])?$")
_ABOUT_RECIPIENTS = re.compile(r"\buser ?id\b|'to'|\bto\[|\bto\b field", re.IGNORECASE)


def _recipient_refusal(body: Any) -> tuple[bool, tuple[int, ...]]:
    """Whether a 400 body blames the recipients, and the positions it names."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    data: Any = None
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            data = json.loads(body)
    if not isinstance(data, dict):
        return False, ()
    indexes: list[int] = []
    about = False
    details = data.get("details")
    for detail in details if isinstance(details, list) else []:
        prop = detail.get("property") if isinstance(detail, dict) else None
        match = _TO_PROPERTY.match(prop) if isinstance(prop, str) else None
        if match:
            about = True
            if match.group(1) is not None:
                indexes.append(int(match.group(1)))
        elif isinstance(prop, str) and prop:
            return False, ()  # something else is wrong too: not only the recipients
    if not about and not details:
        about = bool(_ABOUT_RECIPIENTS.search(str(data.get("message", ""))))
    return about, tuple(sorted(set(indexes)))


def _message(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return body[:200]
        if isinstance(data, dict):
            message = str(data.get("message", ""))
            details = data.get("details")
            if isinstance(details, list) and details and isinstance(details[0], dict):
                # LINE names the offending property (e.g. an image it could not fetch).
                first = details[0]
                message += f" ({first.get('property', '')}: {first.get('message', '')})"
            return message[:300]
    return ""


def classify(exc: BaseException) -> Verdict:
    """What a failed multicast means (docs/line-facts.md: retry only on 5xx or timeout)."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _message(exc.body)
        if status == 409:
            accepted = _header(exc.headers, "x-line-accepted-request-id")
            if accepted:
                return Verdict("sent", "409 retry key already accepted", accepted)
            # e.g. the same key still being processed: not a refusal, ask again later.
            return Verdict("retry", f"HTTP 409 {message}".strip())
        if status == 429:
            if MONTHLY_LIMIT in message.lower():
                return Verdict("quota", message or "monthly limit reached")
            return Verdict("rate", message or "rate limit")
        if status >= 500:
            return Verdict("retry", f"HTTP {status}")
        about, indexes = _recipient_refusal(exc.body) if status == 400 else (False, ())
        return Verdict(
            "failed",
            f"HTTP {status} {message}".strip(),
            recipients_refused=about,
            refused_indexes=indexes,
        )
    if isinstance(exc, TimeoutError | aiohttp.ClientError | ConnectionError):
        return Verdict("retry", type(exc).__name__)
    raise exc


def retry_key_held(exc: BaseException) -> bool:
    """Whether LINE answered 409 to a request with a retry key: it holds a request with that
    key, accepted (with x-line-accepted-request-id) or still being processed. classify() says
    "retry" for the second case, right for a caller that retries within seconds."""
    return isinstance(exc, ApiException) and exc.status == 409


def safe_classify(exc: BaseException) -> Verdict:
    """classify(), but an unexpected client error means retry (never drop the batch)."""
    try:
        return classify(exc)
    except Exception as other:  # an unexpected client error: retry, never drop the batch
        return Verdict("retry", type(other).__name__)
