"""A small async client for the staff API over its unix socket (tests, scripts, kairanctl).

The TUI has its own client (tui/kairan_tui/client.py); this one is deliberately thin: it sends
JSON and hands back status, headers and the decoded body, so tests can assert on problems too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class ApiResponse:
    status: int
    content_type: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def problem_type(self) -> str | None:
        if self.content_type == "application/problem+json" and isinstance(self.body, dict):
            return str(self.body.get("type"))
        return None


class ApiClient:
    def __init__(self, session: aiohttp.ClientSession, headers: dict[str, str] | None = None):
        self.session = session
        self.headers = headers or {}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        hdrs = {**self.headers, **(headers or {})}
        if data is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        async with self.session.request(
            method, "http://kairan" + path, data=data, params=params, headers=hdrs
        ) as resp:
            text = await resp.read()
            decoded: Any = None
            if text:
                try:
                    decoded = json.loads(text)
                except ValueError:
                    decoded = text.decode(errors="replace")
            return ApiResponse(resp.status, resp.content_type, decoded, dict(resp.headers))

    async def get(self, path: str, **kw: Any) -> ApiResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> ApiResponse:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> ApiResponse:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> ApiResponse:
        return await self.request("DELETE", path, **kw)

    def as_user(self, username: str, header: str = "X-Test-User") -> ApiClient:
        """For tests whose peer resolver reads the caller from a header."""
        return ApiClient(self.session, {**self.headers, header: username})


@asynccontextmanager
async def connect(socket_path: Path | str) -> AsyncIterator[ApiClient]:
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield ApiClient(session)
