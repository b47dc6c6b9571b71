"""The layout keeps what docs/DESIGN.md ("Layout") promises, read from the source (nothing runs).

Each rule is one a newcomer relies on to find things: the shipped code never reaches into tests or
benchmarks, a test module never borrows from another one nor from a benchmark, nor a benchmark
from another (harnesses live in tests/support/),
`resources/` depends on nothing but the lake contract and SQL quoting, and no SQL statement
spells the platform's schema instead of naming it from `names.PLATFORM_SCHEMA`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("platform_assets", "resources", "dashboard", "local_instance")
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|FROM|JOIN)\b")
PLATFORM_TABLE = re.compile(r"\bplatform\.[a-z_]+\b")


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts `a` and `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _offenders(files: list[Path], bad: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if bad.match(name)
    ]


def test_shipped_code_imports_neither_tests_nor_benchmarks():
    assert _offenders(_files(*SHIPPED), re.compile(r"(tests|benchmarks)(\.|$)")) == []


def test_a_test_module_imports_no_other_test_module():
    assert _offenders(_files("tests", "benchmarks"), re.compile(r"tests\.test_")) == []


def test_tests_borrow_from_tests_support_not_from_benchmarks():
    assert _offenders(_files("tests"), re.compile(r"benchmarks(\.|$)")) == []


def test_a_benchmark_imports_no_other_benchmark():
    """What two benchmarks share is a harness in tests/support/, not one script's insides."""
    scripts = "|".join(p.stem for p in _files("benchmarks"))
    bad = re.compile(rf"(benchmarks\.)?({scripts})(\.|$)")
    assert _offenders(_files("benchmarks"), bad) == []


def test_resources_depend_only_on_the_lake_contract_and_quoting():
    other = re.compile(r"platform_assets\.(?!lake(\.|$)|identifiers(\.|$))")
    assert _offenders(_files("resources"), other) == []


def _sql_texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal that is not a docstring (f-strings: their text)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_sql_statement_spells_the_platform_schema():
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {', '.join(PLATFORM_TABLE.findall(text))}"
        for path in _files(*SHIPPED)
        for line, text in _sql_texts(path)
        if SQL.search(text) and PLATFORM_TABLE.search(text)
    ]
    assert spelled == []
