"""Token buckets, seeded faults, LINE's signature, and the spec validator."""

from __future__ import annotations

import copy
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairand.simulator import limits
from kairand.simulator.api import image_size
from kairand.simulator.clock import ManualClock
from kairand.simulator.faults import FaultInjector, FaultKind, FaultProfile
from kairand.simulator.ratelimit import RateLimiter, TokenBucket
from kairand.simulator.spec import Spec, messaging_spec, webhook_spec
from kairand.simulator.webhook import EventFactory, sign


def test_signature_matches_lines_published_vector() -> None:
    """S5: x-line-signature = base64 HMAC-SHA256 of the raw body (LINE's test vector)."""
    body = b'{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    assert sign("8c570fa6dd201bb328f1c1eac23a96d8", body) == (
        "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="
    )


@pytest.mark.parametrize("rate", [200.0, 2000.0, 7.5])
def test_token_bucket_rate_is_exact_in_simulated_time(rate: float) -> None:
    """S5: under constant demand the bucket grants `rate` tokens/s within 5% (deterministic,
    injected clock; the initial burst of `capacity` tokens is not counted)."""
    clock = ManualClock()
    start = clock.now()
    bucket = TokenBucket(rate, capacity=rate, clock=clock)
    while bucket.try_take():
        pass  # the initial burst
    granted = 0
    jitter = random.Random(7)
    for _ in range(4000):  # ~10 s of simulated time in small, uneven steps
        clock.advance(10.0 / 4000 * jitter.uniform(0.5, 1.5))
        while bucket.try_take():
            granted += 1
    measured = granted / (clock.now() - start)
    assert abs(measured - rate) / rate < 0.05


def test_limiter_defaults_are_lines_and_groups_are_independent() -> None:
    """S5: multicast 200/s, push 2000/s; exhausting one group leaves the other untouched."""
    clock = ManualClock()
    limiter = RateLimiter(clock)
    multicast = sum(limiter.allow("multicast") for _ in range(1000))
    push = sum(limiter.allow("push") for _ in range(5000))
    assert (multicast, push) == (200, 2000)
    clock.advance(0.5)
    assert sum(limiter.allow("multicast") for _ in range(1000)) == 100


def test_seeded_faults_reproduce_and_follow_ratios() -> None:
    """S5: the same seed gives the same fault sequence; ratios hold over many requests."""
    profile = FaultProfile(
        latency_min_ms=50,
        latency_max_ms=150,
        error_ratio=0.1,
        timeout_ratio=0.05,
        lost_ratio=0.05,
        seed=42,
    )
    a = [FaultInjector(profile).decide() for _ in range(1)]
    one, two = FaultInjector(profile), FaultInjector(profile)
    seq1 = [one.decide() for _ in range(4000)]
    seq2 = [two.decide() for _ in range(4000)]
    assert seq1 == seq2 and seq1[0] == a[0]
    kinds = [d.kind for d in seq1]
    assert abs(kinds.count(FaultKind.ERROR) / 4000 - 0.1) < 0.02
    assert abs(kinds.count(FaultKind.LOST) / 4000 - 0.05) < 0.015
    assert all(0.05 <= d.latency_s <= 0.15 for d in seq1)
    other = FaultInjector(FaultProfile(error_ratio=0.1, seed=43))
    assert [other.decide() for _ in range(100)] != seq1[:100]


def test_fault_profile_rejects_impossible_ratios() -> None:
    """S5: bad fault settings fail loudly."""
    with pytest.raises(ValueError, match="ratios"):
        FaultProfile(error_ratio=0.7, lost_ratio=0.5)


def test_validator_reports_line_style_details() -> None:
    """S5: invalid requests get LINE's property paths (messages[0].text, to)."""
    details = messaging_spec().validate(
        "PushMessageRequest",
        {"to": 5, "messages": [{"type": "text"}, {"type": "nope"}] * 3},
    )
    props = {d.property for d in details}
    assert {"to", "messages", "messages[0].text", "messages[1].type"} <= props


