import pandas as pd
import pytest

from fraudkit.data.datalayer import connect, daily_counts, distinct_counts, execute, register, window_seconds
from fraudkit.data.dataset import Dataset
from fraudkit.errors import FraudkitError, MissingInputError


@pytest.fixture
def interactions(tiny_tables):
    return tiny_tables["interactions"]


def _duck(df):
    return register(connect(), {"interactions": df})["interactions"]


def test_daily_counts_on_duckdb(interactions):
    out = execute(daily_counts(_duck(interactions)))
    assert list(out.columns) == ["account_id", "day", "action", "n"]
    assert out["n"].sum() == len(interactions)
    expected = (interactions.assign(day=interactions["ts"].dt.normalize())
                .groupby(["account_id", "day", "action"]).size().reset_index(name="n"))
    pd.testing.assert_frame_equal(out, expected.sort_values(list(expected.columns)).reset_index(drop=True),
                                  check_dtype=False)
    assert str(out["day"].dtype) == "datetime64[ns]"


def test_daily_counts_without_category(interactions):
    out = execute(daily_counts(_duck(interactions), by=None))
    assert out.loc[(out.account_id == 4), "n"].tolist() == [2]
    assert out["n"].sum() == len(interactions)


def test_distinct_counts_accounts_per_device(interactions):
    out = execute(distinct_counts(_duck(interactions), "device_id", "account_id"))
    # device 102 is shared by the farm accounts 4 and 5; null devices are no entity
    assert out.values.tolist() == [[100, 1], [101, 1], [102, 2]]


def test_distinct_counts_in_windows(interactions):
    out = execute(distinct_counts(_duck(interactions), "ip", "account_id", window="1D"))
    assert set(out.columns) == {"ip", "window_start", "n_account_id"}
    assert out["window_start"].dt.normalize().eq(out["window_start"]).all()
    row = out[out.ip == "110.80.1.7"]
    assert row[["window_start", "n_account_id"]].values.tolist() == [[pd.Timestamp("2024-03-01"), 2]]


def test_transforms_run_on_a_dataset(tiny_tables):
    ds = Dataset.from_tables(tiny_tables)
    out = execute(distinct_counts(ds.table("orders"), "address", "account_id"))
    assert out["n_account_id"].sum() == 4


def test_register_paths(tmp_path, interactions):
    interactions.to_parquet(tmp_path / "i.parquet", index=False)
    interactions.to_csv(tmp_path / "i.csv", index=False)
    con = connect()
    t = register(con, {"p": tmp_path / "i.parquet", "c": tmp_path / "i.csv"})
    assert int(t["p"].count().execute()) == int(t["c"].count().execute()) == len(interactions)


def test_bad_input(interactions):
    con = connect()
    with pytest.raises(FraudkitError, match="unknown backend"):
        connect("postgres")
    with pytest.raises(FraudkitError, match="expected a DataFrame"):
        register(con, {"x": [1, 2]})
    with pytest.raises(FraudkitError, match="does not exist"):
        register(con, {"x": "/nonexistent/x.parquet"})
    with pytest.raises(MissingInputError, match="'ts'"):
        daily_counts(_duck(interactions.drop(columns="ts")))
    with pytest.raises(FraudkitError, match="window"):
        window_seconds("soon")
    with pytest.raises(FraudkitError, match="window"):
        window_seconds("0s")
    assert window_seconds(pd.Timedelta(hours=1)) == 3600


# --- the same expressions on Spark --------------------------------------------------------


# the session-wide ``spark`` fixture is in tests/conftest.py


@pytest.mark.spark
def test_spark_and_duckdb_agree(spark, interactions):
    duck = _duck(interactions)
    sp = register(connect("spark", spark=spark), {"interactions": interactions})["interactions"]
    for make in (lambda t: daily_counts(t),
                 lambda t: distinct_counts(t, "device_id", "account_id"),
                 lambda t: distinct_counts(t, "account_id", "ip", window="6h")):
        a, b = execute(make(duck)), execute(make(sp))
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)
