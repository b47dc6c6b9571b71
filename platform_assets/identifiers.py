"""SQL identifier quoting, written once for every dialect the platform speaks (PostgreSQL,
DuckDB and Athena/Trino all quote identifiers with double quotes, doubled inside; SQL sent to
PostgreSQL is composed with `psycopg.sql`, which quotes the same way)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from psycopg import sql

if TYPE_CHECKING:
    from typing import LiteralString


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A string literal in the same three dialects (single quotes, doubled inside)."""
    return "'" + text.replace("'", "''") + "'"


def trusted_sql(text: str) -> sql.SQL:
    """SQL text that is neither an identifier nor a value but a fragment the platform made
    itself: a type from the one type mapping, an index body or a partition bound PostgreSQL
    printed, a statement written in this repository. Identifiers still go in through
    `sql.Identifier`, values as parameters: this only tells psycopg's types the text is ours."""
    return sql.SQL(cast("LiteralString", text))