def test_cached_validation_still_checks_volatile_keys() -> None:
    """S5: caching the message part never hides an invalid recipient list."""
    spec = messaging_spec()
    good = {"to": ["U" + "a" * 32], "messages": [{"type": "text", "text": "x"}]}
    assert spec.validate("MulticastRequest", good, ("to",)) == []
    bad = {**good, "to": ["U" + "a" * 32] * 501}
    assert [d.property for d in spec.validate("MulticastRequest", bad, ("to",))] == ["to"]


def test_factory_events_validate_against_webhook_yml() -> None:
    """S5: every event type the simulator emits is complete per LINE's webhook.yml."""
    factory = EventFactory(ManualClock(), seed=1)
    uid = "U" + "1" * 32
    events = [
        factory.follow(uid, "t1"),
        factory.follow(uid, "t2", unblocked=True),
        factory.unfollow(uid),
        factory.text(uid, "t3", "こんにちは"),
        factory.postback(uid, "t4", "q=1"),
        factory.postback(uid, "t5", "q=birth", {"date": "1980-01-02"}),
    ]
    body = {"destination": "U" + "2" * 32, "events": events}
    assert webhook_spec().validate("CallbackRequest", body) == []
    broken = {**body, "events": [{k: v for k, v in events[0].items() if k != "follow"}]}
    assert webhook_spec().validate("CallbackRequest", broken) != []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "to",
                    "messages",
                    "type",
                    "text",
                    "quickReply",
                    "items",
                    "action",
                    "label",
                    "data",
                    "replyToken",
                    "areas",
                    "size",
                    "width",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(body=json_values)
def test_validation_never_crashes_on_arbitrary_json(body: object) -> None:
    """S5: whatever JSON arrives, validation answers with details (a 400), never an exception
    (which would be a 500 LINE never gives for a bad body)."""
    spec = messaging_spec()
    for schema in ("PushMessageRequest", "MulticastRequest", "ReplyMessageRequest"):
        details = spec.validate(schema, body, ("replyToken", "to"))
        assert all(d.message for d in details)
        if not details:
            assert isinstance(body, dict)
    messages = body.get("messages") if isinstance(body, dict) else body
    limits.message_details(messages)
    limits.recipient_details(body.get("to") if isinstance(body, dict) else body)
    limits.rich_menu_details(body)


def test_image_size_reads_png_and_jpeg_headers() -> None:
    """S5: rich-menu images are checked against the menu size, for PNG and JPEG."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + struct.pack(">II", 2500, 843) + b"\x08"
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 1686, 2500) + b"\x03" + b"\x00" * 9
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x10" + b"JFIF\x00" + b"\x00" * 9 + sof + b"\xff\xd9"
    assert image_size(png, "image/png") == (2500, 843)
    assert image_size(jpeg, "image/jpeg") == (2500, 1686)
    assert image_size(png, "image/jpeg") is None
    assert image_size(b"GIF89a", "image/png") is None


def _valid_reply_bodies() -> list[dict[str, object]]:
    """Replies like the dialogues' (buttons, a date picker, a card, a sticker), all valid."""
    action = {
        "type": "postback",
        "label": "9:30（残り2）",
        "data": "rsv=t&s=a",
        "displayText": "9:30",
    }
    picker = {
        "type": "datetimepicker",
        "label": "カレンダーで選ぶ",
        "data": "rsv=date",
        "mode": "date",
        "initial": "2026-12-04",
        "min": "2026-12-02",
        "max": "2027-01-31",
    }
    quick = {"items": [{"type": "action", "action": a} for a in (action, picker)]}
    bubble = {
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [{"type": "text", "text": "予約番号：123456", "wrap": True}],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {
                    "type": "button",
                    "action": {"type": "uri", "label": "詳しく", "uri": "https://example.jp/"},
                }
            ],
        },
    }
    messages: list[list[dict[str, object]]] = [
        [{"type": "text", "text": "空いている時間を選んでください。", "quickReply": quick}],
        [
            {"type": "text", "text": "予約を受け付けました。"},
            {"type": "flex", "altText": "予約", "contents": bubble},
        ],
        [{"type": "sticker", "packageId": "446", "stickerId": "1988"}],
        [
            {
                "type": "template",
                "altText": "確認",
                "template": {
                    "type": "confirm",
                    "text": "取り消しますか",
                    "actions": [action, action],
                },
            }
        ],
    ]
    return [{"replyToken": "r" * 32, "messages": m} for m in messages]


