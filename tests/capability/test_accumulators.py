"""Tests for fraudkit.capability.accumulators (named counters over a key and a window)."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from _toy import toy_tables

from fraudkit.capability.accumulators import (
    DEFAULT_ACCUMULATORS,
    Accumulator,
    compute,
    compute_by_table,
    observed_days,
    parse_window,
    window_expr,
    with_accumulators,
)
from fraudkit.errors import MissingInputError


def _orders():
    ts = pd.to_datetime(["2024-01-01 08:00", "2024-01-01 20:00", "2024-01-02 07:59", "2024-01-02 09:00",
                         "2024-01-02 09:00"])
    return pd.DataFrame({"order_id": [5, 4, 3, 2, 1], "ts": ts, "account_id": [1, 2, 1, 3, 3],
                         "address": ["a", "a", "a", "a", None], "product_id": [9, 9, 9, 8, 9],
                         "quantity": [1, 2, 3, 4, 5], "device_id": ["x", "x", "y", "x", "x"], "promotion_id": 7})


def test_sum_count_distinct_include_current_row():
    accs = [Accumulator("u", key=("address", "product_id"), value="quantity", window="24h", agg="sum"),
            Accumulator("n", key="address", window="24h", agg="count"),
            Accumulator("k", key="address", value="account_id", window=None, agg="count_distinct")]
    out = compute(accs, {"orders": _orders()}).set_index("order_id")
    # order 5 (08:00) is 23h59 before order 3 (07:59 next day): inside the window
    assert out.u.to_dict() == {5: 1.0, 4: 3.0, 3: 6.0, 2: 4.0, 1: pytest.approx(np.nan, nan_ok=True)}
    assert out.n.loc[[5, 4, 3, 2]].tolist() == [1.0, 2.0, 3.0, 3.0]  # 2 (09:00) drops 5 (08:00 day before)
    assert out.k.loc[[5, 4, 3, 2]].tolist() == [1.0, 2.0, 2.0, 3.0]
    assert np.isnan(out.loc[1, "n"])  # null address: no counter, row kept
    assert list(out.index) == [1, 2, 3, 4, 5]


def test_where_counts_matching_rows_only_and_every_row_kept():
    it = pd.DataFrame({"event_id": [1, 2, 3], "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:10",
                                                                     "2024-01-01 10:20"]),
                       "account_id": 1, "device_id": "d", "ip": None, "action": ["like", "view", "like"],
                       "target_id": 5})
    acc = Accumulator("likes", key="device_id", window="1h", agg="count", table="interactions",
                      where={"action": "like"})
    assert compute([acc], {"interactions": it}).likes.tolist() == [1.0, 1.0, 2.0]
    acc2 = Accumulator("engage", key="device_id", window="1h", agg="count", table="interactions",
                       where={"action": ["like", "view"]})
    assert compute([acc2], {"interactions": it}).engage.tolist() == [1.0, 2.0, 3.0]


def test_as_of_and_defaults_on_toy():
    t = toy_tables(0)
    by = compute_by_table(DEFAULT_ACCUMULATORS, t)
    assert set(by) == {"orders", "coupon_claims", "interactions"}
    assert len(by["orders"]) == len(t["orders"]) and len(by["interactions"]) == len(t["interactions"])
    c = by["coupon_claims"]
    assert c.acc_coupons_per_device_promotion.max() == 12
    cut = t["orders"].ts.sort_values().iloc[40]
    early = compute([a for a in DEFAULT_ACCUMULATORS if a.table == "orders"], t, as_of=cut)
    assert len(early) == (t["orders"].ts < cut).sum()
    full = by["orders"].set_index("order_id").loc[early.order_id]
    # counters only look back, so rows before the cut are identical
    np.testing.assert_array_equal(early.drop(columns=["order_id", "ts"]).to_numpy(),
                                  full.drop(columns="ts").to_numpy())


def test_parse_window():
    assert parse_window("24h") == "INTERVAL 24 HOUR"
    assert parse_window("90s") == "INTERVAL 90 SECOND"
    assert parse_window("7d") == "INTERVAL 7 DAY"
    for bad in ("24", "h", "-1h", "0h", "1 week", "1h; DROP TABLE x"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_bad_declarations():
    with pytest.raises(ValueError, match="not in table"):
        Accumulator("a", key=("nope",), table="orders")
    with pytest.raises(ValueError, match="needs a value"):
        Accumulator("a", key=("address",), agg="sum")
    with pytest.raises(ValueError, match="agg"):
        Accumulator("a", key=("address",), agg="median", value="quantity")
    with pytest.raises(ValueError, match="timed"):
        Accumulator("a", key=("product_id",), table="products")
    with pytest.raises(ValueError, match="snake_case"):
        Accumulator("Bad Name", key=("address",))
    with pytest.raises(ValueError, match="where value"):
        compute([Accumulator("a", key=("address",), where={"address": object()})], {"orders": _orders()})
    o = Accumulator("a", key=("address",))
    i = Accumulator("b", key=("device_id",), table="interactions")
    with pytest.raises(ValueError, match="compute_by_table"):
        compute([o, i], {"orders": _orders()})
    with pytest.raises(ValueError, match="duplicate"):
        compute([o, o], {"orders": _orders()})
    with pytest.raises(Exception, match="orders"):
        compute([o], {"interactions": _orders()})


def test_where_quotes_values_safely():
    o = _orders().assign(address=["it's", "it's", "a", "a", "a"])
    acc = Accumulator("q", key=("product_id",), window=None, agg="count", where={"address": "it's"})
    assert compute([acc], {"orders": o}).set_index("order_id").q.loc[[5, 4]].tolist() == [1.0, 2.0]


def test_observed_days_window_registration_cut_and_floor():
    acc = pd.DataFrame({"account_id": [3, 1, 2], "registered_at": pd.to_datetime(["2024-01-04 18:00", "2022-01-01 00:00",
                                                                                  "2024-01-02 12:00"]),
                        "register_channel": "app", "phone": None})
    orders = _orders()  # the window starts at the first order, 2024-01-01 08:00
    logins = pd.DataFrame({"login_id": [1], "account_id": [1], "device_id": "x", "ip": None,
                           "ts": pd.to_datetime(["2024-01-05 08:00"])})
    got = observed_days({"accounts": acc, "orders": orders, "logins": logins})  # ends after the last login
    assert got.account_id.tolist() == [1, 2, 3]
    assert got.observed_days.tolist() == pytest.approx([4 + 1 / 86400, 2 + 20 / 24 + 1 / 86400, 1.0])
    cut = observed_days({"accounts": acc, "orders": orders, "logins": logins}, as_of="2024-01-03 08:00")
    # point in time: the later login and account 3 (registered after the cut) are not seen
    assert cut.set_index("account_id").observed_days.to_dict() == {1: 2.0, 2: 1.0}  # 2: 20 hours, floored
    # without accounts: every account with events, observed over the whole window
    alone = observed_days({"orders": orders}, as_of="2024-01-03 08:00")
    assert alone.observed_days.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(MissingInputError, match="accounts table or an event table"):
        observed_days({"promotions": pd.DataFrame({"promotion_id": [1], "name": "a", "starts_at": pd.NaT,
                                                   "ends_at": pd.NaT})})


def test_counters_counted_per_second_equal_the_window_over_the_rows():
    """The rules' interaction frame counts a counter accumulator once per (key, second) and sums that over its window
    (with_accumulators): every row's count must be the plain window's over the rows, with ties in time,
    null keys and rows the counter does not count."""
    rng = np.random.default_rng(11)
    n = 4000
    frame = pd.DataFrame({"event_id": np.arange(n),
                          "device_id": pd.array(np.where(rng.random(n) < 0.1, None,
                                                         rng.integers(0, 40, n).astype(str)), dtype=object),
                          "action": rng.choice(["like", "view", "comment"], n),
                          "ts": pd.Timestamp("2024-06-01") + pd.to_timedelta(rng.integers(0, 6 * 3600, n) // 60 * 60,
                                                                             unit="s")})
    accs = [Accumulator("likes_1h", key=("device_id",), window="1h", agg="count", table="interactions",
                        where={"action": "like"}),
            Accumulator("acts_ever", key=("device_id", "action"), window=None, agg="count", table="interactions"),
            Accumulator("devices_1h", key=("action",), value="device_id", window="1h", agg="count_distinct",
                        table="interactions")]
    con = duckdb.connect()
    con.register("i", frame)
    cols = list(frame.columns)
    got = con.execute(with_accumulators("i", cols, accs) + " ORDER BY event_id").df()
    plain = con.execute(f"SELECT *, {', '.join(window_expr(a, 'ts') for a in accs)} FROM i ORDER BY event_id").df()
    assert list(got.columns) == cols + [a.name for a in accs]
    pd.testing.assert_frame_equal(got, plain)
    assert got["likes_1h"].isna().sum() == frame["device_id"].isna().sum() > 0
    assert got["likes_1h"].max() > 1 and (got["likes_1h"] == 0).any()  # counted within windows, zero where no like
