"""docs/semantics.md and the tests agree: every row is checked, and every row a test names exists.

The rows are read from the document's tables (``| `area.name` | applies to | behaviour |``);
the tests' rows from their ``@covers(...)`` marks: the conformance suite's tests
(``artifactio.testing.ConformanceSuite``) and the test functions and methods of the
modules in this directory. A row that applies to ``all`` backends must be checked by
the suite; a row for one kind of backend may be checked by that backend's tests here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from artifactio.testing import ConformanceSuite, covered_rows, covers
from artifactio.testing._covers import ROW_ID

DOC = Path(__file__).resolve().parent.parent / "docs" / "semantics.md"
TESTS = Path(__file__).resolve().parent
SCOPES = ("all", "local", "filesystem", "object")

_ROW_LINE = re.compile(r"\|\s*`(?P<id>[^`]+)`\s*\|\s*(?P<scope>[^|]*?)\s*\|\s*(?P<text>.*?)\s*\|")


@dataclass(frozen=True)
class Row:
    """One behaviour row of the document."""

    id: str
    scope: str
    text: str
    line: int


@dataclass(frozen=True)
class MarkedTest:
    """A test and the rows it names."""

    name: str
    rows: tuple[str, ...]
    in_suite: bool


def parse_rows(text: str) -> dict[str, Row]:
    """The behaviour rows of ``text``.

    Raises:
        ValueError: A row that does not parse, an ID twice, an unknown scope.
    """
    rows: dict[str, Row] = {}
    for number, line in enumerate(text.splitlines(), 1):
        head = re.match(r"\|\s*`([^`]*)`", line)
        if head is None or "." not in head.group(1):
            continue  # not a behaviour row (the "applies to" legend has no dotted IDs)
        match = _ROW_LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"line {number}: not a row of three columns: {line!r}")
        row = Row(match["id"], match["scope"], match["text"], number)
        if ROW_ID.fullmatch(row.id) is None:
            raise ValueError(f"line {number}: {row.id!r} is not an ID (area.name, lower case)")
        if row.scope not in SCOPES:
            raise ValueError(f"line {number}: {row.id}: scope {row.scope!r} is not in {SCOPES}")
        if not row.text:
            raise ValueError(f"line {number}: {row.id} says nothing")
        if row.id in rows:
            raise ValueError(f"line {number}: {row.id} is also on line {rows[row.id].line}")
        rows[row.id] = row
    return rows


def suite_tests() -> list[MarkedTest]:
    """Every test of the conformance suite, with the rows it names."""
    return [
        MarkedTest(f"ConformanceSuite.{name}", covered_rows(func), in_suite=True)
        for name, func in inspect.getmembers(ConformanceSuite, inspect.isfunction)
        if name.startswith("test_")
    ]


def module_tests() -> list[MarkedTest]:
    """The tests defined in this directory's modules (not the suite's, inherited)."""
    found: list[MarkedTest] = []
    for path in sorted(TESTS.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value) and name.startswith("test_"):
                found.append(MarkedTest(f"{path.stem}.{name}", covered_rows(value), False))
            elif inspect.isclass(value) and name.startswith("Test"):
                for attr, func in vars(value).items():
                    if attr.startswith("test_") and inspect.isfunction(func):
                        qualified = f"{path.stem}.{name}.{attr}"
                        found.append(MarkedTest(qualified, covered_rows(func), False))
    return found


def problems(rows: dict[str, Row], tests: list[MarkedTest]) -> list[str]:
    """What is wrong between the document's rows and the tests' marks (``[]``: nothing)."""
    found: list[str] = []
    checked_by: dict[str, list[MarkedTest]] = {row: [] for row in rows}
    for test in tests:
        if test.in_suite and not test.rows:
            found.append(f"{test.name} names no row: mark it with @covers(...)")
        for row in test.rows:
            if row not in checked_by:
                found.append(f"{test.name} names {row!r}, which docs/semantics.md does not have")
            else:
                checked_by[row].append(test)
    for row_id, checking in checked_by.items():
        row_info = rows[row_id]
        if not checking:
            found.append(f"{row_id} (line {row_info.line}) has no test")
        elif row_info.scope == "all" and not any(test.in_suite for test in checking):
            names = ", ".join(test.name for test in checking)
            found.append(f"{row_id} applies to all backends but only {names} checks it")
    return found


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    return parse_rows(DOC.read_text(encoding="utf-8"))


def test_document_has_rows(rows: dict[str, Row]) -> None:
    assert len(rows) > 80
    assert {row.scope for row in rows.values()} == set(SCOPES)


def test_rows_and_tests_agree(rows: dict[str, Row]) -> None:
    found = problems(rows, [*suite_tests(), *module_tests()])
    assert not found, "\n".join(found)


def test_every_suite_test_names_a_row() -> None:
    tests = suite_tests()
    assert len(tests) > 90
    assert [test.name for test in tests if not test.rows] == []


# ------------------------------------------------------------- the check can fail

DOC_SAMPLE = """
| applies to | backends |
| --- | --- |
| `all` | every backend |

| ID | applies to | behaviour |
| --- | --- | --- |
| `remove.file` | all | deletes one file |
| `walk.links` | local | links are listed, not entered |
"""


def test_parse_rows() -> None:
    rows = parse_rows(DOC_SAMPLE)
    assert list(rows) == ["remove.file", "walk.links"]
    assert rows["walk.links"].scope == "local"
    assert rows["remove.file"].text == "deletes one file"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("| `remove.file` | all | again |", "also on line"),
        ("| `remove.other` | everywhere | x |", "scope"),
        ("| `remove.other` | all |", "three columns"),
        ("| `Remove.Other` | all | x |", "not an ID"),
        ("| `remove.other` | all |  |", "says nothing"),
    ],
)
def test_parse_rows_rejects(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rows(DOC_SAMPLE + line + "\n")


def test_problems_are_found() -> None:
    rows = parse_rows(DOC_SAMPLE)
    suite = MarkedTest("Suite.test_remove", ("remove.file",), True)
    local = MarkedTest("test_local.test_links", ("walk.links",), False)
    assert problems(rows, [suite, local]) == []
    assert problems(rows, [suite]) == ["walk.links (line 9) has no test"]
    assert problems(rows, [local, MarkedTest("test_x.test_remove", ("remove.file",), False)]) == [
        "remove.file applies to all backends but only test_x.test_remove checks it"
    ]
    unknown = MarkedTest("Suite.test_new", ("remove.nothing",), True)
    assert problems(rows, [suite, local, unknown]) == [
        "Suite.test_new names 'remove.nothing', which docs/semantics.md does not have"
    ]
    unmarked = MarkedTest("Suite.test_plain", (), True)
    assert problems(rows, [suite, local, unmarked]) == [
        "Suite.test_plain names no row: mark it with @covers(...)"
    ]


def test_covers_marks_and_stacks() -> None:
    @covers("remove.file")
    @covers("walk.links", "remove.file")
    def test_sample() -> None:
        pass

    assert covered_rows(test_sample) == ("walk.links", "remove.file")
    assert covered_rows(test_problems_are_found) == ()
    for bad in ("nodot", "Upper.case", "a.", ".b", "a b.c"):
        with pytest.raises(ValueError, match="not a row ID"):
            covers(bad)
    with pytest.raises(ValueError, match="at least one"):
        covers()
