"""The engine: SQL written once in DuckDB's dialect, the same findings on DuckDB and on Spark (issue 14)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _toy import toy_tables
from click.testing import CliRunner
from conftest import make_tiny_tables, write_tables

from fraudkit.cli import main
from fraudkit.data.dataset import Dataset, load_dataset, validate_dataset
from fraudkit.data.engine import DuckDBEngine, open_engine, spark_type_name, to_spark
from fraudkit.errors import FraudkitError

pytestmark = pytest.mark.slow(103)  # about 103 s in all here: the file starts early (tests/conftest.py)

NOW = dt.datetime(2024, 6, 1)
ROOT = Path(__file__).resolve().parents[2]


def test_transpiled_sql_keeps_duckdb_meaning():
    # concat_ws skips NULLs on both engines; sqlglot 29 would turn them into '' (and '; r' on Spark)
    assert to_spark("SELECT concat_ws('; ', CASE WHEN a THEN 'r' END, b)") == \
        "SELECT CONCAT_WS('; ', CASE WHEN a THEN 'r' END, b)"
    assert "RLIKE '^(?:fraud:[a-z]*)$'" in to_spark("SELECT regexp_full_match(z, 'fraud:[a-z]*') FROM t")
    assert "STRUCT(s.a, s.b)" in to_spark("SELECT count(DISTINCT row(s.a, s.b)) FROM s")
    assert "NOT ISNAN(x) AND ABS(x) < CAST('Infinity' AS DOUBLE)" in to_spark("SELECT isfinite(x) FROM t")
    assert to_spark('SELECT arg_min("v", k) FROM "t"') == "SELECT MIN_BY(`v`, k) FROM `t`"


def test_transpiled_feature_sql_keeps_duckdb_meaning():
    # epoch of an interval, DOUBLE division, distinct windows, NULL-skipping any_value, lists, exact quantiles
    assert to_spark("SELECT epoch(ts - lag(ts) OVER (ORDER BY ts)) FROM t") == (
        "SELECT (CAST(UNIX_MICROS(CAST(ts AS TIMESTAMP)) - UNIX_MICROS(CAST(LAG(ts) OVER (ORDER BY ts NULLS LAST) "
        "AS TIMESTAMP)) AS DOUBLE) / 1000000) FROM t")
    assert to_spark("SELECT count(*) / 7.0 FROM t") == "SELECT COUNT(*) / CAST(7.0 AS DOUBLE) FROM t"
    assert to_spark("SELECT count(DISTINCT a) OVER (PARTITION BY ip ORDER BY ts) FROM t") == \
        "SELECT SIZE(COLLECT_SET(a) OVER (PARTITION BY ip ORDER BY ts NULLS LAST)) FROM t"
    assert to_spark("SELECT any_value(s) FROM t") == "SELECT ANY_VALUE(s, TRUE) FROM t"
    assert to_spark("SELECT list_slice(list(x), 2, 40) FROM t") == "SELECT SLICE(COLLECT_LIST(x), 2, 40 - 2 + 1) FROM t"
    assert to_spark("SELECT quantile_cont(v, 0.1) FROM t") == "SELECT PERCENTILE(v, CAST(0.1 AS DOUBLE)) FROM t"


@pytest.mark.spark
def test_feature_sql_constructs_give_the_same_rows_on_spark(spark):
    f = pd.DataFrame({"k": [1, 1, 1, 2, 2], "a": ["x", None, "x", "y", "z"], "v": [1.0, 2.0, 4.0, 8.0, None],
                      "ts": pd.to_datetime(["2024-01-01 00:00:00.5", "2024-01-01 00:00:02", "2024-01-01 01:30:00",
                                            "2024-01-02 00:00:00", "2024-01-02 00:00:00.25"], format="ISO8601")})
    q = ("SELECT k, ts, epoch(ts - lag(ts) OVER (PARTITION BY k ORDER BY ts)) AS gap, epoch(ts) / 3.0 AS e, "
         "epoch(INTERVAL 1 HOUR) AS h, count(DISTINCT a) OVER (PARTITION BY k ORDER BY ts "
         "RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW) AS n FROM f ORDER BY k, ts")
    agg = ("SELECT k, any_value(a) AS a, quantile_cont(v, 0.1) AS p, median(v) AS m, count(*) / 7.0 AS r, "
           "array_to_string(list_slice(list_sort(list(a)), 1, 1), '') AS s FROM f GROUP BY k ORDER BY k")
    duck, sp = DuckDBEngine(), open_engine("spark", spark=spark)
    for e in (duck, sp):
        e.register("f", f)
    for sql in (q, agg):
        a, b = duck.to_pandas(sql), sp.to_pandas(sql)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    duck.close()


def test_spark_types_read_as_the_duckdb_types_the_checks_expect():
    assert [spark_type_name(t) for t in ("bigint", "string", "timestamp_ntz", "timestamp", "boolean")] == \
        ["BIGINT", "VARCHAR", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "BOOLEAN"]


@pytest.mark.spark
def test_spark_to_arrow_keeps_the_row_order_toarrow_gives(spark, tmp_path):
    """Rows gathered through Parquet come in toArrow's order: partition by partition, sorted when asked."""
    sp = open_engine("spark", spark=spark)
    r = spark.range(0, 5000, numPartitions=4).selectExpr("id", "CAST(id * 7919 % 5000 AS STRING) AS k",
                                                         "id % 3 = 0 AS b")
    sp.register("r", r)
    assert sp.to_arrow("SELECT * FROM r").equals(r.toArrow())
    got = sp.to_arrow("SELECT k, id FROM r ORDER BY b DESC, k").to_pandas()
    want = r.toPandas().sort_values(["b", "k"], ascending=[False, True], ignore_index=True)[["k", "id"]]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    empty = sp.to_arrow("SELECT * FROM r WHERE id < 0")
    assert empty.num_rows == 0 and empty.schema.names == ["id", "k", "b"]
    files = sp.export_parquet("SELECT * FROM r", tmp_path / "export")
    assert len(pd.concat(map(pd.read_parquet, files))) == 5000


