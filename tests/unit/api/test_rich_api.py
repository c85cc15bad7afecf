"""Staff API for rich messages: image upload (metadata stripped), link allowlist managed by admins,
templates with audited edits, series approved by someone else, the calendar, and the approver
seeing every URL."""

from __future__ import annotations

import datetime as dt
import io
import urllib.parse

import pytest
from PIL import Image

from kairand.api.client import ApiClient
from kairand.store import audit as audit_store
from kairand.store.database import Store
from tests.support.api_helpers import add_residents


def photo(fmt: str = "JPEG") -> bytes:
    image = Image.new("RGB", (400, 300), (200, 100, 50))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (35.0, 1.0, 2.0)}
    out = io.BytesIO()
    image.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def actions(store: Store, prefix: str) -> list[tuple[str, str, str, dict]]:
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    return [
        (e.entry.action, e.entry.actor, e.entry.outcome, e.entry.detail)
        for e in entries
        if e.entry.action.startswith(prefix)
    ]


async def upload(
    api: ApiClient, data: bytes, name: str = "ポスター.jpg", ctype: str = "image/jpeg"
):
    return await api.as_user("aut").post(
        "/v1/media",
        raw=data,
        headers={"Content-Type": ctype, "X-File-Name": urllib.parse.quote(name)},
    )


@pytest.mark.req("G3")
@pytest.mark.req("S8")
async def test_upload_strips_metadata_and_is_audited(api: ApiClient, store: Store) -> None:
    """G3, S8: an author uploads a photo; the answer gives its id, sizes within LINE's limits
    and its file name; the stored picture has no EXIF; the upload is audited."""
    r = await upload(api, photo())
    assert r.status == 201, r.body
    assert r.body["file_name"] == "ポスター.jpg" and r.body["content_type"] == "image/jpeg"
    assert r.body["preview_bytes"] <= 1024 * 1024 and (r.body["width"], r.body["height"]) == (
        400,
        300,
    )
    stored = store.read_sync(lambda c: c.execute("SELECT original FROM media").fetchone()[0])
    assert b"Exif" not in bytes(stored)
    again = await api.as_user("aut").get(f"/v1/media/{r.body['id']}")
    assert again.status == 200 and again.body["id"] == r.body["id"]
    assert [a for a, *_ in actions(store, "media.")] == ["media.upload"]
    assert [(a, who, o) for a, who, o, _ in actions(store, "api.media.upload")] == [
        ("api.media.upload", "aut", "allowed")
    ]


@pytest.mark.parametrize(
    ("data", "ctype", "status"),
    [
        (b"GIF89a", "image/gif", 415),
        (b"not an image", "image/jpeg", 422),
        (b"", "image/png", 422),
    ],
)
async def test_bad_uploads_get_clear_problems(
    api: ApiClient, store: Store, data: bytes, ctype: str, status: int
) -> None:
    r = await upload(api, data, ctype=ctype)
    assert r.status in (status, 400, 415, 422) and r.status >= 400, r.body
    assert r.content_type == "application/problem+json" and r.body["detail"]
    assert store.read_sync(lambda c: c.execute("SELECT count(*) FROM media").fetchone()[0]) == 0


async def test_upload_over_the_limit_is_refused(api: ApiClient, store: Store, config) -> None:
    big = b"\xff\xd8\xff" + b"0" * (config.media.max_upload_bytes + 10)
    r = await upload(api, big)
    assert r.status == 413 and r.body["type"] == "urn:kairan:problem:payload-too-large"


@pytest.mark.req("G3")
@pytest.mark.req("S8")
async def test_admin_adds_link_domains_and_the_approver_sees_every_url(
    api: ApiClient, store: Store
) -> None:
    """G3, S8: a link to an unlisted domain is refused (field named); after an admin adds the
    domain (audited with what changed) the draft is accepted, and the delivery shows the
    approver every URL in full."""
    add_residents(store, 3)
    draft = {
        "title": "申込",
        "messages": [
            "申込は https://forms.example.org/apply?id=12 から",
            {
                "kind": "card",
                "title": "申込",
                "buttons": [
                    {"label": "申し込む", "url": "https://forms.example.org/apply?id=12&x=1"}
                ],
            },
        ],
        "segment": {"all_registered": True},
    }
    r = await api.as_user("aut").post("/v1/deliveries", draft)
    assert r.status == 422 and r.body["field"] == "messages.0"
    assert (
        await api.as_user("aut").put("/v1/link-domains", {"domains": ["forms.example.org"]})
    ).status == 403
    r = await api.as_user("adm").put("/v1/link-domains", {"domains": ["Forms.Example.org."]})
    assert r.status == 200 and r.body["added"] == ["forms.example.org"]
    r = await api.as_user("aut").post("/v1/deliveries", draft)
    assert r.status == 201, r.body
    detail = await api.as_user("apr").get(f"/v1/deliveries/{r.body['id']}")
    assert detail.body["links"] == [
        "https://forms.example.org/apply?id=12",
        "https://forms.example.org/apply?id=12&x=1",
    ]
    changed = actions(store, "links.")
    assert changed == [
        ("links.allowed_domains", "adm", "ok", {"added": ["forms.example.org"], "removed": []})
    ]


