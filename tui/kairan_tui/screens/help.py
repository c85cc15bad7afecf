"""Help (F1 / ?): every key binding of the app and of the screen it was opened from."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from kairan_tui.navigation import SCREENS
from kairan_tui.widgets.wrapped import WrappedText

if TYPE_CHECKING:
    from kairan_tui.app import KairanApp

_KEY_NAMES = {
    "question_mark": "?",
    "escape": "Esc",
    "enter": "Enter",
    "tab": "Tab",
    "delete": "Delete",
}


def key_label(key: str) -> str:
    """As the key bar shows it: a plain letter stays lower case (「r」), a combination is
    written out (「Ctrl+R」), function keys upper case (「F5」)."""
    if len(key) == 1:
        return key
    parts = []
    for part in key.split("+"):
        part = _KEY_NAMES.get(part, part)
        parts.append(part.capitalize() if len(part) > 1 and part[0] != "f" else part.upper())
    return "+".join(parts)


def key_rows(rows: list[tuple[str, str]]) -> list[Horizontal]:
    """One row per key: the key in a fixed column, what it does wrapped beside it."""
    width = max((cell_len(key) for key, _ in rows), default=0) + 2
    result = []
    for key, what in rows:
        key_label_widget = Static(key, classes="help-key")
        key_label_widget.styles.width = width
        result.append(
            Horizontal(key_label_widget, WrappedText(what, classes="help-what"), classes="help-row")
        )
    return result


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "閉じる"),
        Binding("f1", "close", "閉じる", show=False),
        Binding("q", "close", "閉じる", show=False),
    ]

    def __init__(self, origin: Screen) -> None:
        super().__init__()
        self.origin = origin

    def compose(self) -> ComposeResult:
        app = cast("KairanApp", self.app)
        visible = set(app.visible_screens)
        screens = [
            (entry.key_display or key_label(entry.key), f"{entry.title}：{entry.help}")
            for entry in SCREENS
            if entry.name in visible
        ]
        local: list[tuple[str, str]] = []
        seen: set[str] = set()
        for binding in getattr(self.origin, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description and binding.key not in seen:
                seen.add(binding.key)
                local.append((key_label(binding.key), binding.description))
        common = [
            ("F1 / ?", "このヘルプを表示します（Esc で閉じます）"),
            ("Ctrl+P", "メニュー（コマンドパレット）：画面名を入力して移動できます"),
            ("Tab / Shift+Tab", "次の項目 / 前の項目へ移動します"),
            ("Enter / Space", "ボタンを押す・選択肢を選びます"),
            ("↑ ↓", "一覧の行を選びます"),
            ("Ctrl+Q", "終了します"),
        ]
        title = getattr(self.origin, "SCREEN_TITLE", "")
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static("ヘルプ（キー操作の一覧）", classes="dialog-title")
            with VerticalScroll():
                if local:
                    yield Static(f"この画面（{title}）の操作", classes="help-heading")
                    yield from key_rows(local)
                yield Static("画面の切り替え", classes="help-heading")
                yield from key_rows(screens)
                yield Static("共通の操作", classes="help-heading")
                yield from key_rows(common)
                yield WrappedText(
                    "配信・承認・配信中止は、確認画面で配信対象人数を確かめてから Y キーで"
                    "実行します。誤操作を防ぐため、Enter キーでは実行されません。",
                    classes="help-note",
                )
            yield Static("Esc キーで閉じます。", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
