"""Bad input: unknown fields, wrong types, oversized bodies, invalid filters, messages over
LINE's limits → 4xx problem+json naming the field; never a 500, never a partial write (G3, S8)."""

from __future__ import annotations

import asyncio

import pytest

from kairand.api.client import ApiClient
from kairand.config import Config
from kairand.store.database import Store
from tests.support.api_helpers import count

DRAFT = {
    "title": "健診のお知らせ",
    "confidentiality": 1,
    "messages": ["特定健診の受付を開始しました。"],
    "segment": {"conditions": [{"question": "area", "any_of": ["honmachi"]}]},
}

CASES = [
    ("unknown field", {**DRAFT, "colour": "red"}, 422, "colour"),
    ("wrong type", {**DRAFT, "title": 5}, 422, "title"),
    ("missing field", {k: v for k, v in DRAFT.items() if k != "messages"}, 422, "messages"),
    ("too many messages", {**DRAFT, "messages": ["a"] * 6}, 422, "messages"),
    ("message over 5,000 UTF-16 units", {**DRAFT, "messages": ["😀" * 2501]}, 422, "messages"),
    ("empty segment", {**DRAFT, "segment": {}}, 422, "segment"),
    (
        "unknown question",
        {**DRAFT, "segment": {"conditions": [{"question": "income", "any_of": ["high"]}]}},
        422,
        "segment.conditions.0.question",
    ),
    (
        "unknown option",
        {**DRAFT, "segment": {"conditions": [{"question": "area", "any_of": ["mars"]}]}},
        422,
        "segment.conditions.0.any_of.0",
    ),
    ("confidentiality 3", {**DRAFT, "confidentiality": 3}, 422, "confidentiality"),
    ("not an object", ["a list"], 422, "body"),
]