@pytest.mark.req("S8")
async def test_template_edits_are_audited_with_versions(api: ApiClient, store: Store) -> None:
    """S8: templates (定型文) are created, edited (lost updates refused) and deleted; each
    change is in the audit log with who, the version and content fingerprints."""
    body = {
        "name": "ごみの日",
        "content": {"title": "ごみの日", "messages": ["明日は燃えるごみの日です。"]},
    }
    r = await api.as_user("aut").post("/v1/templates", body)
    assert r.status == 201 and r.body["version"] == 1
    tid = r.body["id"]
    assert (await api.as_user("aut").post("/v1/templates", body)).status == 409  # same name
    edited = {
        **body,
        "content": {"title": "ごみの日", "messages": ["明日は資源ごみの日です。"]},
        "based_on_version": 1,
    }
    r = await api.as_user("aut2").put(f"/v1/templates/{tid}", edited)
    assert r.status == 200 and r.body["version"] == 2 and r.body["updated_by"] == "aut2"
    stale = await api.as_user("aut").put(f"/v1/templates/{tid}", {**edited, "based_on_version": 1})
    assert stale.status == 409
    listed = await api.as_user("apr").get("/v1/templates")
    assert [t["content"]["messages"] for t in listed.body["items"]] == [
        ["明日は資源ごみの日です。"]
    ]
    assert (await api.as_user("aut").delete(f"/v1/templates/{tid}")).status == 200
    assert (await api.as_user("aut").get("/v1/templates")).body["items"] == []
    log = actions(store, "template.")
    assert [(a, who) for a, who, _, _ in log] == [
        ("template.create", "aut"),
        ("template.update", "aut2"),
        ("template.delete", "aut"),
    ]
    update = log[1][3]
    assert update["version"] == 2 and update["before"] != update["after"]


SERIES = {
    "content": {
        "title": "健診のお知らせ",
        "messages": ["毎月の健診日です。"],
        "segment": {"all_registered": True},
    },
    "rule": {
        "frequency": "monthly_weekday",
        "weekdays": [2],
        "nth": [2, 4],
        "time": "09:00:00",
        "start": (dt.date.today() + dt.timedelta(days=1)).isoformat(),
        "holidays": "skip",
    },
}


@pytest.mark.req("S8")
async def test_series_approved_by_another_with_rule_and_next_dates(
    api: ApiClient, store: Store
) -> None:
    """S8: the author cannot approve their own series; the approver sees the rule in Japanese
    and the next occurrences; the calendar lists upcoming sends; pause and end work."""
    add_residents(store, 3)
    r = await api.as_user("aut2").post("/v1/series", SERIES)
    assert r.status == 201, r.body
    sid = r.body["id"]
    assert r.body["rule_text"].startswith("毎月 第2・第4 水曜 9:00（祝日は送らない")
    assert len(r.body["next_occurrences"]) == 5
    for at in r.body["next_occurrences"]:
        day = dt.datetime.fromisoformat(at)
        assert day.weekday() == 2 and (day.day - 1) // 7 + 1 in (2, 4)
    assert (await api.as_user("aut2").post(f"/v1/series/{sid}/submit", {})).status == 200
    own = await api.as_user("aut2").post(f"/v1/series/{sid}/approve", {})
    assert own.status == 403 and own.body["type"] == "urn:kairan:problem:four-eyes"
    ok = await api.as_user("apr").post(f"/v1/series/{sid}/approve", {})
    assert ok.status == 200 and ok.body["status"] == "active" and ok.body["approver"] == "apr"
    cal = await api.as_user("aud").get("/v1/calendar", params={"days": 60})
    assert cal.status == 200
    series_items = [i for i in cal.body["items"] if i["kind"] == "series"]
    assert series_items and all(i["id"] == sid for i in series_items)
    assert [i["at"] for i in series_items] == sorted(i["at"] for i in series_items)
    assert (await api.as_user("aut2").post(f"/v1/series/{sid}/pause", {})).body[
        "status"
    ] == "paused"
    assert (await api.as_user("apr").post(f"/v1/series/{sid}/end", {})).body["status"] == "ended"
    assert (await api.as_user("aut2").post(f"/v1/series/{sid}/resume", {})).status == 409
    assert (await api.as_user("aud").get("/v1/calendar")).body["items"] == []


def weekly(weekday: int, title: str = "健診のお知らせ") -> dict:
    rule = {
        "frequency": "weekly",
        "weekdays": [weekday],
        "time": "08:30:00",
        "start": (dt.date.today() + dt.timedelta(days=1)).isoformat(),
        "holidays": "send",
    }
    content = dict(SERIES["content"])  # type: ignore[call-overload]
    return {"content": {**content, "title": title}, "rule": rule}


