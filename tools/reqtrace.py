"""Requirements trace: `docs/requirements.md` generated from the tests' requirement tags.

    python -m tools.reqtrace           # rewrite docs/requirements.md
    python -m tools.reqtrace --check   # exit 1 when the committed file is stale (CI, and
                                       # tests/unit/foundation/test_requirements_trace.py)

Inputs, all in the repository (it stands alone):
- `docs/requirements-source.md`: the requirement list (IDs, text, source documents), copied
  from the project's requirements;
- `docs/requirements-status.toml`: what tests cannot say — requirements met by a document
  (`document`), only partly met (`partial`) or not built (`not built`), each with a note;
- the tests: a test proves requirement X when it carries `@pytest.mark.req("X")` or when its
  docstring starts with the tag `X:` / `X, Y:` (tests/conftest.py turns those tags into the
  same `req` marker at collection, so `pytest -m req` sees both forms).

Status per ID: `partial` / `not built` / `document` when the status file says so (tests that
carry the tag are listed anyway); otherwise `proven by tests` when at least one test carries
it, else `not built`. The trace is read from the source (AST), not by importing the tests.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs" / "requirements-source.md"
STATUS = ROOT / "docs" / "requirements-status.toml"
OUTPUT = ROOT / "docs" / "requirements.md"
TESTS = ROOT / "tests"

ID = r"[A-Z][0-9]{1,2}"
TAG_RE = re.compile(rf"^\s*({ID}(?:\s*,\s*{ID})*)\s*:")
STATUSES = ("proven by tests", "partial", "document", "not built")


@dataclass(frozen=True)
class Requirement:
    section: str
    ids: tuple[str, ...]
    text: str


def docstring_tags(doc: str | None) -> list[str]:
    """IDs named by a leading docstring tag (`S9, K4: ...`)."""
    if not doc:
        return []
    match = TAG_RE.match(doc)
    return [part.strip() for part in match.group(1).split(",")] if match else []


def parse_source(path: Path = SOURCE) -> tuple[list[Requirement], str]:
    """The requirements (in document order) and the trailing part of the file after the
    tables (the list of source documents), copied as it is."""
    section = ""
    found: list[Requirement] = []
    tail: list[str] = []
    in_tail = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            in_tail = section.lower().startswith("source documents")
        if in_tail:
            tail.append(line)
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and re.fullmatch(rf"{ID}(\s*,\s*{ID})*", cells[0]):
            ids = tuple(i.strip() for i in cells[0].split(","))
            found.append(Requirement(section, ids, cells[1]))
    return found, "\n".join(tail).strip()


def collect_tests(root: Path = TESTS) -> dict[str, list[str]]:
    """ID -> sorted test names (`path::function`) that carry it."""
    proven: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).as_posix()
        module_ids = _pytestmark_ids(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test"):
                continue
            ids = set(module_ids) | set(docstring_tags(ast.get_docstring(node)))
            for decorator in node.decorator_list:
                ids |= set(_marker_ids(decorator))
            for req in ids:
                proven[req].add(f"{rel}::{node.name}")
    return {req: sorted(names) for req, names in proven.items()}


def _marker_ids(node: ast.expr) -> list[str]:
    """IDs of a `pytest.mark.req("A", "B")` expression (anything else: none)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "req"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "mark"
    ):
        return [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
    return []


def _pytestmark_ids(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = (
                node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            )
            for value in values:
                found += _marker_ids(value)
    return found


def load_status(path: Path = STATUS) -> dict[str, dict[str, str]]:
    with path.open("rb") as src:
        data = tomllib.load(src)
    for key, entry in data.items():
        if entry.get("status") not in STATUSES:
            raise SystemExit(f"{path}: {key}: status must be one of {STATUSES}")
        for doc in entry.get("evidence", []):
            if not (ROOT / doc).exists():
                raise SystemExit(f"{path}: {key}: evidence {doc} does not exist")
    return data


def render() -> str:
    requirements, tail = parse_source()
    proven = collect_tests()
    status_file = load_status()
    known = {i for r in requirements for i in r.ids}
    unknown = sorted(set(proven) - known)
    stale = sorted(set(status_file) - {r.ids[0] for r in requirements})
    if stale:
        raise SystemExit(f"{STATUS}: entries for unknown requirement rows: {stale}")
    lines = [
        "# Requirements, traced to tests and documents",
        "",
        "<!-- Generated by `python -m tools.reqtrace` from docs/requirements-source.md,",
        "     docs/requirements-status.toml and the tests' requirement tags. Do not edit:",
        "     tests/unit/foundation/test_requirements_trace.py fails when this file is stale. -->",
        "",
        "Every requirement has an ID (prefix = source document, listed at the end; the Japanese",
        "originals are public municipal documents). A test proves a requirement when it carries",
        '`@pytest.mark.req("S11")` (or, equivalently, its docstring starts with the tag `S11:`).',
        "Statuses: **proven by tests** (at least one test carries the ID), **partial** (built in",
        "part; the note says what is missing), **document** (met by a document or procedure that",
        "ships with the product), **not built**.",
        "",
    ]
    counts: dict[str, int] = defaultdict(int)
    details: list[str] = []
    section = None
    for req in requirements:
        if req.section != section:
            section = req.section
            lines += [
                "",
                f"## {section}",
                "",
                "| ID | requirement | status | evidence |",
                "|---|---|---|---|",
            ]
        tests = sorted({t for i in req.ids for t in proven.get(i, [])})
        entry = status_file.get(req.ids[0], {})
        status = entry.get("status") or ("proven by tests" if tests else "not built")
        counts[status] += 1
        evidence = []
        if tests:
            evidence.append(
                f"[{len(tests)} test{'s' if len(tests) != 1 else ''}](#{_anchor(req.ids)})"
            )
        evidence += [f"`{doc}`" for doc in entry.get("evidence", [])]
        note = entry.get("note", "")
        cell = " — ".join(part for part in ("; ".join(evidence), note) if part)
        lines.append(f"| {', '.join(req.ids)} | {req.text} | {status} | {cell or '—'} |")
        if tests:
            details += ["", f"### {', '.join(req.ids)}", ""] + [f"- `{t}`" for t in tests]
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES)
    lines += ["", f"Summary: {len(requirements)} requirement rows — {summary}."]
    if unknown:
        lines += ["", f"Tags naming no requirement in the list: {', '.join(unknown)}."]
    lines += ["", "## Tests per requirement", *details, "", tail, ""]
    return "\n".join(lines)


def _anchor(ids: tuple[str, ...]) -> str:
    return "-".join(i.lower() for i in ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.reqtrace", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/requirements.md is stale"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print("docs/requirements.md is stale: run `python -m tools.reqtrace`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
