"""kairand.api.schema is the TUI's only window on the daemon: importing it must not pull in the
server, the store, the SQLCipher driver, aiohttp or the LINE SDK (N5: the TUI never touches
residents' data), and its request shapes refuse unknown fields."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kairand.api import schema

CHECK = """
import sys
import kairand.api.schema
loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                {"aiohttp", "sqlcipher3", "sqlite3", "linebot", "keyring"}
                or m.startswith(("kairand.store", "kairand.api.app", "kairand.delivery.service")))
print(",".join(loaded))
"""


@pytest.mark.allow_blocking
def test_schema_imports_no_server_code() -> None:
    """N5: a fresh interpreter importing the schema loads none of the daemon's I/O modules."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_request_shapes_forbid_unknown_fields() -> None:
    """Every request model (name ending in Request/Update/Query) refuses unknown fields."""
    requests = [
        getattr(schema, name)
        for name in schema.__all__
        if name.endswith(("Request", "Update", "Query"))
    ]
    assert len(requests) >= 6
    for model in requests:
        assert model.model_config.get("extra") == "forbid", model.__name__