def test_duckdb_engine_relations_and_parquet(tmp_path):
    e = DuckDBEngine()
    e.register("f", pd.DataFrame({"a": [3, 1, 2], "b": ["x", None, "z"]}))
    e.create_table("t", "SELECT a, b FROM f WHERE a > 1")
    assert e.columns('"t"') == {"a": "BIGINT", "b": "VARCHAR"}
    assert e.rows("SELECT a FROM t ORDER BY a") == [(2,), (3,)]
    assert e.write_parquet("SELECT * FROM t", tmp_path / "t.parquet") == 2
    assert pd.read_parquet(tmp_path / "t.parquet")["a"].sort_values().tolist() == [2, 3]
    files = e.export_parquet("SELECT * FROM t", tmp_path / "export")
    assert sorted(pd.concat(map(pd.read_parquet, files))["a"].tolist()) == [2, 3]
    e.close()
    with pytest.raises(FraudkitError, match="unknown engine 'postgres'"):
        open_engine("postgres")


def _faulty_world(folder: Path) -> Path:
    """The toy world with one fault of each kind planted, as Parquet."""
    t = toy_tables(3)
    lab = t["labels"]
    t["labels"] = pd.concat([lab, lab.iloc[[0]]], ignore_index=True)         # a repeated key of three columns
    acc, it = t["accounts"], t["interactions"]
    it.loc[it.index[3], "action"] = "zap"                                     # outside the vocabulary
    it.loc[it.index[4], "account_id"] = 10_000                                # dangling reference
    it.loc[it.index[5], "ts"] = pd.Timestamp("1980-01-01")                    # out of range
    it.loc[it.index[6], "ip"] = None                                          # nullable: no fault
    it = pd.concat([it, it.iloc[[7]], it.iloc[[8]].assign(action="like")])   # an exact copy; differing copies
    acc.loc[acc.index[2], "register_channel"] = None                          # null in a required column
    acc.loc[acc.index[9], "registered_at"] = pd.Timestamp("2030-01-01")       # in the future: quarantined ...
    t["accounts"], t["interactions"] = acc, it.reset_index(drop=True)        # ... with its events (cascade)
    return write_tables(t, folder)


@pytest.mark.spark
def test_validation_gives_the_same_findings_on_spark(spark, tmp_path):
    data = _faulty_world(tmp_path / "world")
    duck = validate_dataset(data, now=NOW, quarantine=tmp_path / "q_duck")
    sp = validate_dataset(data, now=NOW, quarantine=tmp_path / "q_spark", engine="spark", spark=spark)
    problems = {i.problem for i in duck.issues}
    assert {"value outside the vocabulary", "duplicate key", "null value in a required column"} <= problems
    assert duck.ok and sp.ok
    assert sp.issues == duck.issues
    assert sp.counts == duck.counts and sp.rejected == duck.rejected and sum(duck.rejected.values()) >= 6
    for name in duck.rejected:
        # raw rows as read; Spark keeps timestamps to the microsecond (Parquet nanoseconds are truncated)
        a, b = (_micros(pd.read_parquet(tmp_path / q / f"{name}.parquet")) for q in ("q_duck", "q_spark"))
        key = list(a.columns)
        pd.testing.assert_frame_equal(a.sort_values(key, ignore_index=True), b.sort_values(key, ignore_index=True),
                                      check_dtype=False)
    # without a quarantine every row-level problem is fatal, on both
    assert validate_dataset(data, now=NOW, engine="spark", spark=spark).fatal == \
        validate_dataset(data, now=NOW).fatal


