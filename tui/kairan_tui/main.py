"""`kairan`: the staff terminal's entry point."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("kairan: 職員用画面はまだ準備中です。", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
