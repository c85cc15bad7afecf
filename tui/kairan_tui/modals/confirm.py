"""Confirmation before an action that cannot be undone (send, 承認, 配信中止).

Holding Enter must never confirm: the 実行 button is not focused (キャンセル is), keys are ignored
for GUARD_SECONDS after opening (key repeat of the key that opened the dialog), and the
keyboard shortcut to confirm is a distinct key (Y), not Enter.

A held key must not reach the screen underneath either: the repeats of the key that closed the
dialog (a held Enter cancels it after GUARD_SECONDS) would otherwise go to the widget that had the
focus before, e.g. toggle an option of the 配信対象 list on every repeat, so the delivery would be
submitted next with an audience the author never chose. The app swallows those repeats (HeldKey).
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from kairan_tui.widgets.wrapped import WrappedText

GUARD_SECONDS = 0.5
HOLD_GAP_SECONDS = 1.0
"""Repeats of a held key arrive every few tens of milliseconds; a gap this long ends the hold."""


def _clock() -> float:
    """Monotonic seconds (a function so tests can drive the guard without sleeping)."""
    return time.monotonic()


class HeldKey:
    """The rest of a held key after the dialog it was aimed at has closed.

    The app asks swallows() for each key press: a press of the same key within
    HOLD_GAP_SECONDS of the previous one is still the same hold and is dropped; any other key,
    or a pause, ends the hold.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self._last = 0.0

    def start(self, key: str, at: float) -> None:
        self.key = key
        self._last = at

    def stop(self) -> None:
        self.key = None

    def swallows(self, key: str) -> bool:
        if self.key is None:
            return False
        now = _clock()
        if key == self.key and now - self._last < HOLD_GAP_SECONDS:
            self._last = now
            return True
        self.stop()
        return False


class ConfirmModal(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer(False)", "やめる"),
        Binding("n", "answer(False)", "やめる", show=False),
        Binding("y", "answer(True)", "実行する（Y）"),
    ]

    def __init__(
        self,
        title: str,
        body: str,
        *,
        confirm_label: str,
        audience: int | None = None,
        danger: bool = True,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.audience = audience
        self.danger = danger
        self._opened_at = _clock()
        self._last_key: tuple[str, float] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            if self.audience is not None:
                yield Static(
                    f"配信対象人数：{self.audience:,} 人", id="confirm-audience", classes="audience"
                )
            yield WrappedText(self.body, classes="dialog-body")
            yield WrappedText(
                "実行するには Y キーを押してください（Enter キーでは実行されません）。"
                "やめる場合は Esc キーを押してください。",
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel", variant="default")
                yield Button(
                    f"{self.confirm_label}（Y）",
                    id="confirm",
                    variant="error" if self.danger else "primary",
                )

    def on_mount(self) -> None:
        self._opened_at = _clock()
        # A dialog opened right after another one guards itself against key repeat (above).
        held = getattr(self.app, "held_key", None)
        if isinstance(held, HeldKey):
            held.stop()
        # The confirm button takes no focus: Enter (or a held Enter) can only ever cancel.
        self.query_one("#confirm", Button).can_focus = False
        self.query_one("#cancel", Button).focus()

    def _guarded(self) -> bool:
        return _clock() - self._opened_at < GUARD_SECONDS

    async def _on_key(self, event: events.Key) -> None:
        self._last_key = (event.key, _clock())
        # Swallow key repeat from the key that opened this dialog.
        if self._guarded():
            event.stop()
            event.prevent_default()

    def action_answer(self, answer: bool) -> None:
        if self._guarded():
            return
        self._close(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self._guarded():
            return
        self._close(event.button.id == "confirm")

    def _close(self, answer: bool) -> None:
        # The key that closed the dialog may still be held: keep its repeats off the screen below.
        held = getattr(self.app, "held_key", None)
        if isinstance(held, HeldKey) and self._last_key is not None:
            held.start(*self._last_key)
        self.dismiss(answer)
