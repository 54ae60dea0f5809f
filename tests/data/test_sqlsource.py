"""The SQL view of the contract tables: views made on first use, frames on a Dataset's connection."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudkit.data.dataset import Dataset
from fraudkit.data.sqlsource import open_source


def _views(raw) -> set:
    return {r[0] for r in raw.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def _tables(raw) -> set:
    return {r[0] for r in raw.execute("SHOW TABLES").fetchall()}


def test_a_view_is_made_when_its_table_is_first_read_and_dropped_at_close(tiny_tables):
    with Dataset.from_tables(tiny_tables) as ds:
        raw = ds.con.con
        before = _views(raw)
        src = open_source(ds)
        assert _views(raw) == before  # opening makes no view
        n = src.scalar(f"SELECT count(*) FROM {src.t.interactions}")
        assert n == len(tiny_tables["interactions"])
        assert _views(raw) - before == {src.t.interactions}
        assert src.t.interactions == src.name("interactions")  # the same name on every read
        src.close()
        assert _views(raw) == before
        with pytest.raises(AttributeError):
            src.t.no_such_table


def test_frames_on_a_datasets_connection_read_as_on_their_own(tiny_tables):
    frames = {"orders": tiny_tables["orders"].assign(extra=lambda f: f["account_id"].astype(str) + "x")}
    sql = "SELECT account_id, extra, ts FROM {} ORDER BY account_id, ts, extra"
    with open_source(frames) as own:
        expected = own.df(sql.format(own.t.orders))
    with Dataset.from_tables(tiny_tables) as ds:
        raw = ds.con.con
        tables, views = _tables(raw), _views(raw)
        with open_source(frames, host=ds) as src:
            assert src.con is raw
            got = src.df(sql.format(src.t.orders))
            assert len(_tables(raw) - tables) == 2  # the frame, registered under a name of its own, and its view
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert _tables(raw) == tables and _views(raw) == views  # frame and views forgotten at close
        assert len(ds.to_pandas("orders")) == len(tiny_tables["orders"])  # the connection stays the Dataset's


def test_frames_without_a_host_get_their_own_connection(tiny_tables):
    frames = {"orders": tiny_tables["orders"]}
    with Dataset.from_tables(tiny_tables) as ds, open_source(frames) as own, open_source(frames, host=None) as other:
        assert own.con is not ds.con.con and other.con is not own.con
        assert own.scalar(f"SELECT count(*) FROM {own.t.orders}") == len(frames["orders"])


@pytest.mark.parametrize("span_days", [1, 40, 63, 64, 200, 504, 505, 900])
def test_day_and_hour_masks_count_what_count_distinct_counts(span_days):
    import duckdb
    import numpy as np

    from fraudkit.data.sqlsource import distinct_days, distinct_hours

    rng = np.random.default_rng(span_days)
    n = 4000
    ts = pd.Timestamp("2024-02-27") + pd.to_timedelta(rng.integers(0, span_days * 86400, n), unit="s")
    f = pd.DataFrame({"k": rng.integers(0, 60, n), "ts": pd.Series(ts).where(rng.random(n) > 0.05)})
    f.loc[f["k"] == 7, "ts"] = pd.NaT  # a group of nulls only: 0, as count(DISTINCT) says
    con = duckdb.connect()
    con.register("f", f)
    days = con.execute("SELECT min(CAST(ts AS DATE)), max(CAST(ts AS DATE)) FROM f").fetchone()
    got = con.execute(f"SELECT k, {distinct_days('ts', days)} AS d, {distinct_hours('ts')} AS h, "
                      "count(DISTINCT CAST(ts AS DATE)) AS d0, count(DISTINCT hour(ts)) AS h0 "
                      "FROM f GROUP BY k ORDER BY k").df()
    assert got["d"].tolist() == got["d0"].tolist()
    assert got["h"].tolist() == got["h0"].tolist()
    assert got.loc[got["k"] == 7, ["d", "h"]].values.tolist() == [[0, 0]]
    assert str(got["d"].dtype) == "int64" and str(got["h"].dtype) == "int64"
    masked = "bit_or" in distinct_days("ts", days)
    assert masked == (span_days <= 504)  # 8 masks of 63 days; a longer range: count(DISTINCT)


def test_day_and_hour_masks_count_the_same_on_spark(spark):
    import numpy as np

    from fraudkit.data.engine import to_spark
    from fraudkit.data.sqlsource import distinct_days, distinct_hours

    rng = np.random.default_rng(3)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 150 * 86400, 500), unit="s")
    f = pd.DataFrame({"k": rng.integers(0, 9, 500), "ts": ts})
    spark.createDataFrame(f).createOrReplaceTempView("fk_masks")
    days = (f["ts"].min().date(), f["ts"].max().date())
    sql = (f"SELECT k, {distinct_days('ts', days)} AS d, {distinct_hours('ts')} AS h FROM fk_masks "
           "GROUP BY k ORDER BY k")
    got = spark.sql(to_spark(sql)).toPandas()
    want = f.groupby("k").agg(d=("ts", lambda s: s.dt.date.nunique()), h=("ts", lambda s: s.dt.hour.nunique()))
    assert got["d"].tolist() == want["d"].tolist() and got["h"].tolist() == want["h"].tolist()


def test_a_query_read_through_arrow_has_the_dtypes_duckdb_gives():
    """The Spark path of :meth:`SqlSource.df` (Arrow to pandas) gives DuckDB's ``.df()`` dtypes and values:
    DECIMAL as float64 (Spark types ``0.5`` DECIMAL), integers and booleans with a null as nullable types."""
    import duckdb

    from fraudkit.data.sqlsource import _duckdb_dtypes

    con = duckdb.connect()
    sql = ("SELECT * FROM (VALUES (1, 0.5, CAST(2.25 AS DECIMAL(38, 10)), 7, true, TIMESTAMP '2024-01-01 10:00:00', "
           "'a'), (2, 1.5, NULL, NULL, NULL, NULL, NULL)) AS t(i, d, w, n, b, ts, s)")
    arrow = con.execute(sql).to_arrow_table()
    want, got = con.execute(sql).df(), _duckdb_dtypes(arrow)
    assert str(arrow.schema.field("d").type).startswith("decimal")
    assert got.dtypes.astype(str).tolist() == want.dtypes.astype(str).tolist()
    assert got.dtypes.astype(str).tolist()[:5] == ["int32", "float64", "float64", "Int32", "boolean"]
    pd.testing.assert_frame_equal(got, want)