@pytest.mark.spark
def test_a_dataset_from_spark_tables_has_the_contract_views(spark):
    frames = make_tiny_tables()
    ds = Dataset.from_spark(spark, {n: spark.createDataFrame(df) for n, df in frames.items()}, now=NOW)
    ref = Dataset.from_tables(frames, now=NOW)
    assert ds.engine.name == "spark" and ds.tables == ref.tables
    assert ds.report.counts == ref.report.counts
    pd.testing.assert_frame_equal(ds.to_pandas("orders"), ref.to_pandas("orders"), check_dtype=False)
    q = "SELECT account_id, count(*) AS n FROM interactions GROUP BY 1 ORDER BY 1"
    pd.testing.assert_frame_equal(ds.sql(q), ref.sql(q), check_dtype=False)
    assert len(ds.fingerprint) == 16
    with pytest.raises(FraudkitError, match="lives in Spark"):
        ds.con
    bad = dict(frames, orders=frames["orders"].assign(quantity=-1))
    with pytest.raises(Exception, match="quantity"):
        Dataset.from_spark(spark, {n: spark.createDataFrame(df) for n, df in bad.items()}, now=NOW)


@pytest.mark.spark
def test_cli_validate_with_engine_spark_prints_what_duckdb_prints(spark, tmp_path):
    frames = make_tiny_tables()
    frames["orders"].loc[0, "paid_price"] = -5.0
    data = write_tables(frames, tmp_path / "d")
    runner = CliRunner()
    duck = runner.invoke(main, ["validate", str(data)])
    sp = runner.invoke(main, ["validate", str(data), "--engine", "spark"])
    assert duck.exit_code == sp.exit_code == 1
    assert "value below the minimum 0" in duck.output and sp.output == duck.output
    wrong = runner.invoke(main, ["validate", str(data), "--spark-master", "local[1]"])
    assert wrong.exit_code == 2 and "--engine spark" in wrong.output


def _micros(df):
    return df.astype({c: "datetime64[us]" for c, t in df.dtypes.items() if str(t).startswith("datetime64")})


_NO_PYSPARK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark.") or name == "py4j" or name.startswith("py4j."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
sys.argv = ["fraudkit"] + sys.argv[1:]
from fraudkit.cli import main
sys.exit(main())
"""


def _fraudkit_without_pyspark(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", _NO_PYSPARK, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_the_kit_runs_without_pyspark(tmp_path):
    data = write_tables(toy_tables(0), tmp_path / "toy")
    ok = _fraudkit_without_pyspark("validate", data)
    assert ok.returncode == 0, ok.stderr
    scored = _fraudkit_without_pyspark("score", data, "--out", tmp_path / "run", "--stages", "behaviour", "--quiet")
    assert scored.returncode == 0, scored.stderr
    assert (tmp_path / "run" / "scores.parquet").exists()
    spark = _fraudkit_without_pyspark("validate", data, "--engine", "spark")
    assert spark.returncode == 2
    assert "pip install 'fraudkit[spark]'" in spark.stderr
    spark_score = _fraudkit_without_pyspark("score", data, "--out", tmp_path / "run2", "--engine", "spark")
    assert spark_score.returncode == 2 and "Traceback" not in spark_score.stderr
    assert "pip install 'fraudkit[spark]'" in spark_score.stderr and not (tmp_path / "run2").exists()


@pytest.mark.spark
def test_two_datasets_loaded_on_one_spark_session_keep_their_own_tables(spark):
    """Each dataset's views (named by table) live in a session of its own: loading a second dataset (a run's
    training data) does not replace the first's tables."""
    from _report_build import micro_data

    first = load_dataset(micro_data(), engine=open_engine("spark", spark=spark))
    second = load_dataset(micro_data(seed=1000), engine=open_engine("spark", spark=spark))
    local = {s: load_dataset(micro_data(seed=s)) for s in (0, 1000)}
    for name in ("accounts", "interactions", "orders"):
        assert first.count(name) == local[0].count(name)
        assert second.count(name) == local[1000].count(name)
    assert first.count("interactions") != second.count("interactions")


def test_two_threads_on_one_connection_run_one_statement_at_a_time():
    """A statement waits while another thread holds the kit's QUERY_LOCK (a statement with its fetch), and both
    threads' statements on one DuckDB connection give their own rows."""
    import threading

    from fraudkit.data.connection import QUERY_LOCK
    from fraudkit.data.engine import DuckDBEngine

    e = DuckDBEngine()
    got, started = {}, threading.Event()

    def other():
        started.set()
        got["other"] = e.rows("SELECT sum(i) FROM range(1000) t(i)")

    with QUERY_LOCK:
        th = threading.Thread(target=other)
        th.start()
        started.wait(5)
        th.join(0.5)
        assert th.is_alive(), "the other thread's statement ran while the lock was held"
        assert e.rows("SELECT 1") == [(1,)]  # re-entrant: the holder runs its own
    th.join(10)
    assert got["other"] == [(499500,)]
    results = {}

    def many(k):
        results[k] = [e.row(f"SELECT count(*) + {k} FROM range({200 + k})")[0] for _ in range(50)]

    threads = [threading.Thread(target=many, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results == {0: [200] * 50, 1: [202] * 50}
    e.close()
