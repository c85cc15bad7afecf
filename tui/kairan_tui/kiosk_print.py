"""The kiosk's receipt: ESC/POS through python-escpos (USB, serial or network printer).

The ticket: the number in large type, the service, the date and time, and the QR code (made
with segno, printed as a raster image so any ESC/POS printer prints it) with the LINE link.
Japanese text is sent in the printer's Kanji mode as Shift_JIS (FS & … FS .), which Japanese
receipt printers (Epson TM-T88 JP and compatibles) understand.

Configuration: the `[kiosk]` table of kairan.toml:

    [kiosk]
    printer = "usb"          # none | usb | serial | network
    usb_vendor = 0x04b8      # usb
    usb_product = 0x0202
    serial_device = "/dev/ttyUSB0"   # serial
    serial_baudrate = 19200
    network_host = "192.0.2.10"      # network
    network_port = 9100
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import segno
from escpos import printer as escpos_printer
from escpos.escpos import Escpos
from PIL import Image

from kairan_tui.labels import JST

KANJI_ON = b"\x1c\x26"
KANJI_OFF = b"\x1c\x2e"
QR_SCALE = 6
"""Printer dots per QR module: 6 dots at 203 dpi ≈ 0.75 mm, easy for a phone camera."""


class PrinterConfigError(ValueError):
    """The [kiosk] printer settings are incomplete or wrong (the message is Japanese)."""


@dataclass(frozen=True)
class PrinterSettings:
    kind: str = "none"
    usb_vendor: int = 0
    usb_product: int = 0
    serial_device: str = ""
    serial_baudrate: int = 19200
    network_host: str = ""
    network_port: int = 9100

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> PrinterSettings:
        kind = str(table.get("printer", "none"))
        if kind not in ("none", "usb", "serial", "network"):
            raise PrinterConfigError(
                f"[kiosk] printer = {kind!r} は使えません（none / usb / serial / network）。"
            )
        try:
            settings = cls(
                kind=kind,
                usb_vendor=int(table.get("usb_vendor", 0)),
                usb_product=int(table.get("usb_product", 0)),
                serial_device=str(table.get("serial_device", "")),
                serial_baudrate=int(table.get("serial_baudrate", 19200)),
                network_host=str(table.get("network_host", "")),
                network_port=int(table.get("network_port", 9100)),
            )
        except (TypeError, ValueError):
            raise PrinterConfigError("[kiosk] の数値の設定が読み取れません。") from None
        missing = {
            "usb": not (settings.usb_vendor and settings.usb_product),
            "serial": not settings.serial_device,
            "network": not settings.network_host,
        }.get(kind, False)
        if missing:
            raise PrinterConfigError(
                f"[kiosk] printer = {kind!r} に必要な接続先の設定がありません。"
            )
        return settings


def open_printer(settings: PrinterSettings) -> Escpos | None:
    """The configured printer, or None for `none` (the kiosk shows the QR code on screen)."""
    if settings.kind == "usb":
        return escpos_printer.Usb(settings.usb_vendor, settings.usb_product)
    if settings.kind == "serial":
        return escpos_printer.Serial(settings.serial_device, baudrate=settings.serial_baudrate)
    if settings.kind == "network":
        return escpos_printer.Network(settings.network_host, port=settings.network_port)
    return None


def qr_image(url: str) -> Image.Image:
    """The QR code as a 1-bit image, QR_SCALE dots per module, with the quiet zone."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=QR_SCALE, border=4)
    buffer.seek(0)
    return Image.open(buffer).convert("1")


def _kanji(p: Escpos, text: str) -> None:
    p._raw(KANJI_ON + text.encode("shift_jis", errors="replace") + KANJI_OFF + b"\n")


def print_ticket(
    p: Escpos, label: str, service_name: str, issued_at: float, ahead: int, qr_url: str | None
) -> None:
    """Send one ticket to P and cut."""
    when = dt.datetime.fromtimestamp(issued_at, JST)
    p.set(align="center")
    _kanji(p, "番号札")
    p.set(align="center", bold=True, custom_size=True, width=4, height=4)
    p.text(label + "\n")
    p.set(align="center", normal_textsize=True)
    _kanji(p, service_name)
    _kanji(p, f"{when:%Y年%m月%d日 %H:%M} 発行")
    _kanji(p, f"お待ちの方 {ahead}人")
    if qr_url:
        _kanji(p, "LINEで読み取ると、順番の確認と呼出のお知らせができます")
        p.image(qr_image(qr_url), impl="bitImageRaster")
    _kanji(p, "番号をお呼びするまでお待ちください")
    p.cut()


def screen_qr(url: str) -> str:
    """The QR code as text for the screen (two modules per character cell, half blocks)."""
    out = io.StringIO()
    qr = segno.make(url, error="m")
    matrix = [list(row) for row in qr.matrix]
    size = len(matrix)
    border = 2
    rows = [[0] * (size + 2 * border) for _ in range(border)]
    rows += [[0] * border + row + [0] * border for row in matrix]
    rows += [[0] * (size + 2 * border) for _ in range(border + 1)]
    for top, bottom in zip(rows[0::2], rows[1::2], strict=False):
        line = []
        for a, b in zip(top, bottom, strict=True):
            # Dark modules drawn as dark: light background, so phones read the screen.
            line.append({(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}[(a, b)])
        out.write("".join(line) + "\n")
    return out.getvalue()
