"""Writes default.png, the example rich-menu image (2500×843, three tiles), with a tiny
pure-Python PNG writer (no Pillow). Municipalities replace it with their designed image; this
one only has to be valid for LINE and recognisable: a house (市のホームページ), a shield
(防災情報) and a gear (設定を変更).

    python provisioning/richmenu/make_image.py
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT = 2500, 843
TILE = WIDTH // 3
COLOURS = [(0x1F, 0x6F, 0xB2), (0xD9, 0x5B, 0x2B), (0x2E, 0x8B, 0x57)]
WHITE = (0xFF, 0xFF, 0xFF)


def _house(dx: float, dy: float) -> bool:
    if -260 <= dy <= -20:  # roof
        return abs(dx) <= (dy + 260) * 1.1
    if -20 < dy <= 220:  # walls with a door
        return abs(dx) <= 200 and not (abs(dx) <= 50 and dy > 80)
    return False


def _shield(dx: float, dy: float) -> bool:
    if -240 <= dy <= 40:
        inside = abs(dx) <= 200
    elif 40 < dy <= 260:
        inside = abs(dx) <= 200 * (260 - dy) / 220
    else:
        return False
    mark = abs(dx) <= 28 and (-170 <= dy <= 60 or 110 <= dy <= 165)  # "!"
    return inside and not mark


def _gear(dx: float, dy: float) -> bool:
    r = math.hypot(dx, dy)
    teeth = 230 + 40 * (math.cos(8 * math.atan2(dy, dx)) > 0.3)
    return 95 <= r <= teeth


SHAPES = [_house, _shield, _gear]


def pixel_row(y: int) -> bytes:
    row = bytearray([0])  # filter type 0
    for x in range(WIDTH):
        tile = min(x // TILE, 2)
        if x % TILE < 6 and tile > 0:
            row += bytes(WHITE)
            continue
        cx, cy = tile * TILE + TILE / 2, HEIGHT / 2
        row += bytes(WHITE if SHAPES[tile](x - cx, y - cy) else COLOURS[tile])
    return bytes(row)


def png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    rows = b"".join(pixel_row(y) for y in range(HEIGHT))
    out = Path(__file__).with_name("default.png")
    out.write_bytes(png(WIDTH, HEIGHT, rows))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
