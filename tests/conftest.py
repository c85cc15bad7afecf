"""Shared fixtures: a real development setup (config, DirectoryKeyring, SQLCipher store)."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from kairand.config import Config, load_config
from kairand.devsetup import init_dev
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Store


@pytest.fixture(autouse=True)
def no_blocking_on_event_loop(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Fail any blocking call (file, socket, sleep, subprocess...) that Kairan's own code makes
    on a running event loop. Store calls have their own guard (Store.bind_loop)."""
    if request.node.get_closest_marker("allow_blocking"):
        yield None
        return
    with blockbuster_ctx(["kairand", "kairan_tui"]) as guard:
        yield guard


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path (unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="kt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dev_setup(short_tmp: Path) -> Path:
    """`kairanctl init --dev` into a fresh folder; returns the config path."""
    return init_dev(short_tmp / "dev")


@pytest.fixture
def config(dev_setup: Path) -> Config:
    cfg = load_config(dev_setup)
    select_keyring(cfg)
    return cfg


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    yield s
    s.close()


_REQ_TAG = re.compile(r"^\s*([A-Z][0-9]{1,2}(?:\s*,\s*[A-Z][0-9]{1,2})*)\s*:")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test whose docstring starts with requirement tags (`S9, K4: ...`) carries the same
    `req` markers as `@pytest.mark.req("S9", "K4")` would give it (tools/reqtrace.py reads
    both forms from the source; this makes `pytest -m req` agree)."""
    for item in items:
        function = getattr(item, "function", None)
        match = _REQ_TAG.match((function.__doc__ or "") if function else "")
        if match:
            for tag in match.group(1).split(","):
                item.add_marker(pytest.mark.req(tag.strip()))
