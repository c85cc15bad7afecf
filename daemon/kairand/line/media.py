"""Images served to LINE through the relay, on the webhook's own site.

LINE fetches `originalContentUrl`, `previewImageUrl` and a card's hero image over HTTPS. The
appliance accepts no inbound connection, so the images are served exactly like the webhook:
the relay forwards TLS unopened into the ssh tunnel, and TLS ends here, on the webhook's unix
socket. Paths are `{media.path}/{token}/{sha256}/{original|preview}.{jpg|png}`: the random token
makes them unguessable, the SHA-256 names the content (a changed picture is a new URL, so
LINE's cache can never show an old one). An image is answered only while an approved delivery
uses it and for `media.serve_seconds` after that delivery finished (or while a test send's
grant runs); otherwise 404, the same answer as for a path that never existed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Literal

from aiohttp import web

from kairand.config import Config, MediaSection
from kairand.logs import get_logger
from kairand.store import media as media_store
from kairand.store.database import Store

log = get_logger(__name__)

_NAME = re.compile(r"^(original|preview)\.(jpg|png)$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class MediaNotReady(ValueError):
    """Images cannot be sent: no public address is configured or an image is gone."""


def media_path(section: MediaSection, token: str, media_id: str, variant: str, ctype: str) -> str:
    ext = "png" if variant == "original" and ctype == "image/png" else "jpg"
    return f"{section.path.rstrip('/')}/{token}/{media_id}/{variant}.{ext}"


def url_builder(
    section: MediaSection, tokens: dict[str, tuple[str, str]]
) -> Callable[[str, Literal["original", "preview"]], str]:
    """The MediaUrl function for kairand.delivery.messages.to_line (TOKENS from the store)."""
    base = section.public_base_url.rstrip("/")

    def url(media_id: str, variant: Literal["original", "preview"]) -> str:
        if not base:
            raise MediaNotReady("media.public_base_url is not configured")
        found = tokens.get(media_id)
        if found is None:
            raise MediaNotReady(f"image {media_id[:12]} is not stored")
        token, ctype = found
        return base + media_path(section, token, media_id, variant, ctype)

    return url


async def urls_for(
    store: Store, section: MediaSection, media_ids: list[str]
) -> Callable[[str, Literal["original", "preview"]], str]:
    tokens = await store.read(media_store.tokens, media_ids) if media_ids else {}
    return url_builder(section, tokens)


def add_media_routes(
    app: web.Application, config: Config, store: Store, clock: Callable[[], float] = time.time
) -> None:
    """Serve images on APP (the webhook's application: same sites, same TLS, same tunnel)."""
    section = config.media

    async def serve(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        digest = request.match_info["digest"]
        match = _NAME.match(request.match_info["name"])
        if not (match and _TOKEN.match(token) and _DIGEST.match(digest)):
            raise web.HTTPNotFound()
        variant = match.group(1)
        found = await store.read(
            media_store.servable, token, digest, variant, int(clock()), section.serve_seconds
        )
        if found is None:
            log.info("media.refused", variant=variant)
            raise web.HTTPNotFound()
        content_type, data = found
        log.debug("media.served", variant=variant, bytes=len(data))
        return web.Response(
            body=data,
            content_type=content_type,
            headers={
                "Cache-Control": "public, max-age=86400",
                "X-Content-Type-Options": "nosniff",
                "ETag": f'"{digest[:32]}-{variant}"',
            },
        )

    base = section.path.rstrip("/")
    app.router.add_get(base + "/{token}/{digest}/{name}", serve, allow_head=True)
