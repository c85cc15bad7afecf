"""The roles matrix: every API route, and the roles allowed to call it, in ONE table.

The server registers its routes from this table, docs/api.md documents it, and the tests call
every route as every role from it. A route not in this table does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMIN, AUTHOR, APPROVER, AUDITOR = "admin", "author", "approver", "auditor"
ROLES = (ADMIN, AUTHOR, APPROVER, AUDITOR)


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
    _r("dashboard", "GET", "/v1/dashboard", *ROLES),
    _r("events", "GET", "/v1/events", *ROLES, stream=True),
    _r("statistics", "GET", "/v1/statistics", *ROLES),
    _r("survey.get", "GET", "/v1/survey", *ROLES),
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
