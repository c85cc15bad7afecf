"""`kairan`: the staff terminal's entry point (`kairan --socket PATH` or `--config PATH`)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/kairan/kairan.toml")
DEFAULT_SOCKET = Path("/run/kairan/api.sock")


def socket_from_config(path: Path) -> Path | None:
    """[api] socket from a kairan.toml (relative paths are relative to the file), if readable.

    Read with tomllib directly: the TUI imports nothing from the daemon but the API schema.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    api = raw.get("api")
    value = api.get("socket") if isinstance(api, dict) else None
    if not isinstance(value, str) or not value:
        return None
    socket = Path(value)
    return socket if socket.is_absolute() else path.parent.resolve() / socket


def resolve_socket(socket: Path | None, config: Path | None) -> Path:
    if socket is not None:
        return socket
    if config is not None:
        found = socket_from_config(config)
        if found is None:
            raise SystemExit(
                f"kairan: 設定ファイル {config} から接続先（[api] socket）を読み取れませんでした。"
                "ファイルの場所と内容を確認するか、--socket で接続先を指定してください。"
            )
        return found
    return socket_from_config(DEFAULT_CONFIG) or DEFAULT_SOCKET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kairan",
        description="Kairan 職員用画面：LINE公式アカウントの配信作成・承認・履歴の確認を行います。",
    )
    parser.add_argument(
        "--socket",
        type=Path,
        help="kairand の職員用APIソケット（既定：/etc/kairan/kairan.toml の [api] socket、"
        "読めない場合は /run/kairan/api.sock）",
    )
    parser.add_argument("--config", type=Path, help="接続先を読み取る設定ファイル（kairan.toml）")
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="名前=ソケット",
        help="訓練モード用：Ctrl+B で切り替える立場とその接続先（例：研修 承認者=run/x.sock）。"
        "複数指定できます",
    )
    parser.add_argument(
        "--export-dir",
        type=Path,
        help="取扱状況報告書などを保存するフォルダー（既定：ホームフォルダー）",
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("kiosk", "board"),
        help="kiosk：番号札の発券機、board：待合の呼出表示盤（省略時は職員用画面）",
    )
    return parser


def parse_identities(values: list[str]) -> list[tuple[str, Path]]:
    identities = []
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label.strip() or not path.strip():
            raise SystemExit(
                f"kairan: --identity は「名前=ソケット」の形で指定してください（{value}）。"
            )
        identities.append((label.strip(), Path(path.strip())))
    return identities


def kiosk_table(config: Path | None) -> dict:
    """The [kiosk] table of kairan.toml (printer settings), empty when absent or unreadable."""
    try:
        raw = tomllib.loads((config or DEFAULT_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    table = raw.get("kiosk")
    return table if isinstance(table, dict) else {}


def training_scan_file(config: Path | None) -> Path | None:
    """[kiosk] training_scan_file, honoured only in training mode ([daemon] training_mode):
    where the kiosk leaves each QR link for the simulated phone (kairan-sim-chat `scan`)."""
    path = config or DEFAULT_CONFIG
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    daemon = raw.get("daemon")
    if not (isinstance(daemon, dict) and daemon.get("training_mode") is True):
        return None
    value = kiosk_table(config).get("training_scan_file")
    if not isinstance(value, str) or not value:
        return None
    return Path(value) if Path(value).is_absolute() else path.resolve().parent / value


def run_mode(mode: str, socket: Path, config: Path | None) -> int:
    from kairan_tui.client import KairanApi

    api = KairanApi(socket)
    if mode == "board":
        from kairan_tui.board import BoardApp

        BoardApp(api).run()
        return 0
    from kairan_tui.kiosk import KioskApp
    from kairan_tui.kiosk_print import PrinterConfigError, PrinterSettings, open_printer

    try:
        printer = open_printer(PrinterSettings.from_table(kiosk_table(config)))
    except PrinterConfigError as exc:
        raise SystemExit(f"kairan kiosk: {exc}") from None
    except Exception as exc:  # the printer is absent or unreachable: the QR goes on screen
        print(
            f"kairan kiosk: プリンターに接続できません（{type(exc).__name__}）。"
            "画面表示で続けます。"
        )
        printer = None
    KioskApp(api, printer, scan_file=training_scan_file(config)).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    socket = resolve_socket(args.socket, args.config)
    if args.mode:
        return run_mode(args.mode, socket, args.config)
    from kairan_tui.app import make_app
    from kairan_tui.hangup import HANGUP_STATUS, HangupWatch

    app = make_app(socket, identities=parse_identities(args.identity), export_dir=args.export_dir)

    def request_exit() -> None:
        app.call_from_thread(app.exit, return_code=HANGUP_STATUS)

    watch = HangupWatch(request_exit).start() if sys.stdin.isatty() else None
    app.run()
    if watch is not None:
        watch.stop()
        if watch.hung_up.is_set():
            return HANGUP_STATUS
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
