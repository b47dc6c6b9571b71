"""Every type the Gold SQL can produce, with the values that used to go wrong (helpers for
tests/test_fingerprint.py and tests/test_exact_copies.py).

Each column cycles through its values (NULL included) over rows spread across months, so a
change in one cell names one month. `athena_sql()` is the same table written as Athena SQL, for
building it through the real lake asset.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from decimal import Decimal, localcontext
from decimal import Decimal as D

import pyarrow as pa

from platform_assets.lake.fingerprint import NULL_TEXT

UTC = dt.UTC
KOLKATA = dt.timezone(dt.timedelta(hours=5, minutes=30))

# column -> (Arrow type, Athena type, values)
COLUMNS: dict[str, tuple[pa.DataType, str, list]] = {
    "i8": (pa.int8(), "TINYINT", [-128, 127, 0, None, 1]),
    "i16": (pa.int16(), "SMALLINT", [-32768, 32767, 0, None, 1]),
    "i32": (pa.int32(), "INTEGER", [-(2**31), 2**31 - 1, 0, None, 1]),
    "i64": (pa.int64(), "BIGINT", [-(2**63), 2**63 - 1, 0, None, 1]),
    "f": (
        pa.float64(),
        "DOUBLE",
        [
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            0.0,
            1234567890123456.8,
            9.3e14 + 0.5,
            5e-324,
            1.7976931348623157e308,
            0.1 + 0.2,
            None,
        ],
    ),
    "dec": (
        pa.decimal128(38, 10),
        "DECIMAL(38,10)",
        [
            D("1234567.1234567891"),
            D("-99999999999.9999999999"),
            D("0E-10"),
            D("9999999999999999999999999999.9999999999"),
            D("-0.0000000001"),
            None,
        ],
    ),
    "dec2": (pa.decimal128(10, 2), "DECIMAL(10,2)", [D("1.50"), D("-0.01"), None, D("0.00")]),
    "t": (pa.string(), "VARCHAR", ["\\N", "", None, "a|b", "é🦆", "N", "3:abc", "x"]),
    "dt": (
        pa.date32(),
        "DATE",
        [dt.date(1, 1, 1), dt.date(9999, 12, 31), None, dt.date(2000, 2, 29)],
    ),
    "ts": (
        pa.timestamp("us"),
        "TIMESTAMP",
        [
            dt.datetime(2013, 1, 1, 0, 0, 0, 1),
            dt.datetime(1970, 1, 1),
            None,
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            dt.datetime(2000, 2, 29, 12, 30, 59, 500000),
        ],
    ),
    "tz": (
        pa.timestamp("us", tz="UTC"),
        "TIMESTAMP WITH TIME ZONE",
        [
            dt.datetime(2013, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            dt.datetime(2013, 3, 31, 1, 59, 59, 999999, tzinfo=UTC),
            None,
            dt.datetime(1970, 1, 1, tzinfo=UTC),
            dt.datetime(2000, 2, 29, 18, 0, 0, 7, tzinfo=UTC),
        ],
    ),
    "b": (pa.bool_(), "BOOLEAN", [True, False, None]),
    "bin": (pa.binary(), "VARBINARY", [b"\x00", b"", None, b"\xff|", b"\\N"]),
}
ROWS = 24  # two years of months: every value of every column appears, NULL included


def row_date(i: int) -> dt.date:
    return dt.date(2013 + i // 12, 1 + i % 12, 1 + (i * 7) % 28)


def month(i: int) -> str:
    return row_date(i).strftime("%Y-%m")


def value(column: str, i: int):
    values = COLUMNS[column][2]
    return values[i % len(values)]


def table() -> pa.Table:
    data = {
        "id": pa.array(range(ROWS), pa.int64()),
        "d": pa.array([row_date(i) for i in range(ROWS)], pa.date32()),
    }
    for name, (arrow_type, _, _) in COLUMNS.items():
        data[name] = pa.array([value(name, i) for i in range(ROWS)], arrow_type)
    return pa.table(data)


def _literal(column: str, v) -> str:
    athena_type = COLUMNS[column][1]
    if v is None:
        return f"CAST(NULL AS {athena_type})"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = "NaN" if math.isnan(v) else "Infinity" if v == math.inf else repr(v)
        text = "-Infinity" if v == -math.inf else text
        return f"CAST('{text}' AS DOUBLE)"
    if isinstance(v, bytes):
        return f"FROM_HEX('{v.hex()}')"
    if isinstance(v, dt.datetime) and v.tzinfo is not None:  # written in another zone on purpose
        local = v.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
        return f"CAST('{local.replace(tzinfo=None).isoformat(' ')} Asia/Kolkata' AS {athena_type})"
    if isinstance(v, dt.datetime):
        return f"CAST('{v.isoformat(' ')}' AS {athena_type})"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return f"CAST('{v}' AS {athena_type})"


def athena_sql() -> str:
    selects = []
    for i in range(ROWS):
        cols = [f"CAST({i} AS BIGINT) AS id", f"DATE '{row_date(i).isoformat()}' AS d"]
        cols += [f"{_literal(name, value(name, i))} AS {name}" for name in COLUMNS]
        selects.append("SELECT " + ", ".join(cols))
    return "\nUNION ALL\n".join(selects) + "\n"


def same(a, b) -> bool:
    """Cell equality that sees what == does not: NaN equals NaN, -0.0 differs from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a == b and (a.tzinfo is None) == (b.tzinfo is None)
    return type(a) is type(b) and a == b


def smallest_change(column: str, v):
    """The smallest step the column's type allows away from `v` (NULL becomes a value that
    renders like the old NULL text, and a value becomes NULL)."""
    if v is None:
        special = {"t": NULL_TEXT, "bin": b"", "f": 0.0}  # what renders closest to NULL
        return special.get(column, next(v for v in COLUMNS[column][2] if v is not None))
    if isinstance(v, bool):
        return not v
    if isinstance(v, float):
        if math.isnan(v):
            return -math.nan if math.copysign(1, v) > 0 else math.nan
        if v == 0.0:
            return -v if math.copysign(1, v) > 0 else 0.0
        return math.nextafter(v, 0.0)
    if isinstance(v, Decimal):
        step = Decimal(1).scaleb(v.as_tuple().exponent)
        with localcontext(prec=60):  # 38 digits exactly, not the default 28
            return v - step if v > 0 else v + step
    if isinstance(v, dt.datetime):
        return v + dt.timedelta(microseconds=1 if v.year < 9999 else -1)
    if isinstance(v, dt.date):
        return v + dt.timedelta(days=1 if v.year < 9999 else -1)
    if isinstance(v, bytes):
        return bytes([v[0] ^ 1]) + v[1:] if v else None
    if isinstance(v, str):
        return v[:-1] + chr(ord(v[-1]) + 1) if v else None
    return v - 1 if v > 0 else v + 1  # integers, towards zero: always in range
