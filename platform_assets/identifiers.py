"""SQL identifier quoting, written once for every dialect the platform speaks: PostgreSQL,
DuckDB and Athena/Trino queries quote identifiers with double quotes, doubled inside (SQL sent to
PostgreSQL is composed with `psycopg.sql`, which quotes the same way); Athena's DDL, parsed by
Hive, with backticks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from psycopg import sql

if TYPE_CHECKING:
    from typing import LiteralString


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_idents(names: Iterable[str]) -> list[str]:
    """`quote_ident` of each name (a statement's columns, quoted in one call)."""
    return [quote_ident(n) for n in names]


def quote_qualified(*parts: str) -> str:
    """`"schema"."name"`: each part quoted, joined by dots."""
    return ".".join(quote_ident(p) for p in parts)


def quote_literal(text: str) -> str:
    """A string literal in the same three dialects (single quotes, doubled inside)."""
    return "'" + text.replace("'", "''") + "'"


def trusted_sql(text: str) -> sql.SQL:
    """SQL text that is neither an identifier nor a value but a fragment the platform made
    itself: a type from the one type mapping, an index body or a partition bound PostgreSQL
    printed, a statement written in this repository. Identifiers still go in through
    `sql.Identifier`, values as parameters: this only tells psycopg's types the text is ours."""
    return sql.SQL(cast("LiteralString", text))


def trusted_sqls(texts: Iterable[str]) -> list[sql.SQL]:
    """`trusted_sql` of each text (a table's column types, in one call)."""
    return [trusted_sql(t) for t in texts]


def quote_ddl_ident(name: str) -> str:
    """An identifier in Athena's DDL, which Hive parses: backticks, doubled inside (its queries,
    Trino's, take `quote_ident`)."""
    return "`" + name.replace("`", "``") + "`"
