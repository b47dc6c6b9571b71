"""SQL identifier quoting, written once for every dialect the platform speaks (PostgreSQL,
DuckDB and Athena/Trino all quote identifiers with double quotes, doubled inside)."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
