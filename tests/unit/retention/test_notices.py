"""A re-registration notice acts on kairand.line.errors' reading of LINE's answers (the same as
for deliveries); what it does differs from the sender on a 429 and a 409 without an id."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from linebot.v3.messaging import ApiException

from kairand.line.client import LineApi
from kairand.retention import notices

pytestmark = pytest.mark.req("K2")

PENDING = notices.Pending(resident_id=1, cycle="2026", retry_key="k", text="ご案内")


class Answers:
    """The Messaging API's push_message, answering with one given exception (or success)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.retry_keys: list[str] = []

    async def push_message(self, request: Any, *, x_line_retry_key: str, **_: Any) -> None:
        self.retry_keys.append(x_line_retry_key)
        if self.error is not None:
            raise self.error


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=status, reason="x")
    exc.body = json.dumps({"message": message}).encode()
    exc.headers = headers or {}
    return exc


async def push(error: BaseException | None) -> str:
    answers = Answers(error)
    line = LineApi(messaging=answers, blob=None, timeout=1.0)
    state = await notices._push(line, "U" + "0" * 32, PENDING)
    assert answers.retry_keys == ["k"]  # the stored retry key, every time
    return state


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (None, "sent"),
        (api_error(409, "accepted", {"x-line-accepted-request-id": "r1"}), "sent"),
        # No accepted request id (LINE still processing the key): the sender would retry
        # within seconds; a notice would retry a day later, perhaps after LINE forgot the key.
        (api_error(409, "conflict"), "sent"),
        (api_error(429, "The API rate limit has been exceeded. Try again later."), "retry"),
        (api_error(429, "You have reached your monthly limit."), "retry"),
        (api_error(500, "boom"), "retry"),
        (api_error(400, "The request body has 1 error(s)"), "failed"),
        (api_error(403, "forbidden"), "failed"),
        (aiohttp.ClientConnectionError(), "retry"),
        (TimeoutError(), "retry"),
    ],
)
async def test_a_notice_acts_on_the_line_verdict(error: BaseException | None, state: str) -> None:
    assert await push(error) == state


async def test_an_unexpected_error_is_not_taken_for_a_line_answer() -> None:
    """Unlike the sender (safe_classify), a notice lets a non-LINE error propagate: the notice
    stays reserved with its key and the next run retries it."""
    with pytest.raises(ValueError):
        await push(ValueError("a bug"))


def test_every_verdict_has_a_notice_state() -> None:
    assert set(notices.NOTICE_STATE.values()) == {"sent", "retry", "failed"}
    assert set(notices.NOTICE_STATE) == {"sent", "retry", "rate", "quota", "failed"}