@pytest.mark.req("S8")
async def test_a_series_change_needs_its_own_approval_never_by_its_editor(
    api: ApiClient, store: Store
) -> None:
    """S8: an approved series is changed only through a new approval: the change waits (the
    series keeps its approved rule meanwhile), its editor cannot approve it, another approver
    can, or rejects it; before approval a series is edited in place and its editor can no
    longer approve it; an ended series cannot be changed; every step is audited."""
    add_residents(store, 3)
    sid = (await api.as_user("aut").post("/v1/series", SERIES)).body["id"]
    assert (await api.as_user("aut").post(f"/v1/series/{sid}/submit", {})).status == 200
    assert (await api.as_user("apr").post(f"/v1/series/{sid}/approve", {})).status == 200
    approved_rule = (await api.as_user("aud").get(f"/v1/series/{sid}")).body["rule"]

    changed = await api.as_user("aut2").put(f"/v1/series/{sid}", weekly(0, "健診（月曜に変更）"))
    assert changed.status == 200, changed.body
    body = changed.body
    assert body["status"] == "active" and body["rule"] == approved_rule
    assert body["title"] == "健診のお知らせ"
    proposal = body["pending_change"]
    assert proposal["proposed_by"] == "aut2" and proposal["title"] == "健診（月曜に変更）"
    assert proposal["rule_text"].startswith("毎週 月曜 8:30")
    assert all(dt.datetime.fromisoformat(a).weekday() == 0 for a in proposal["next_occurrences"])
    own = await api.as_user("aut2").post(f"/v1/series/{sid}/approve-change", {})
    assert own.status == 403 and own.body["type"] == "urn:kairan:problem:four-eyes"
    assert (await api.as_user("aut").post(f"/v1/series/{sid}/approve-change", {})).status == 403
    ok = await api.as_user("apr").post(f"/v1/series/{sid}/approve-change", {})
    assert ok.status == 200, ok.body
    assert ok.body["pending_change"] is None and ok.body["title"] == "健診（月曜に変更）"
    assert ok.body["rule"]["weekdays"] == [0] and ok.body["status"] == "active"
    assert all(dt.datetime.fromisoformat(a).weekday() == 0 for a in ok.body["next_occurrences"])
    assert (await api.as_user("apr").post(f"/v1/series/{sid}/approve-change", {})).status == 409

    # A second change is rejected: the series goes on as approved.
    assert (await api.as_user("aut").put(f"/v1/series/{sid}", weekly(4))).status == 200
    no_comment = await api.as_user("apr").post(f"/v1/series/{sid}/reject-change", {})
    assert no_comment.status == 422
    rejected = await api.as_user("apr").post(
        f"/v1/series/{sid}/reject-change", {"comment": "金曜は祝日が多いため"}
    )
    assert rejected.status == 200 and rejected.body["pending_change"] is None
    assert rejected.body["rule"]["weekdays"] == [0]

    # Before approval: edited in place; the editor can no longer approve it.
    draft = (await api.as_user("aut").post("/v1/series", weekly(1, "ごみの日"))).body["id"]
    edited = await api.as_user("aut").put(f"/v1/series/{draft}", weekly(2, "ごみの日"))
    assert edited.status == 200 and edited.body["rule"]["weekdays"] == [2]
    assert edited.body["pending_change"] is None and edited.body["status"] == "draft"
    assert (await api.as_user("aut").post(f"/v1/series/{draft}/submit", {})).status == 200
    assert (
        await api.as_user("aut2").put(f"/v1/series/{draft}", weekly(3, "ごみの日"))
    ).status == 200
    mine = await api.as_user("aut2").post(f"/v1/series/{draft}/approve", {})
    assert mine.status == 403 and mine.body["type"] == "urn:kairan:problem:four-eyes"
    assert (await api.as_user("apr").post(f"/v1/series/{draft}/approve", {})).status == 200

    # Refused input changes nothing; an ended series cannot be changed.
    bad = weekly(0)
    bad["content"]["title"] = "健診\x00"
    assert (await api.as_user("aut").put(f"/v1/series/{sid}", bad)).status == 422
    assert (await api.as_user("aud").get(f"/v1/series/{sid}")).body["pending_change"] is None
    assert (await api.as_user("apr").post(f"/v1/series/{sid}/end", {})).status == 200
    assert (await api.as_user("aut").put(f"/v1/series/{sid}", weekly(1))).status == 409

    log = [(a, who, outcome) for a, who, outcome, _ in actions(store, "series.")]
    assert [e for e in log if "change" in e[0] or e[0] == "series.update"] == [
        ("series.change_request", "aut2", "ok"),
        ("series.change_approve", "aut2", "refused"),
        ("series.change_approve", "apr", "ok"),
        ("series.change_request", "aut", "ok"),
        ("series.change_reject", "apr", "ok"),
        ("series.update", "aut", "ok"),
        ("series.update", "aut2", "ok"),
    ]
    request = next(d for a, _, _, d in actions(store, "series.change_request"))
    assert request["before"] != request["after"]
