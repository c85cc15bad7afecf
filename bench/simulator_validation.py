"""Request validation in the simulator: our discriminator-aware jsonschema validator (with its
per-message-set cache) against openapi-core's full request validation.

Anchor: openapi-core. It is faster per uncached body but ignores OpenAPI `discriminator`, so it
accepts bodies LINE rejects (a text message without text, an unknown message type, postback
data over 300 characters); the script checks that too.

    .venv/bin/python bench/simulator_validation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from kairand.simulator.spec import _load, messaging_spec
from kairand.simulator.survey_bot import SurveyBot

INVALID = [
    [{"type": "text"}],
    [{"type": "bogus"}],
    [
        {
            "type": "text",
            "text": "a",
            "quickReply": {
                "items": [
                    {
                        "type": "action",
                        "action": {"type": "postback", "label": "a", "data": "x" * 301},
                    }
                ]
            },
        }
    ],
]


def request(body: dict) -> MockRequest:
    return MockRequest(
        "https://api.line.me",
        "post",
        "/v2/bot/message/reply",
        data=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer t"},
    )


def per_call_ms(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1000


def main(quick: bool) -> int:
    n = 30 if quick else 300
    bot = SurveyBot("", "t", "s", ("北地区", "南地区", "中央地区"))
    body = {"replyToken": "x" * 32, "messages": bot._topics({"topics": []})}  # 7 quick replies
    api = OpenAPI.from_dict(_load("messaging-api.yml"))
    spec = messaging_spec()
    core_ms = per_call_ms(lambda: api.validate_request(request(body)), n)
    ours_ms = per_call_ms(lambda: spec._validate_now("ReplyMessageRequest", body), n)
    cached_ms = per_call_ms(
        lambda: spec.validate("ReplyMessageRequest", body, ("replyToken",)), n * 20
    )
    core_missed = 0
    ours_missed = 0
    for messages in INVALID:
        bad = {"replyToken": "x", "messages": messages}
        try:
            api.validate_request(request(bad))
            core_missed += 1
        except Exception:  # noqa: S110 - any validation error counts as caught
            pass
        ours_missed += not spec.validate("ReplyMessageRequest", bad)
    print(
        f"reply with 7 quick-reply items: openapi-core {core_ms:.2f} ms, ours uncached "
        f"{ours_ms:.2f} ms ({ours_ms / core_ms:.2f}x), ours cached {cached_ms:.3f} ms "
        f"({cached_ms / core_ms:.3f}x)"
    )
    print(
        f"invalid bodies accepted: openapi-core {core_missed}/{len(INVALID)}, "
        f"ours {ours_missed}/{len(INVALID)}"
    )
    print(
        f"BENCH simulator_validation openapi_core_ms={core_ms:.2f} ours_uncached_ms={ours_ms:.2f} "
        f"ours_cached_ms={cached_ms:.3f} cached_over_openapi_core={cached_ms / core_ms:.3f} "
        f"openapi_core_missed={core_missed} ours_missed={ours_missed}"
    )
    return 0 if ours_missed == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    sys.exit(main(parser.parse_args().quick))
