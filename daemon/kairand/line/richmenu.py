"""`kairanctl richmenu apply FILE.toml` (S2): placeholder, completed below."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
