"""Facts defined once: Japan time (kairand.timeutil), the canonical JSON every signature and
chain link covers (kairand.evidence) and the Japanese role names (kairand.glossary). A second
copy could drift (a different encoding breaks every signature check), so a copy fails here."""

from __future__ import annotations

import re
from pathlib import Path

import kairan_tui
import kairand

DAEMON = Path(kairand.__file__).parent
TUI = Path(kairan_tui.__file__).parent
OWN_COPY_ALLOWED = {"simulator"}  # imports nothing of the daemon, by design


def _sources() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DAEMON.rglob("*.py")):
        relative = path.relative_to(DAEMON).as_posix()
        if relative.split("/", 1)[0] in OWN_COPY_ALLOWED:
            continue
        found.append((relative, path.read_text(encoding="utf-8")))
    return found


def _defining(pattern: str) -> list[str]:
    return [name for name, text in _sources() if re.search(pattern, text)]


def test_japan_time_is_defined_once() -> None:
    assert _defining(r"timedelta\(hours=9\)") == ["timeutil.py"]


def test_the_terminal_defines_japan_time_once() -> None:
    # The TUI may import nothing of kairand but the API schema, so it has its own copy: one.
    found = [
        path.relative_to(TUI).as_posix()
        for path in sorted(TUI.rglob("*.py"))
        if re.search(r"timedelta\(hours=9\)", path.read_text(encoding="utf-8"))
    ]
    assert found == ["labels.py"]


def test_canonical_json_is_defined_once() -> None:
    assert _defining(r"sort_keys=True,\s*separators=") == ["evidence/__init__.py"]


def test_japanese_role_names_come_from_the_glossary() -> None:
    assert _defining("監査担当") == ["glossary.py"]
