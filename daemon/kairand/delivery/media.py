"""Uploading an image staff picked: checked, stripped of metadata and re-encoded by
kairand.delivery.images, stored in the store, audited. Served by kairand.line.media. Purged
from the store once nothing can need it any more (purge_expired, the media-purge worker)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from kairand.audit.chain import AuditEntry
from kairand.config import MediaSection
from kairand.delivery.images import prepare
from kairand.logs import get_logger
from kairand.runtime import CONFIG, STORE, TASKS
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)


async def upload(
    store: Store, actor: str, data: bytes, file_name: str, max_bytes: int
) -> media_store.MediaInfo:
    """Check, strip (EXIF/GPS...) and store an image staff picked; audited. Raises
    kairand.delivery.images.ImageRefused with a Japanese reason."""
    loop = asyncio.get_running_loop()
    prepared = await loop.run_in_executor(None, prepare, data, max_bytes)
    token = secrets.token_urlsafe(24)
    now = int(time.time())

    def tx(conn: Connection) -> media_store.MediaInfo:
        info = media_store.insert(
            conn,
            media_id=prepared.media_id,
            token=token,
            content_type=prepared.content_type,
            original=prepared.original,
            preview=prepared.preview,
            width=prepared.width,
            height=prepared.height,
            file_name=file_name,
            uploaded_by=actor,
            now=now,
        )
        audit_store.append(
            conn,
            AuditEntry(
                now * 1000,
                actor,
                "media.upload",
                "ok",
                f"media {info.id[:16]}",
                {
                    "bytes_in": len(data),
                    "bytes": info.original_bytes,
                    "preview_bytes": info.preview_bytes,
                    "content_type": info.content_type,
                    "metadata_stripped": True,
                },
            ),
        )
        return info

    return await store.write(tx)


# -- purge ---------------------------------------------------------------------------------


async def purge_expired(store: Store, now: float, period: int) -> int:
    """Delete every image past its serving period (kairand.store.media.purgeable) from the
    store, one audited `media.purge` each; returns how many."""
    purged = 0
    at = int(now)

    def tx(conn: Connection) -> int:
        found = media_store.purgeable(conn, at, period)
        for info in found:
            media_store.purge(conn, info.id)
            audit_store.append(
                conn,
                AuditEntry(
                    at * 1000,
                    "system",
                    "media.purge",
                    "ok",
                    f"media {info.id[:16]}",
                    {
                        "bytes": info.original_bytes + info.preview_bytes,
                        "uploaded_at": info.uploaded_at,
                        "reason": "serving period over",
                    },
                ),
            )
        return len(found)

    while batch := await store.write(tx):
        purged += batch
    return purged


async def purge_loop(
    store: Store,
    section: MediaSection,
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Purge now and then every `media.purge_interval_seconds` until STOPPING is set."""
    while not stopping.is_set():
        try:
            count = await purge_expired(store, clock(), section.serve_seconds)
            if count:
                log.info("media.purged", images=count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round retries
            log.error("media.purge_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), section.purge_interval_seconds)


async def media_purge_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the image purge worker while the daemon runs."""
    stop = asyncio.Event()
    task = app[TASKS].worker("media-purge", lambda: purge_loop(app[STORE], app[CONFIG].media, stop))
    yield
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