def _paths(value: object, at: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _broken(data: st.DataObject, bodies: list[Any], values: st.SearchStrategy[Any]) -> Any:
    """One of BODIES with 1-3 of its parts deleted or replaced by a drawn value."""
    body: Any = copy.deepcopy(data.draw(st.sampled_from(bodies)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(body)[1:]))
        parent: Any = body
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
        if not _paths(body)[1:]:
            break
    return body


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_remembering_valid_objects_never_hides_an_error(data: st.DataObject) -> None:
    """S5: the validator remembers objects it found valid (booking replies repeat most of their
    buttons); a body with any part broken gets exactly the details a validator without that
    memory reports, after the memory has seen the valid originals."""
    spec = messaging_spec()
    plain = Spec(spec.document, memo=False)
    bodies = _valid_reply_bodies()
    for original in bodies:
        assert plain.validate("ReplyMessageRequest", original) == []
        assert spec.validate("ReplyMessageRequest", original, ("replyToken", "to")) == []
    body = _broken(data, bodies, json_values | st.text(min_size=301, max_size=310))
    expected = plain.validate("ReplyMessageRequest", body)
    assert spec.validate("ReplyMessageRequest", body) == expected
    assert spec.validate("ReplyMessageRequest", body, ("replyToken", "to")) == plain.validate(
        "ReplyMessageRequest", body, ("replyToken", "to")
    )


_user_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(lambda h: "U" + h)
_to_values = st.one_of(
    st.lists(_user_ids, min_size=0, max_size=510),
    st.lists(st.one_of(_user_ids, json_values), max_size=20),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(to=_to_values)
def test_the_recipient_fast_path_reports_what_full_validation_reports(to: Any) -> None:
    """S5: a multicast's `to` (500 ids) is checked by a plain loop when it is a list of
    strings within bounds; every value gets the same details as validating the whole body
    with jsonschema, including 0 or 501 ids and non-string items."""
    spec = messaging_spec()
    plain = Spec(spec.document, memo=False)
    body = {"to": to, "messages": [{"type": "text", "text": "お知らせ"}]}
    expected = plain.validate("MulticastRequest", body)
    assert sorted(spec.validate("MulticastRequest", body, ("to",)), key=str) == sorted(
        expected, key=str
    )
    assert (expected == []) == (
        isinstance(to, list) and 1 <= len(to) <= 500 and all(isinstance(u, str) for u in to)
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_plainly_valid_shortcut_only_passes_bodies_jsonschema_passes(
    data: st.DataObject,
) -> None:
    """S5: bodies the simulator finds plainly valid skip jsonschema. Every body it lets through
    (the dialogues' replies, and those with any part broken or replaced by arbitrary JSON)
    gets no detail from full validation, and the valid originals do take the shortcut."""
    spec = messaging_spec()
    plain = Spec(spec.document, memo=False)
    bodies = _valid_reply_bodies()
    assert all(spec._surely_valid("ReplyMessageRequest", b) for b in bodies)
    body = _broken(
        data,
        bodies,
        json_values
        | st.text(min_size=301, max_size=310)
        | st.sampled_from([True, 1.0, -1, 2**40, "", "postback", "datetimepicker"]),
    )
    if spec._surely_valid("ReplyMessageRequest", body):
        assert plain.validate("ReplyMessageRequest", body) == []
