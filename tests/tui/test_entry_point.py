"""`kairan --socket PATH` / `--config PATH`: where the TUI connects (no daemon code imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kairan_tui import main


def test_socket_option_wins(tmp_path: Path) -> None:
    """An explicit --socket is used as given."""
    config = tmp_path / "kairan.toml"
    config.write_text('[api]\nsocket = "/run/elsewhere.sock"\n', encoding="utf-8")
    assert main.resolve_socket(Path("/tmp/x.sock"), config) == Path("/tmp/x.sock")


def test_config_socket_relative_to_the_file(tmp_path: Path) -> None:
    """--config reads [api] socket; a relative path is relative to the config's folder,
    as the daemon reads it."""
    config = tmp_path / "kairan.toml"
    config.write_text('[api]\nsocket = "run/api.sock"\n', encoding="utf-8")
    assert main.resolve_socket(None, config) == tmp_path.resolve() / "run" / "api.sock"


def test_unreadable_config_is_explained_in_japanese(tmp_path: Path) -> None:
    """A --config that cannot be read stops with a Japanese message naming the file."""
    missing = tmp_path / "nothing.toml"
    with pytest.raises(SystemExit) as stop:
        main.resolve_socket(None, missing)
    assert str(missing) in str(stop.value) and "読み取れませんでした" in str(stop.value)


def test_default_falls_back_to_run_kairan(tmp_path: Path, monkeypatch) -> None:
    """Without options: /etc/kairan/kairan.toml's socket if readable, else the default."""
    monkeypatch.setattr(main, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    assert main.resolve_socket(None, None) == Path("/run/kairan/api.sock")
    present = tmp_path / "kairan.toml"
    present.write_text('[api]\nsocket = "/srv/kairan/api.sock"\n', encoding="utf-8")
    monkeypatch.setattr(main, "DEFAULT_CONFIG", present)
    assert main.resolve_socket(None, None) == Path("/srv/kairan/api.sock")


def test_help_is_japanese() -> None:
    """`kairan --help` explains the options in Japanese."""
    out = subprocess.run(
        [sys.executable, "-m", "kairan_tui.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "職員用画面" in out and "--socket" in out and "--config" in out
