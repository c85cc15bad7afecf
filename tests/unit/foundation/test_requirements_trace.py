"""The requirements trace (docs/requirements.md) is generated from the tests' tags and must
be committed up to date; the collector sees markers, docstring tags and module pytestmark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tools import reqtrace  # noqa: E402


def test_committed_requirements_table_is_current() -> None:
    """Fails when a test's tags, the requirement list or the status file changed without
    `python -m tools.reqtrace` being run (the CI check)."""
    assert reqtrace.OUTPUT.read_text(encoding="utf-8") == reqtrace.render(), (
        "docs/requirements.md is stale: run `python -m tools.reqtrace`"
    )
    assert reqtrace.main(["--check"]) == 0


def test_collector_reads_markers_docstring_tags_and_pytestmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "import pytest\n"
        "pytestmark = [pytest.mark.req('K2')]\n"
        "@pytest.mark.req('S11')\n"
        "@pytest.mark.req('S13', 'S18')\n"
        "def test_one():\n    pass\n"
        "def test_two():\n    '''N5, S7: tagged in the docstring.'''\n"
        "def test_three():\n    '''Mentions S9: only after other words.'''\n"
        "def test_four():\n    '''No tag here, although S8 is named.'''\n"
        "def helper():\n    '''S10: not a test.'''\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(reqtrace, "ROOT", tmp_path)
    found = reqtrace.collect_tests(tests)
    assert found["S11"] == found["S13"] == found["S18"] == ["tests/test_a.py::test_one"]
    assert found["N5"] == found["S7"] == ["tests/test_a.py::test_two"]
    assert len(found["K2"]) == 4  # the module mark applies to every test
    assert "S8" not in found and "S10" not in found and "S9" not in found


@pytest.mark.req("S18")
def test_the_marker_is_registered_and_applied(request: pytest.FixtureRequest) -> None:
    """Docstring tags and the marker end up as the same `req` marker at collection."""
    assert [m.args for m in request.node.iter_markers("req")] == [("S18",)]
    assert any(line.startswith("req(") for line in request.config.getini("markers"))


def test_every_status_entry_names_a_real_row_and_untested_rows_are_not_built() -> None:
    requirements, _ = reqtrace.parse_source()
    text = reqtrace.render()
    proven = reqtrace.collect_tests()
    status = reqtrace.load_status()
    for req in requirements:
        row = next(
            line for line in text.splitlines() if line.startswith(f"| {', '.join(req.ids)} |")
        )
        tested = any(proven.get(i) for i in req.ids)
        if req.ids[0] in status:
            assert f"| {status[req.ids[0]]['status']} |" in row
        elif tested:
            assert "| proven by tests |" in row
        else:
            assert "| not built |" in row
