"""Uploading an image staff picked (issue 20): checked, stripped of metadata and re-encoded by
kairand.delivery.images, stored in the store, audited. Served by kairand.line.media."""

from __future__ import annotations

import asyncio
import secrets
import time

from kairand.audit.chain import AuditEntry
from kairand.delivery.images import prepare
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store.database import Connection, Store


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
