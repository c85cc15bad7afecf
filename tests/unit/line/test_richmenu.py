"""Rich menu definitions are checked against LINE's limits before anything is sent (S2)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from kairand.errors import DataError
from kairand.line.richmenu import image_size, load_plan

EXAMPLE = Path(__file__).resolve().parents[3] / "provisioning" / "richmenu"


def _copy_example(tmp_path: Path, toml_edit: tuple[str, str] | None = None) -> Path:
    shutil.copy(EXAMPLE / "default.png", tmp_path / "default.png")
    text = (EXAMPLE / "default.toml").read_text(encoding="utf-8")
    if toml_edit:
        assert toml_edit[0] in text
        text = text.replace(*toml_edit)
    path = tmp_path / "menu.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_is_valid() -> None:
    """S2: the example links to the municipality's pages and offers 設定を変更 (a=settings)."""
    plan = load_plan(EXAMPLE / "default.toml")
    actions = [a["action"] for a in plan.request["areas"]]
    assert [a["type"] for a in actions] == ["uri", "uri", "postback"]
    assert actions[2]["data"] == "a=settings" and actions[2]["label"] == "設定を変更"
    assert plan.content_type == "image/png" and len(plan.image) <= 1024 * 1024


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            ('chat_bar_text = "メニュー"', 'chat_bar_text = "メニューメニューメニューメニュー"'),
            "chat_bar_text",
        ),
        (("width = 2500\nheight = 843", "width = 2600\nheight = 843"), "800–2500"),
        (("width = 2500\nheight = 843", "width = 1000\nheight = 800"), "1.45"),
        (("width = 2500\nheight = 843", "width = 2500\nheight = 200"), "250"),
        (('uri = "https://www.city.kairan.example.lg.jp/"', 'uri = "javascript:alert(1)"'), "uri"),
        (('postback = "settings"', 'postback = "drop"'), "postback"),
        (('label = "防災情報"', 'label = "' + "長" * 21 + '"'), "label"),
        (("x = 1667", "x = 2000"), "outside"),
        (('image = "default.png"', 'image = "missing.png"'), "does not exist"),
    ],
)
def test_limits_are_enforced_before_sending(
    tmp_path: Path, edit: tuple[str, str], problem: str
) -> None:
    """S2: LINE's rich-menu limits (size, ratio, chatBarText ≤ 14, labels, areas inside the
    menu, image present) are checked locally with a clear message."""
    with pytest.raises(DataError) as info:
        load_plan(_copy_example(tmp_path, edit))
    assert problem in info.value.message


def test_more_than_20_areas_refused(tmp_path: Path) -> None:
    """S2: at most 20 areas."""
    path = _copy_example(tmp_path)
    area = '\n[[areas]]\nx = 0\ny = 0\nwidth = 10\nheight = 10\nlabel = "a"\nuri = "https://a.example/"\n'
    path.write_text(path.read_text(encoding="utf-8") + area * 18, encoding="utf-8")
    with pytest.raises(DataError, match="1–20"):
        load_plan(path)


def test_image_must_match_size_and_weight(tmp_path: Path) -> None:
    """S2: the image must be PNG/JPEG of exactly the menu size, at most 1 MB."""
    path = _copy_example(tmp_path)
    (tmp_path / "default.png").write_bytes(b"GIF89a" + b"\0" * 100)
    with pytest.raises(DataError, match="neither PNG nor JPEG"):
        load_plan(path)
    png = (EXAMPLE / "default.png").read_bytes()
    (tmp_path / "default.png").write_bytes(png[:16] + struct.pack(">II", 1200, 405) + png[24:])
    with pytest.raises(DataError, match="1200×405"):
        load_plan(path)
    (tmp_path / "default.png").write_bytes(png + b"\0" * (1024 * 1024))
    with pytest.raises(DataError, match="1 MB"):
        load_plan(path)


def test_jpeg_size_is_read_from_its_frame_header() -> None:
    """S2: JPEG images are accepted; their size comes from the SOF marker."""
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\0"
        + b"\0" * 9
        + b"\xff\xc0"
        + struct.pack(">HBHH", 17, 8, 843, 2500)
        + b"\0" * 10
    )
    assert image_size(jpeg) == ("image/jpeg", 2500, 843)
