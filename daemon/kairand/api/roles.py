"""The roles matrix: every API route, and the roles allowed to call it, in ONE table.

The server registers its routes from this table, docs/api.md documents it, and the tests call
every route as every role from it. A route not in this table does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMIN, AUTHOR, APPROVER, AUDITOR = "admin", "author", "approver", "auditor"
COUNTER = "counter"
"""窓口担当: the window desk (bookings, calling the queue)."""
KIOSK, BOARD = "kiosk", "board"
"""発券機 and 呼出表示盤: OS users of the ticket kiosk and the waiting-room TV. The
kiosk may only issue tickets; the board may only read the board. Neither sees anything else."""
OFFICE = (ADMIN, AUTHOR, APPROVER, AUDITOR, COUNTER)
"""Roles of people at a staff terminal."""
ROLES = (*OFFICE, KIOSK, BOARD)
EVERYONE = frozenset(ROLES)


@dataclass(frozen=True)
class Route:
    name: str
    """Stable name: used in the audit log (`api.<name>`) and in /v1/me `allowed`."""
    method: str
    path: str
    roles: frozenset[str]
    body: bool = False
    """The route takes a JSON request body (validated against api.schema)."""
    stream: bool = False
    """Server-sent events: the call is audited when the stream opens."""


def _r(
    name: str, method: str, path: str, *roles: str, body: bool = False, stream: bool = False
) -> Route:
    return Route(name, method, path, frozenset(roles), body, stream)


ROUTES: tuple[Route, ...] = (
    _r("me", "GET", "/v1/me", *ROLES),
    _r("dashboard", "GET", "/v1/dashboard", *OFFICE),
    _r("events", "GET", "/v1/events", *OFFICE, stream=True),
    _r("statistics", "GET", "/v1/statistics", *OFFICE),
    _r("survey.get", "GET", "/v1/survey", *OFFICE),
    _r("survey.update", "PUT", "/v1/survey", ADMIN, body=True),
    _r("audience.count", "POST", "/v1/audience-count", AUTHOR, APPROVER, body=True),
    _r("deliveries.list", "GET", "/v1/deliveries", AUTHOR, APPROVER, AUDITOR),
    _r("deliveries.create", "POST", "/v1/deliveries", AUTHOR, body=True),
    _r("deliveries.get", "GET", "/v1/deliveries/{id}", AUTHOR, APPROVER, AUDITOR),
    _r("deliveries.update", "PUT", "/v1/deliveries/{id}", AUTHOR, body=True),
    _r(
        "deliveries.test_send", "POST", "/v1/deliveries/{id}/test-send", AUTHOR, APPROVER, body=True
    ),
    _r("deliveries.submit", "POST", "/v1/deliveries/{id}/submit", AUTHOR, body=True),
    _r("deliveries.approve", "POST", "/v1/deliveries/{id}/approve", APPROVER, body=True),
    _r("deliveries.reject", "POST", "/v1/deliveries/{id}/reject", APPROVER, body=True),
    _r("deliveries.resume", "POST", "/v1/deliveries/{id}/resume", APPROVER, body=True),
    _r("deliveries.cancel", "POST", "/v1/deliveries/{id}/cancel", AUTHOR, APPROVER, body=True),
    _r("test_recipients.get", "GET", "/v1/test-recipients", AUTHOR, APPROVER),
    _r("test_recipients.code", "POST", "/v1/test-recipients/code", AUTHOR, APPROVER, body=True),
    _r("staff.list", "GET", "/v1/staff", ADMIN, AUDITOR),
    _r("staff.put", "PUT", "/v1/staff/{username}", ADMIN, body=True),
    _r("staff.delete", "DELETE", "/v1/staff/{username}", ADMIN),
    _r("audit.list", "GET", "/v1/audit", AUDITOR),
    _r("audit.verify", "GET", "/v1/audit/verify", AUDITOR),
    # Window reservations.
    _r("reservations.services", "GET", "/v1/reservations/services", COUNTER, ADMIN),
    _r("reservations.services.put", "PUT", "/v1/reservations/services", COUNTER, ADMIN, body=True),
    _r("reservations.bookings", "GET", "/v1/reservations/bookings", COUNTER),
    _r("reservations.book", "POST", "/v1/reservations/bookings", COUNTER, body=True),
    _r("reservations.change", "POST", "/v1/reservations/bookings/{id}/change", COUNTER, body=True),
    _r("reservations.cancel", "POST", "/v1/reservations/bookings/{id}/cancel", COUNTER, body=True),
    _r(
        "reservations.outcome", "POST", "/v1/reservations/bookings/{id}/outcome", COUNTER, body=True
    ),
    _r("reservations.statistics", "GET", "/v1/reservations/statistics", COUNTER, ADMIN, AUDITOR),
    # Same-day queue.
    _r("queue.board", "GET", "/v1/queue/board", KIOSK, BOARD, COUNTER),
    _r("queue.board_events", "GET", "/v1/queue/board/events", KIOSK, BOARD, COUNTER, stream=True),
    _r("queue.issue", "POST", "/v1/queue/tickets", KIOSK, COUNTER, body=True),
    _r("queue.desk", "GET", "/v1/queue/desk", COUNTER),
    _r("queue.call", "POST", "/v1/queue/call", COUNTER, body=True),
    _r("queue.action", "POST", "/v1/queue/tickets/{id}/action", COUNTER, body=True),
    _r("queue.pause", "POST", "/v1/queue/counters/{id}/pause", COUNTER, body=True),
    _r("queue.statistics", "GET", "/v1/queue/statistics", COUNTER, ADMIN, AUDITOR),
    _r("reports.handling", "GET", "/v1/reports/handling", AUDITOR),
    # Programs, school districts, institutions, alert templates and alerts.
    _r("programs.list", "GET", "/v1/programs", *OFFICE),
    _r("programs.put", "PUT", "/v1/programs/{id}", ADMIN, body=True),
    _r("districts.list", "GET", "/v1/districts", *OFFICE),
    _r("districts.upload", "POST", "/v1/districts/import", ADMIN, body=True),
    _r("institutions.list", "GET", "/v1/institutions", *OFFICE),
    _r("institutions.mine", "GET", "/v1/me/institutions", *OFFICE),
    _r("institutions.put", "PUT", "/v1/institutions/{id}", ADMIN, body=True),
    _r("institutions.staff", "POST", "/v1/institutions/{id}/staff", ADMIN, body=True),
    _r("alert_templates.list", "GET", "/v1/alert-templates", AUTHOR, APPROVER, AUDITOR, ADMIN),
    _r("alert_templates.create", "POST", "/v1/alert-templates", AUTHOR, APPROVER, body=True),
    _r("alert_templates.approve", "POST", "/v1/alert-templates/{id}/approve", APPROVER, body=True),
    _r(
        "alert_templates.retire",
        "POST",
        "/v1/alert-templates/{id}/retire",
        APPROVER,
        ADMIN,
        body=True,
    ),
    _r("alerts.list", "GET", "/v1/alerts", AUTHOR, APPROVER, AUDITOR),
    _r("alerts.send", "POST", "/v1/alerts", AUTHOR, body=True),
    _r("alerts.follow_up", "POST", "/v1/alerts/{id}/follow-up", APPROVER, body=True),
    # images, link allowlist, templates, recurring deliveries, calendar
    _r("media.upload", "POST", "/v1/media", AUTHOR),
    _r("media.get", "GET", "/v1/media/{id}", AUTHOR, APPROVER, AUDITOR),
    _r("link_domains.get", "GET", "/v1/link-domains", *OFFICE),
    _r("link_domains.put", "PUT", "/v1/link-domains", ADMIN, body=True),
    _r("templates.list", "GET", "/v1/templates", AUTHOR, APPROVER),
    _r("templates.create", "POST", "/v1/templates", AUTHOR, body=True),
    _r("templates.update", "PUT", "/v1/templates/{id}", AUTHOR, body=True),
    _r("templates.delete", "DELETE", "/v1/templates/{id}", AUTHOR),
    _r("series.list", "GET", "/v1/series", AUTHOR, APPROVER, AUDITOR),
    _r("series.create", "POST", "/v1/series", AUTHOR, body=True),
    _r("series.get", "GET", "/v1/series/{id}", AUTHOR, APPROVER, AUDITOR),
    _r("series.submit", "POST", "/v1/series/{id}/submit", AUTHOR, body=True),
    _r("series.approve", "POST", "/v1/series/{id}/approve", APPROVER, body=True),
    _r("series.reject", "POST", "/v1/series/{id}/reject", APPROVER, body=True),
    _r("series.pause", "POST", "/v1/series/{id}/pause", AUTHOR, APPROVER, body=True),
    _r("series.resume", "POST", "/v1/series/{id}/resume", AUTHOR, APPROVER, body=True),
    _r("series.end", "POST", "/v1/series/{id}/end", AUTHOR, APPROVER, body=True),
    _r("series.update", "PUT", "/v1/series/{id}", AUTHOR, body=True),
    _r("series.approve_change", "POST", "/v1/series/{id}/approve-change", APPROVER, body=True),
    _r("series.reject_change", "POST", "/v1/series/{id}/reject-change", APPROVER, body=True),
    _r("calendar", "GET", "/v1/calendar", AUTHOR, APPROVER, AUDITOR),
)

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}


def allowed(route: Route, roles: tuple[str, ...] | list[str]) -> bool:
    return bool(route.roles.intersection(roles))


def allowed_routes(roles: tuple[str, ...] | list[str]) -> list[str]:
    return [r.name for r in ROUTES if allowed(r, roles)]


def matrix_markdown() -> str:
    """The table as Markdown (docs/api.md embeds it; a test checks the docs match)."""
    head = "| route | method and path | " + " | ".join(ROLES) + " |"
    rule = "|---|---|" + "---|" * len(ROLES)
    rows = [
        f"| `{r.name}` | `{r.method} {r.path}` | "
        + " | ".join("✓" if role in r.roles else "" for role in ROLES)
        + " |"
        for r in ROUTES
    ]
    return "\n".join([head, rule, *rows])
