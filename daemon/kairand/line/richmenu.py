"""`kairanctl richmenu apply|check FILE.toml` (S2): the default rich menu from a TOML definition
and an image, checked against LINE's limits before anything is sent, replaced safely.

Replacement order: create the new menu → upload its image → make it the default → only then
delete the old default. A failure before the switch deletes the half-made new menu and leaves
the old one in place, so residents never see an empty menu.

TOML shape (see provisioning/richmenu/default.toml):

    name = "..."            # ≤ 300, for the LINE console
    chat_bar_text = "..."   # ≤ 14, the bar under the chat
    image = "default.png"   # relative to the TOML file; PNG or JPEG, size = [size]
    selected = true         # open by default
    [size]  width = 2500, height = 843
    [[areas]]  x, y, width, height, and either uri = "https://..." or
               postback = "settings" (the 設定を変更 action) or "reservation" (予約); label ≤ 20
"""

from __future__ import annotations

import contextlib
import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linebot.v3.messaging import ApiException, RichMenuRequest

from kairand.errors import DataError, ExitCode, KairanError
from kairand.line.client import LineApi
from kairand.logs import get_logger

log = get_logger(__name__)

MAX_IMAGE_BYTES = 1024 * 1024
MAX_AREAS = 20
MAX_CHAT_BAR = 14
MAX_NAME = 300
MAX_LABEL = 20
# The postbacks a rich-menu area may send: names → data the conversation understands.
POSTBACKS = {
    "settings": ("a=settings", "設定を変更"),
    # Window reservations: the booking dialogue's menu (kairand.reservations.dialogue).
    "reservation": ("rsv=menu", "予約"),
}


class RichMenuError(KairanError):
    exit_code = ExitCode.FAILURE


@dataclass(frozen=True)
class RichMenuPlan:
    request: dict[str, Any]
    image: bytes
    content_type: str


def image_size(data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of a PNG or JPEG, read from its header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", width, height
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return "image/jpeg", width, height
            i += 2 + length
        raise DataError("the JPEG image has no size header", "export the image again")
    raise DataError(
        "the rich menu image is neither PNG nor JPEG", "LINE accepts only PNG or JPEG images"
    )


def load_plan(path: Path) -> RichMenuPlan:
    """Read and check the definition and its image; every problem is reported at once."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path} cannot be read as TOML: {exc}") from None
    problems: list[str] = []
    size = raw.get("size", {})
    width, height = size.get("width"), size.get("height")
    if not isinstance(width, int) or not 800 <= width <= 2500:
        problems.append("size.width must be 800–2500 px")
    if not isinstance(height, int) or height < 250:
        problems.append("size.height must be at least 250 px")
    if isinstance(width, int) and isinstance(height, int) and height and width / height < 1.45:
        problems.append("size.width / size.height must be at least 1.45")
    name = raw.get("name", "")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        problems.append(f"name must be 1–{MAX_NAME} characters")
    chat_bar = raw.get("chat_bar_text", "")
    if not isinstance(chat_bar, str) or not 1 <= len(chat_bar) <= MAX_CHAT_BAR:
        problems.append(f"chat_bar_text must be 1–{MAX_CHAT_BAR} characters")
    areas_raw = raw.get("areas", [])
    if not isinstance(areas_raw, list) or not 1 <= len(areas_raw) <= MAX_AREAS:
        problems.append(f"there must be 1–{MAX_AREAS} [[areas]]")
        areas_raw = []
    areas = []
    for n, area in enumerate(areas_raw, 1):
        where = f"areas #{n}"
        if not isinstance(area, dict):
            problems.append(f"{where} is not a table")
            continue
        given = {k: area.get(k) for k in ("x", "y", "width", "height")}
        if not all(isinstance(v, int) and v >= 0 for v in given.values()):
            problems.append(f"{where}: x, y, width, height must be whole numbers ≥ 0")
            continue
        bounds: dict[str, int] = {k: int(v) for k, v in given.items() if isinstance(v, int)}
        if (
            isinstance(width, int)
            and isinstance(height, int)
            and (bounds["x"] + bounds["width"] > width or bounds["y"] + bounds["height"] > height)
        ):
            problems.append(f"{where} reaches outside the menu")
        label = area.get("label", "")
        if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL:
            problems.append(f"{where}: label must be 1–{MAX_LABEL} characters")
        action: dict[str, Any]
        if "uri" in area:
            uri = area["uri"]
            if not isinstance(uri, str) or not uri.startswith(("https://", "http://", "tel:")):
                problems.append(f"{where}: uri must start with https://, http:// or tel:")
            elif len(uri) > 1000:
                problems.append(f"{where}: uri is longer than 1000 characters")
            action = {"type": "uri", "label": label, "uri": uri}
        elif "postback" in area:
            known = POSTBACKS.get(area["postback"])
            if known is None:
                problems.append(f"{where}: postback must be one of {sorted(POSTBACKS)}")
                continue
            data, display = known
            action = {"type": "postback", "label": label, "data": data, "displayText": display}
        else:
            problems.append(f"{where} needs uri = ... or postback = ...")
            continue
        areas.append({"bounds": bounds, "action": action})
    image_path = path.parent / str(raw.get("image", ""))
    image = b""
    content_type = ""
    if not raw.get("image") or not image_path.is_file():
        problems.append(f"image {image_path} does not exist")
    else:
        image = image_path.read_bytes()
        if len(image) > MAX_IMAGE_BYTES:
            problems.append(f"the image is {len(image)} bytes; LINE allows at most 1 MB")
        try:
            content_type, img_w, img_h = image_size(image)
            if (img_w, img_h) != (width, height):
                problems.append(f"the image is {img_w}×{img_h} px but size is {width}×{height}")
        except DataError as exc:
            problems.append(exc.message)
    if problems:
        raise DataError(
            f"{path}: " + "; ".join(problems), "fix the definition; nothing was sent to LINE"
        )
    request = {
        "size": {"width": width, "height": height},
        "selected": bool(raw.get("selected", True)),
        "name": name,
        "chatBarText": chat_bar,
        "areas": areas,
    }
    return RichMenuPlan(request, image, content_type)


async def apply_plan(line: LineApi, plan: RichMenuPlan) -> tuple[str, str | None]:
    """Create, upload, make default, then delete the old default. Returns (new id, old id)."""
    api, timeout = line.messaging, line.timeout
    try:
        old: str | None = (
            await api.get_default_rich_menu_id(_request_timeout=timeout)
        ).rich_menu_id
    except ApiException as exc:
        if exc.status != 404:
            raise
        old = None
    created = await api.create_rich_menu(
        RichMenuRequest.from_dict(plan.request), _request_timeout=timeout
    )
    new_id = created.rich_menu_id
    try:
        await line.blob.set_rich_menu_image(
            new_id,
            plan.image,
            _headers={"Content-Type": plan.content_type},
            _request_timeout=timeout,
        )
        await api.set_default_rich_menu(new_id, _request_timeout=timeout)
    except BaseException:
        # The old menu is still the default: drop the half-made one and keep it.
        # Any error deleting it is secondary: the original error is the one to report.
        with contextlib.suppress(Exception):
            await api.delete_rich_menu(new_id, _request_timeout=timeout)
        raise
    if old and old != new_id:
        await api.delete_rich_menu(old, _request_timeout=timeout)
    return new_id, old
