"""Preparing an uploaded picture for LINE (pure: bytes in, bytes out; Pillow).

LINE fetches images itself (`originalContentUrl`, `previewImageUrl`, a Flex hero `url`):
JPEG or PNG, the original at most 10 MB, the preview at most 1 MB. Kairan re-encodes every
upload, which drops all embedded metadata (EXIF with GPS position, camera serial numbers, XMP,
comments, PNG text chunks), after turning the picture upright by its EXIF orientation. The
preview is a JPEG of at most 1024 x 1024 pixels and at most 1 MB (it is also the card's hero
image, for which LINE recommends 1024 pixels).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_ORIGINAL_BYTES = 10 * 1024 * 1024
MAX_PREVIEW_BYTES = 1024 * 1024
MAX_SIDE = 4096
"""Larger pictures are scaled down (a phone screen gains nothing from more)."""
PREVIEW_SIDE = 1024
MAX_PIXELS = 80_000_000
"""Refuse decompression bombs before decoding."""
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}


class ImageRefused(ValueError):
    """The upload cannot be sent through LINE; `message_ja` tells staff why."""

    def __init__(self, message_ja: str) -> None:
        super().__init__(message_ja)
        self.message_ja = message_ja


@dataclass(frozen=True)
class PreparedImage:
    content_type: str
    original: bytes
    preview: bytes
    width: int
    height: int

    @property
    def media_id(self) -> str:
        return hashlib.sha256(self.original).hexdigest()


def _encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = _flatten(image)
        # No exif=, icc_profile= or comment=: nothing but pixels is written.
        image.save(out, "JPEG", quality=quality)
    else:
        image.save(out, "PNG", optimize=True)  # no pnginfo: no text chunks
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white (transparent PNG or CMYK JPEG to something a JPEG can hold)."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image.convert("RGB")


def _shrink_to(image: Image.Image, fmt: str, limit: int) -> bytes:
    """Encode, lowering JPEG quality and then the size until it fits LIMIT bytes."""
    current = image
    for _ in range(12):
        for quality in (90, 80, 70, 60) if fmt == "JPEG" else (0,):
            data = _encode(current, fmt, quality)
            if len(data) <= limit:
                return data
        w, h = current.size
        current = current.resize((max(1, w * 3 // 4), max(1, h * 3 // 4)), Image.Resampling.LANCZOS)
    raise ImageRefused(
        "画像を送信できる大きさまで小さくできませんでした。別の画像を選んでください。"
    )


def prepare(data: bytes, max_upload_bytes: int = 20 * 1024 * 1024) -> PreparedImage:
    """Check, strip and re-encode an upload; raise ImageRefused with a Japanese reason."""
    if not data:
        raise ImageRefused("画像ファイルが空です。")
    if len(data) > max_upload_bytes:
        raise ImageRefused(
            f"画像ファイルが大きすぎます（{max_upload_bytes // (1024 * 1024)} MB まで）。"
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            if fmt not in FORMATS:
                raise ImageRefused("JPEG か PNG の画像だけを送信できます。")
            if probe.width * probe.height > MAX_PIXELS:
                raise ImageRefused("画像の画素数が多すぎます。縮小してから選んでください。")
            probe.load()
            image = ImageOps.exif_transpose(probe) or probe.copy()
    except ImageRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageRefused(
            "画像ファイルとして読み取れません（JPEG か PNG を選んでください）。"
        ) from None
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = _flatten(image)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # Pixels only: a fresh image, so no info dict (exif, xmp, text chunks) travels along.
    clean = image.copy()
    clean.info.clear()
    original = _shrink_to(clean, fmt, MAX_ORIGINAL_BYTES)
    with Image.open(io.BytesIO(original)) as final:
        width, height = final.size
    small = _flatten(clean) if clean.mode not in ("RGB", "L") else clean.copy()
    small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    preview = _shrink_to(small, "JPEG", MAX_PREVIEW_BYTES)
    return PreparedImage(FORMATS[fmt], original, preview, width, height)
