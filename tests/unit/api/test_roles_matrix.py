"""The roles matrix, exhaustively: every route in kairand.api.roles.ROUTES × every role (N5, S7).

Generated from the table itself, so a route added to the table is tested without touching this
file. Each case is also checked in the audit log (S8): a refusal is written as `denied`.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from kairand.api.client import ApiClient
from kairand.api.roles import ROLES, ROUTES, Route, matrix_markdown
from kairand.evidence.audit import StoredEntry
from kairand.store import audit as audit_store
from kairand.store.database import Store

# One single-role staff member per role (see conftest.STAFF).
USER_OF_ROLE = {
    "admin": "adm",
    "author": "aut",
    "approver": "apr",
    "auditor": "aud",
    "counter": "ctr",
    "kiosk": "ksk",
    "board": "brd",
}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def concrete(route: Route) -> str:
    # A delivery id and a user name that do not exist: allowed callers get 404/422, never 403.
    return route.path.replace("{id}", "999").replace("{username}", "nosuchuser")


async def call(api: ApiClient, route: Route, user: str) -> tuple[int, dict | None]:
    client = api.as_user(user)
    if route.stream:
        # Read the status only: an allowed event stream stays open.
        async with client.session.get(
            "http://kairan" + concrete(route), headers=client.headers
        ) as resp:
            body = await resp.json() if resp.status >= 400 else None
            return resp.status, body
    answer = await client.request(route.method, concrete(route), {} if route.body else None)
    return answer.status, answer.body if isinstance(answer.body, dict) else None


def last_entry(store: Store) -> StoredEntry:
    return store.read_sync(audit_store.query, audit_store.AuditFilter(), 1)[0]


@pytest.mark.parametrize("role", ROLES)
async def test_every_route_allows_exactly_its_roles(
    api: ApiClient, store: Store, role: str
) -> None:
    """N5, S7, S8: for every route, a caller holding only ROLE is refused (403 forbidden, code
    `role`, audited as denied) exactly when the table does not list ROLE."""
    user = USER_OF_ROLE[role]
    mismatches = []
    for route in ROUTES:
        status, body = await call(api, route, user)
        entry = last_entry(store)
        assert entry.entry.action == f"api.{route.name}" and entry.entry.actor == user
        refused = (
            status == 403
            and body is not None
            and body["type"] == "urn:kairan:problem:forbidden"
            and body.get("code") == "role"
        )
        if role in route.roles:
            if refused or status >= 500 or entry.entry.outcome == "denied":
                mismatches.append((route.name, "should be allowed", status))
        elif not refused or entry.entry.outcome != "denied":
            mismatches.append((route.name, "should be refused", status))
    assert mismatches == []


@pytest.mark.parametrize("who", ["stranger", "gone", ""])
async def test_unknown_or_inactive_callers_are_refused_everywhere(
    api: ApiClient, store: Store, who: str
) -> None:
    """N5, S8: a caller not on the roster, inactive, or without a user name gets 403 on every
    route, and each refusal is in the audit log."""
    from kairand.store import staff

    store.write_sync(staff.upsert, staff.StaffRecord("gone", "退職者", ROLES, True, False), 1)
    for route in ROUTES:
        status, body = await call(api, route, who)
        assert status == 403, route.name
        assert body is not None and body["type"] == "urn:kairan:problem:forbidden"
        assert body["code"] == ("inactive" if who == "gone" else "not_on_roster")
        entry = last_entry(store).entry
        assert entry.outcome == "denied" and entry.action == f"api.{route.name}"
        assert entry.actor == (who or "unknown")


async def test_unknown_path_and_method_are_problems(api: ApiClient) -> None:
    """S8: a path or method that is not in the table answers problem+json (404/405)."""
    r = await api.as_user("adm").get("/v1/nothing-here")
    assert r.status == 404 and r.problem_type == "urn:kairan:problem:not-found"
    r = await api.as_user("adm").delete("/v1/me")
    assert r.status == 405 and r.problem_type == "urn:kairan:problem:method-not-allowed"


async def test_me_lists_exactly_the_allowed_routes(api: ApiClient) -> None:
    """N5: /v1/me tells the TUI which routes the caller may use, from the same table."""
    for role, user in USER_OF_ROLE.items():
        r = await api.as_user(user).get("/v1/me")
        assert r.status == 200 and r.body["roles"] == [role]
        assert r.body["allowed"] == [x.name for x in ROUTES if role in x.roles]


def test_docs_show_the_matrix_from_the_code() -> None:
    """N5: docs/api.md carries the roles table exactly as the code declares it."""
    assert matrix_markdown() in DOCS.read_text(encoding="utf-8")


def test_event_stream_route_exists_once() -> None:
    """Sanity of the table: names and method+path pairs are unique."""
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert aiohttp  # the stream case above uses the raw session