@pytest.mark.parametrize(("name", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_draft_is_refused_naming_the_field(
    api: ApiClient, store: Store, name: str, body: object, status: int, field: str
) -> None:
    """G3, S8: each invalid draft is answered with a problem naming FIELD; nothing is stored."""
    before = count(store, "deliveries")
    r = await api.as_user("aut").post("/v1/deliveries", body)
    assert r.status == status, r.body
    assert r.content_type == "application/problem+json"
    assert r.body["field"] == field, r.body
    assert r.body["title"] and r.body["detail"]
    assert count(store, "deliveries") == before


CONTROL_CASES = [
    ("NUL in title", {**DRAFT, "title": "健診\x00"}, "title"),
    ("newline in title", {**DRAFT, "title": "健診\nのお知らせ"}, "title"),
    ("NUL in a message", {**DRAFT, "messages": ["本文", "受付\x00開始"]}, "messages.1"),
    ("escape in a message", {**DRAFT, "messages": ["\x1b[31m赤"]}, "messages.0"),
    ("C1 control in a message", {**DRAFT, "messages": ["受付\x85開始"]}, "messages.0"),
    ("lone surrogate in a message", {**DRAFT, "messages": ["受付\ud800"]}, "messages.0"),
]


def card(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"kind": "card", "title": "健診のご案内", "body": "受付中です。"}
    return {**DRAFT, "messages": [base | fields]}


STICKER = {"kind": "sticker", "package_id": "11537", "sticker_id": "52002734"}
LINK = "https://www.city.example.jp/kenshin"
# every text field of every message kind (card title, body, button label and URL, alt
# text, picture file names) is checked like a text message; only a card body keeps newlines.
CONTROL_CASES += [
    ("NUL in a card title", card(title="健診\x00"), "messages.0.card.title"),
    ("newline in a card title", card(title="健診\nご案内"), "messages.0.card.title"),
    ("escape in a card body", card(body="\x1b[31m赤"), "messages.0.card.body"),
    ("C1 control in a card body", card(body="受付\x85開始"), "messages.0.card.body"),
    (
        "NUL in a button label",
        card(buttons=[{"label": "詳しく\x00", "url": LINK}]),
        "messages.0.card.buttons.0.label",
    ),
    (
        "tab in a button label",
        card(buttons=[{"label": "詳しく\tはこちら", "url": LINK}]),
        "messages.0.card.buttons.0.label",
    ),
    ("newline in a card alt text", card(alt_text="健診\nご案内"), "messages.0.card.alt_text"),
    (
        "escape in an image file name",
        {**DRAFT, "messages": [{"kind": "image", "media": "a" * 64, "file_name": "p\x1b.jpg"}]},
        "messages.0.image.file_name",
    ),
    (
        "NUL in a sticker id",
        {**DRAFT, "messages": [{**STICKER, "sticker_id": "5200273\x00"}]},
        "messages.0.sticker.sticker_id",
    ),
]


@pytest.mark.req("S7")
@pytest.mark.parametrize(
    ("name", "body", "field"), CONTROL_CASES, ids=[c[0] for c in CONTROL_CASES]
)
async def test_control_characters_are_refused_in_japanese(
    api: ApiClient, store: Store, name: str, body: dict[str, object], field: str
) -> None:
    """S7: NUL and other control characters in a title or a message are refused (422) with a
    Japanese explanation naming the field; nothing is stored. Newlines and tabs stay allowed
    in messages."""
    before = count(store, "deliveries")
    r = await api.as_user("aut").post("/v1/deliveries", body)
    assert r.status == 422, r.body
    assert r.body["field"] == field, r.body
    assert "制御文字" in r.body["detail"]
    assert count(store, "deliveries") == before
    fine = {**DRAFT, "messages": ["1行目\n2行目\tタブ"]}
    assert (await api.as_user("aut").post("/v1/deliveries", fine)).status == 201
    multiline_card = card(body="1行目\n2行目\tタブ")
    assert (await api.as_user("aut").post("/v1/deliveries", multiline_card)).status == 201


async def test_not_json_and_wrong_media_type(api: ApiClient, store: Store) -> None:
    """A body that is not JSON is 400; a non-JSON content type is 415; nothing is stored."""
    r = await api.as_user("aut").post("/v1/deliveries", raw=b"{not json")
    assert r.status == 400 and r.problem_type == "urn:kairan:problem:bad-request"
    r = await api.as_user("aut").post("/v1/deliveries", raw=b"[" * 60_000 + b"]" * 60_000)
    assert r.status == 400 and r.body["field"] == "body"
    r = await api.as_user("aut").post("/v1/deliveries", raw=b"\xff\xfe{}")
    assert r.status == 400
    r = await api.as_user("aut").post(
        "/v1/deliveries", raw=b"title=x", headers={"Content-Type": "text/plain"}
    )
    assert r.status == 415 and r.problem_type == "urn:kairan:problem:unsupported-media-type"
    assert count(store, "deliveries") == 0


async def test_oversized_body_is_413(api: ApiClient, store: Store) -> None:
    """A body over api.max_body_bytes is refused with 413 before it is parsed."""
    huge = {**DRAFT, "messages": ["あ" * 200_000]}
    r = await api.as_user("aut").post("/v1/deliveries", huge)
    assert r.status == 413 and r.problem_type == "urn:kairan:problem:payload-too-large"
    assert r.body["field"] == "body"
    assert count(store, "deliveries") == 0


async def test_bad_path_ids_and_query_parameters(api: ApiClient) -> None:
    """Path ids that are not numbers are 404; malformed query parameters are 422 naming them."""
    r = await api.as_user("aut").get("/v1/deliveries/abc")
    assert r.status == 404 and r.body["field"] == "id"
    r = await api.as_user("aud").get("/v1/audit", params={"since": "yesterday"})
    assert r.status == 422 and r.body["field"] == "since"
    r = await api.as_user("aud").get("/v1/audit", params={"limit": "9999"})
    assert r.status == 422 and r.body["field"] == "limit"
    r = await api.as_user("aud").get("/v1/audit", params={"bogus": "1"})
    assert r.status == 422 and r.body["field"] == "bogus"


async def test_invalid_audience_filter(api: ApiClient) -> None:
    """An audience count for a filter that does not fit the survey names the field."""
    r = await api.as_user("aut").post(
        "/v1/audience-count",
        {"segment": {"conditions": [{"question": "gender", "age_from": 20}]}},
    )
    assert r.status == 422 and r.body["field"].startswith("segment.conditions.0"), r.body
    r = await api.as_user("aut").post(
        "/v1/audience-count", {"segment": {"all_registered": True}, "extra": 1}
    )
    assert r.status == 422 and r.body["field"] == "extra"


async def test_action_routes_refuse_stray_bodies(api: ApiClient) -> None:
    """Action routes take `{}` or nothing: an unknown field is refused, not ignored."""
    r = await api.as_user("aut").post("/v1/deliveries", DRAFT)
    delivery_id = r.body["id"]
    r = await api.as_user("aut").post(f"/v1/deliveries/{delivery_id}/submit", {"force": True})
    assert r.status == 422 and r.body["field"] == "force"
    r = await api.as_user("aut").get(f"/v1/deliveries/{delivery_id}")
    assert r.body["status"] == "draft"


async def test_missing_socket_group_is_a_config_error(config: Config, store: Store) -> None:
    """A socket group that does not exist stops start-up with an operator hint (exit code
    of ConfigError), and leaves no socket behind."""
    from kairand.api.app import serve
    from kairand.errors import ConfigError
    from tests.support.api_helpers import with_api

    cfg = with_api(config, socket_group="no-such-group-kairan")
    with pytest.raises(ConfigError, match="socket_group"):
        async with serve(cfg, store):
            pass
    assert not await asyncio.to_thread(cfg.api.socket.exists)
