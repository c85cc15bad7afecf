"""What LINE's answers mean: one place that knows the Messaging API's error statuses (like
line-bot-sdk keeps its ApiException in one layer). The sender, the approval route and the
retention notices act on the verdict; none of them parses LINE's errors itself.

LINE_FACTS: retry only on 5xx or a timeout; 409 with x-line-accepted-request-id means the
retry key was already accepted (the message went out); 429 is either the rate limit or the
monthly limit ("monthly limit" in the message).
"""

from __future__ import annotations

import contextlib
import json
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


def _message(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return body[:200]
        if isinstance(data, dict):
            return str(data.get("message", ""))[:200]
    return ""


def classify(exc: BaseException) -> Verdict:
    """What a failed multicast means (LINE_FACTS: retry only on 5xx or timeout)."""
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
        return Verdict("failed", f"HTTP {status} {message}".strip())
    if isinstance(exc, TimeoutError | aiohttp.ClientError | ConnectionError):
        return Verdict("retry", type(exc).__name__)
    raise exc


def safe_classify(exc: BaseException) -> Verdict:
    """classify(), but an unexpected client error means retry (never drop the batch)."""
    try:
        return classify(exc)
    except Exception as other:  # an unexpected client error: retry, never drop the batch
        return Verdict("retry", type(other).__name__)
