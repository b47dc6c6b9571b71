"""The NUL screen runs in the COPY's own pass (loader.NulScreen): a text value holding NUL fails
the load naming the column and the row's key, and its batch never reaches PostgreSQL (streams
commit separately, so another stream's rows may be in the table: the sync loads into staging and
drops it, tests/test_exact_copies.py); text that only looks like NUL loads whole."""

import contextlib
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from platform_assets.serving import loader

ROWS_PER_FILE = 6_000


def _dataset(folder: Path, bad_row: int | None) -> ds.Dataset:
    """Two files of three row groups each (so the load runs two streams); row `bad_row` of the
    second file's last row group holds NUL in `name`."""
    folder.mkdir()
    for f in range(2):
        ids = range(f * ROWS_PER_FILE, (f + 1) * ROWS_PER_FILE)
        names = [f"n{i}" if i % 3 else "\\0 x00 \\x00" for i in ids]  # look-alikes, no NUL
        if f == 1 and bad_row is not None:
            names[bad_row] = "Air\x00Bad"
        table = pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())})
        pq.write_table(table, folder / f"part-{f}.parquet", row_group_size=ROWS_PER_FILE // 3)
    return ds.dataset(str(folder), format="parquet")


def _load(serving, dataset: ds.Dataset) -> loader.LoadStats:
    schema = loader.load_schema(dataset.schema)
    with serving.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.nul_screen")
        conn.execute(loader.create_table_ddl("public", "nul_screen", schema))
    return loader.load_dataset(
        serving.conninfo(), "public", "nul_screen", dataset, schema, key=["id"]
    )


def _rows(serving) -> int:
    with serving.connect(autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM public.nul_screen").fetchone()[0]


def test_a_nul_in_any_stream_fails_the_load_naming_the_row_which_never_reaches_postgres(
    serving, tmp_path
):
    bad_row = ROWS_PER_FILE - 7
    with pytest.raises(loader.NulInText) as found:
        _load(serving, _dataset(tmp_path / "bad", bad_row))
    assert found.value.column == "name"
    assert found.value.key == {"id": ROWS_PER_FILE + bad_row}
    with serving.connect(autocommit=True) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM public.nul_screen").fetchall()}
    assert ROWS_PER_FILE + bad_row not in ids and len(ids) < 2 * ROWS_PER_FILE


def test_text_that_only_looks_like_nul_loads_whole(serving, tmp_path):
    stats = _load(serving, _dataset(tmp_path / "clean", None))
    assert stats.rows == _rows(serving) == 2 * ROWS_PER_FILE


def test_a_clean_batch_screened_meanwhile_on_another_stream_never_hides_the_nul():
    """Two streams share one screen. A stream whose clean batch was being screened while the
    other found the NUL must not overwrite the finding with its own None: the load would then
    fail with ADBC's raw error (a traceback in the user's one line) instead of naming the row.
    Forced in order with events, not timing."""
    import threading

    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    clean = pa.record_batch([pa.array([1]), pa.array(["ok"])], schema=schema)
    dirty = pa.record_batch([pa.array([2]), pa.array(["Air\x00Bad"])], schema=schema)
    screen = loader.NulScreen(schema, ["id"])
    clean_screening, nul_found = threading.Event(), threading.Event()
    real = screen.first_nul

    def first_nul(batch: pa.RecordBatch) -> tuple[str, dict] | None:
        if batch.equals(clean):  # the clean stream: hold it until the other found its NUL
            clean_screening.set()
            assert nul_found.wait(30)
        return real(batch)

    screen.first_nul = first_nul  # type: ignore[method-assign]

    stopped: list[pa.RecordBatch] = []

    def drain(batch: pa.RecordBatch) -> None:
        reader = pa.RecordBatchReader.from_batches(schema, [batch])
        with contextlib.suppress(loader.NulInText):
            screen.screened(reader).read_all()
            return
        stopped.append(batch)

    other = threading.Thread(target=drain, args=(clean,))
    other.start()
    assert clean_screening.wait(30)
    drain(dirty)
    nul_found.set()
    other.join(30)
    assert screen.found == ("name", {"id": 2})
    assert len(stopped) == 2  # both streams stop at a NUL found anywhere
