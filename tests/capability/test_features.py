"""Tests for fraudkit.capability.features (stage-1 per-entity features)."""

import numpy as np
import pandas as pd
import pytest
from _toy import T0, toy_tables

from fraudkit.capability.features import (
    ACCOUNT_FEATURES,
    WINDOW_COUNTS,
    account_behaviour,
    account_features,
    address_features,
    device_features,
    entity_features,
    first_activity,
    interaction_features,
    ip24_features,
    ip_features,
    order_features,
    phone_features,
    window_invariant,
)
from fraudkit.errors import MissingInputError

FARM = range(121, 145)
SCALPERS = range(145, 157)


@pytest.fixture(scope="module")
def toy():
    return toy_tables(0)


def _tiny(ts, actions=None, accounts=None, devices=None):
    n = len(ts)
    it = pd.DataFrame({"event_id": np.arange(n), "ts": pd.to_datetime(ts),
                       "account_id": accounts or [1] * n, "device_id": devices or ["d1"] * n,
                       "ip": ["10.0.0.1"] * n, "action": actions or ["like"] * n, "target_id": [5] * n})
    acc = pd.DataFrame({"account_id": sorted(set(it.account_id)), "registered_at": pd.Timestamp("2024-01-01"),
                        "register_channel": "app", "phone": None})
    return {"accounts": acc, "interactions": it}


def test_account_columns_rows_and_inputs_untouched(toy):
    before = {k: v.copy() for k, v in toy.items()}
    f = account_features(toy)
    assert list(f.columns) == ["account_id", *ACCOUNT_FEATURES]
    assert f.account_id.tolist() == sorted(toy["accounts"].account_id)
    for k, v in toy.items():
        pd.testing.assert_frame_equal(v, before[k])


def test_sliding_windows_and_shares_exact():
    ts = ["2024-01-02 10:00:00", "2024-01-02 10:00:20", "2024-01-02 10:00:50", "2024-01-02 10:01:30",
          "2024-01-02 10:50:00", "2024-01-02 12:00:00"]
    f = account_features(_tiny(ts, actions=["view", "like", "like", "like", "collect", "view"])).iloc[0]
    assert f.max_actions_per_minute == 3  # 10:00:00..10:00:50, or 10:00:50..10:01:30 (2)
    assert f.max_actions_per_hour == 5
    assert f.max_actions_per_day == 6
    assert f.share_like == pytest.approx(0.5)
    assert f.like_view_ratio == pytest.approx(4 / 2)
    assert f.n_actions == 6 and f.n_active_days == 1


def test_rhythm_regular_gaps_and_entropy():
    ts = pd.date_range("2024-01-02 01:00", periods=10, freq="2s")
    f = account_features(_tiny(ts)).iloc[0]
    assert f.same_gap_share == 1.0
    assert f.gap_cv == pytest.approx(0.0)
    assert f.hour_entropy == pytest.approx(0.0)
    assert f.night_share == 1.0
    spread = pd.to_datetime([f"2024-01-02 {h:02d}:00:00" for h in range(0, 24, 3)])
    g = account_features(_tiny(spread)).iloc[0]
    assert g.hour_entropy == pytest.approx(np.log2(8))


def test_point_in_time(toy):
    cut = T0 + pd.Timedelta(days=1)
    base = account_behaviour(toy, as_of=cut)
    later = {k: v.copy() for k, v in toy.items()}
    extra = toy["interactions"].head(200).copy()
    extra["ts"] = cut + pd.Timedelta(hours=1)
    extra["event_id"] += 10**6
    later["interactions"] = pd.concat([toy["interactions"], extra], ignore_index=True)
    late_orders = toy["orders"].copy()
    late_orders["ts"] += pd.Timedelta(days=30)
    late_orders["order_id"] += 10**6
    later["orders"] = pd.concat([toy["orders"], late_orders], ignore_index=True)
    pd.testing.assert_frame_equal(base, account_behaviour(later, as_of=cut))
    earlier = {k: v.copy() for k, v in toy.items()}
    extra["ts"] = cut - pd.Timedelta(hours=1)
    earlier["interactions"] = pd.concat([toy["interactions"], extra], ignore_index=True)
    changed = account_behaviour(earlier, as_of=cut)
    assert not changed.n_actions.equals(base.n_actions)
    # the cut hides what was not known yet: deliveries after as_of
    o = account_features(toy, as_of=T0 + pd.Timedelta(days=3))
    full = account_features(toy)
    assert (o.received_share.fillna(0) <= full.received_share.fillna(0) + 1e-12).all()


def test_farm_and_scalper_signals(toy):
    f = account_features(toy).set_index("account_id")
    honest = f.loc[1:120]
    farm = f.loc[list(FARM)]
    assert (farm.max_accounts_per_device == 8).all() and honest.max_accounts_per_device.max() == 1
    assert farm.like_view_ratio.min() > honest.like_view_ratio.max()
    assert farm.same_gap_share.min() == 1.0
    assert farm.low_pop_target_share.min() == 1.0 > honest.low_pop_target_share.max()
    assert (farm.max_env_contradiction > honest.max_env_contradiction.median()).all()
    sc = f.loc[list(SCALPERS)]
    assert (sc.accounts_per_phone == 12).all() and (sc.discount_value == 300).all()
    assert (sc.resource_list_hits >= 1).all() and sc.list_hits.sum() == 1
    assert (f.n_coupon_claims.loc[list(SCALPERS)] == 1).all()


def test_device_contradiction_learned_from_data():
    dev = pd.DataFrame({"device_id": [f"d{i}" for i in range(12)], "model": "M1", "os": ["ios"] * 11 + ["android"],
                        "os_version": "16", "screen": ["A"] * 10 + ["B", "A"], "app_version": "8",
                        "is_emulator": False, "is_rooted": False, "fingerprint": [f"fp{i}" for i in range(12)],
                        "first_seen": pd.Timestamp("2024-01-01")})
    d = device_features({**_tiny(["2024-01-02 00:00:00"]), "devices": dev}).set_index("device_id")
    assert d.loc["d10", "screen_model_share"] == pytest.approx(2 / 13)
    assert d.loc["d11", "os_model_share"] == pytest.approx(2 / 13)
    assert d.loc["d0", "env_contradiction"] == pytest.approx(1 - 12 / 13)
    assert d.env_contradiction.idxmax() in ("d10", "d11")


def test_other_entities(toy):
    ip = ip_features(toy).set_index("ip")
    assert ip.loc["172.16.0.9", "n_accounts"] == 24
    ip24 = ip24_features(toy)
    assert ip24.ip24.str.endswith(".0/24").all()
    assert phone_features(toy).set_index("phone").loc["13900000000", "n_accounts"] == 12
    addr = address_features(toy).set_index("address")
    assert addr.loc["warehouse 1", "n_accounts"] == 12 and addr.loc["warehouse 1", "n_units"] == 72
    o = order_features(toy)
    assert len(o) == len(toy["orders"]) and o.order_id.is_unique
    assert o.acc_units_per_address_product_24h.max() == 72
    i = interaction_features(toy, columns=["acc_likes_per_device_1h"])
    assert list(i.columns) == ["event_id", "account_id", "acc_likes_per_device_1h"] and len(i) == len(
        toy["interactions"])


def test_missing_optional_tables_complete():
    f = entity_features(_tiny(["2024-01-02 00:00:00", "2024-01-02 00:00:10"]))
    assert f["account"].n_orders.tolist() == [0.0]
    assert np.isnan(f["account"].max_env_contradiction.iloc[0])
    assert f["address"].empty and f["order"].empty


def test_first_activity(toy):
    fa = first_activity(toy).set_index("account_id")
    assert fa.loc[121, "first_ts"] >= T0 + pd.Timedelta(days=1)
    assert (fa.first_ts <= fa.last_ts).all()


def test_dataset_input_matches_dict(toy):
    io = pytest.importorskip("fraudkit.data.dataset")
    ds = io.Dataset.from_tables({k: v for k, v in toy.items()}, validate=False)
    a = account_features(ds)
    b = account_features(toy)
    pd.testing.assert_frame_equal(a.drop(columns="account_id"), b.drop(columns="account_id"), check_dtype=False)


def test_bad_input():
    with pytest.raises(TypeError):
        account_features([1, 2, 3])
    with pytest.raises(MissingInputError):
        account_features({"accounts": _tiny(["2024-01-02 00:00:00"])["accounts"]})
    it = _tiny(["2024-01-02 00:00:00"])
    with pytest.raises(MissingInputError, match="time column"):
        account_features({**it, "interactions": it["interactions"].drop(columns="ts")})


def test_device_registration_span(toy):
    f = account_features(toy).set_index("account_id")
    # the farm registered together (span 0 on its shared devices); honest devices are not shared
    assert (f.loc[121:144, "min_device_reg_span_days"] == 0).all()
    assert f.loc[1:120, "min_device_reg_span_days"].isna().all()


def _codevice_tables():
    """Device d1: accounts 1 and 2 act on the same notes minutes apart (a farm's wave). Device d2: accounts 3
    and 4 have their own notes, one note in common three days apart, 4 follows an author whose key equals one
    of 3's notes, and both order product 99 ten minutes apart. Account 5 is alone on d3."""
    t = pd.Timestamp("2024-01-02 10:00")
    m, d = pd.Timedelta(minutes=1), pd.Timedelta(days=1)
    rows = [(t, 1, "d1", "like", 10), (t + m, 1, "d1", "like", 11), (t + 2 * m, 1, "d1", "view", 12),
            (t + 3 * m, 2, "d1", "like", 10), (t + 4 * m, 2, "d1", "like", 11), (t + 5 * m, 2, "d1", "like", 11),
            (t, 3, "d2", "view", 20), (t, 3, "d2", "like", 21), (t, 3, "d2", "view", 40),
            (t, 4, "d2", "view", 30), (t, 4, "d2", "like", 31), (t + 3 * d, 4, "d2", "view", 40),
            (t, 4, "d2", "follow", 20), (t, 5, "d3", "like", 10)]
    it = pd.DataFrame(rows, columns=["ts", "account_id", "device_id", "action", "target_id"])
    it.insert(0, "event_id", np.arange(len(it)))
    it["ip"] = "10.0.0.1"
    acc = pd.DataFrame({"account_id": [1, 2, 3, 4, 5], "registered_at": pd.Timestamp("2024-01-01"),
                        "register_channel": "app", "phone": None})
    orders = pd.DataFrame({"order_id": [1, 2], "ts": [t, t + 10 * m], "account_id": [3, 4], "device_id": "d2",
                           "ip": "10.0.0.1", "product_id": 99, "quantity": 1, "paid_price": 5.0, "coupon_id": None,
                           "promotion_id": None, "address": "a", "receiver_phone": None, "received_at": pd.NaT})
    return {"accounts": acc, "interactions": it, "orders": orders}


def test_codevice_target_overlap_exact():
    f = account_features(_codevice_tables()).set_index("account_id")
    cols = ["codevice_jaccard_max", "codevice_jaccard_mean", "codevice_sync_share"]
    # 1 {10, 11, 12} and 2 {10, 11}: 2 shared targets of 3, both within minutes
    assert f.loc[1, cols].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert f.loc[2, cols].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    # 3 {n20, n21, n40, p99} and 4 {n30, n31, n40, a20, p99}: shared n40 (3 days apart: not in sync) and p99
    # (10 minutes apart); the follow of author 20 is not note 20
    assert f.loc[3, cols].tolist() == pytest.approx([2 / 7, 2 / 7, 1 / 4])
    assert f.loc[4, cols].tolist() == pytest.approx([2 / 7, 2 / 7, 1 / 5])
    assert f.loc[5, cols].isna().all()  # no co-device account
    assert f.n_codevice_sync_accounts.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_codevice_neighbours_capped(monkeypatch):
    import fraudkit.capability.features as F

    # one device, ranks 1..3 by account_id; 1 and 3 act on the same note, 2 on another
    tables = _tiny(["2024-01-02 10:00:00"] * 3, accounts=[1, 2, 3])
    tables["interactions"]["target_id"] = [5, 6, 5]
    full = account_features(tables).set_index("account_id")
    assert full.codevice_jaccard_max.tolist() == [1.0, 0.0, 1.0]
    assert full.codevice_jaccard_mean.tolist() == [0.5, 0.0, 0.5]
    assert full.n_codevice_sync_accounts.tolist() == [1.0, 0.0, 1.0]
    monkeypatch.setattr(F, "CODEVICE_NEIGHBOURS", 1)  # 1 and 3 are two ranks apart: no longer compared
    capped = account_features(tables).set_index("account_id")
    assert capped.codevice_jaccard_max.tolist() == [0.0, 0.0, 0.0]
    assert capped.n_codevice_sync_accounts.tolist() == [0.0, 0.0, 0.0]


def test_codevice_point_in_time(toy):
    cut = T0 + pd.Timedelta(days=2)  # after the farm's wave, before the scalpers' orders
    cols = ["account_id", "codevice_jaccard_max", "codevice_jaccard_mean", "codevice_sync_share",
            "n_codevice_sync_accounts"]
    base = account_features(toy, as_of=cut)[cols]
    assert (base.set_index("account_id").loc[list(FARM), "codevice_sync_share"] == 1.0).all()
    later = {k: v.copy() for k, v in toy.items()}
    # after the cut: honest account 1 joins a farm device and acts on the farm's notes with it, in sync
    farm_ev = toy["interactions"][toy["interactions"].account_id == FARM[0]].copy()
    extra = farm_ev.assign(account_id=1, ts=farm_ev.ts + pd.Timedelta(days=1), event_id=farm_ev.event_id + 10**6)
    later["interactions"] = pd.concat([toy["interactions"], extra], ignore_index=True)
    pd.testing.assert_frame_equal(base, account_features(later, as_of=cut)[cols])
    leaked = account_features(later, as_of=cut + pd.Timedelta(days=2))[cols].set_index("account_id")
    assert leaked.loc[1, "codevice_jaccard_max"] > 0 and np.isnan(base.set_index("account_id").loc[1].iloc[0])


def _window_tables():
    """Account 1 registered long before the window (2024-01-01 .. ), account 2 inside it (2024-01-03 12:00)."""
    acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2023-06-01 00:00", "2024-01-03 12:00"]),
                        "register_channel": "app", "phone": None})
    ts = ["2024-01-01 00:00", "2024-01-02 09:00", "2024-01-03 09:00"] + [f"2024-01-04 10:0{m}" for m in range(4)]
    it = pd.DataFrame({"event_id": range(7), "ts": pd.to_datetime(ts), "account_id": [1, 1, 1, 2, 2, 2, 2],
                       "device_id": ["d1"] * 3 + ["d2"] * 4, "ip": "10.0.0.1", "action": "view", "target_id": 5})
    promotions = pd.DataFrame({"promotion_id": [1, 2, 3], "name": list("abc"),
                               "starts_at": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-06"]),
                               "ends_at": pd.to_datetime(["2024-01-02", "2024-01-04", "2024-01-07"])})
    claims = pd.DataFrame({"claim_id": range(5), "account_id": [1, 1, 1, 1, 2], "device_id": "d1", "promotion_id": 1,
                           "coupon_id": 9, "ts": pd.to_datetime(["2024-01-01 10:00"] * 4 + ["2024-01-04 11:00"])})
    return {"accounts": acc, "interactions": it, "promotions": promotions, "coupon_claims": claims}


def test_rates_per_observed_day_exact_and_point_in_time():
    t = _window_tables()
    f = account_features(t, as_of="2024-01-05").set_index("account_id")
    # observed from max(window start 2024-01-01, registration) to as_of
    assert f.observed_days.tolist() == [4.0, 1.5]
    assert f.actions_per_day.tolist() == pytest.approx([3 / 4, 4 / 1.5])
    assert f.active_day_share.tolist() == pytest.approx([3 / 4, 1 / 1.5])
    assert f.actions_per_active_day.tolist() == [1.0, 4.0]
    # promotions running while observed: account 1 sees 1 and 2, account 2 only 2 (3 starts after as_of)
    assert f.coupon_claims_per_promotion.tolist() == [2.0, 1.0]
    # a day earlier the denominators stop at the cut: account 2 is observed half a day, counted as one
    g = account_features(t, as_of="2024-01-04").set_index("account_id")
    assert g.observed_days.tolist() == [3.0, 1.0]
    assert g.actions_per_day.tolist() == [1.0, 0.0] and np.isnan(g.actions_per_active_day[2])
    assert g.coupon_claims_per_promotion.tolist() == [2.0, 0.0]


def test_window_invariant_drops_only_window_counts(toy):
    X = account_behaviour(toy)
    assert set(WINDOW_COUNTS) <= set(X.columns)  # no name out of date
    kept = window_invariant(X)
    assert list(kept.columns) == [c for c in X.columns if c not in WINDOW_COUNTS]
    for rate in ("actions_per_day", "sessions_per_day", "orders_per_day", "active_day_share",
                 "max_daily_accounts_per_ip", "coupon_claims_per_promotion"):
        assert rate in kept.columns
    assert "n_actions" in X.columns  # the input is not changed: rules still read the counts


@pytest.fixture(scope="module")
def two_windows():
    """One world (micro, seed 0) simulated over 7 and over 14 days: honest accounts' features of each."""
    import dataclasses

    from fraudkit.identification.models import labels_for
    from fraudkit.simulation import generate, load_scenario

    out = {}
    for days in (7, 14):
        tables = generate(dataclasses.replace(load_scenario("micro"), days=days), seed=0)
        X = account_behaviour(tables)
        _, typology = labels_for(X.account_id, tables["labels"])
        out[days] = X[typology.to_numpy() == "honest"]
    return out


@pytest.mark.parametrize("count, rate", [("n_actions", "actions_per_day"), ("n_active_days", "active_day_share"),
                                         ("n_sessions", "sessions_per_day")])
def test_rates_agree_across_window_lengths_where_counts_do_not(two_windows, count, rate):
    from scipy.stats import ks_2samp

    a, b = two_windows[7], two_windows[14]
    ks = {c: ks_2samp(a[c].dropna(), b[c].dropna()).statistic for c in (count, rate)}
    # honest activity is steady per day: the count's median grows with the window, the rate's stays
    assert b[count].median() >= 1.6 * a[count].median()
    assert b[rate].median() == pytest.approx(a[rate].median(), rel=0.1)
    assert ks[rate] <= 0.15 and ks[rate] <= ks[count] / 2.5


def test_daily_ip_sharing_moves_less_than_window_sharing(two_windows):
    from scipy.stats import ks_2samp

    a, b = two_windows[7], two_windows[14]
    ks = {c: ks_2samp(a[c], b[c]).statistic for c in ("max_accounts_per_ip", "max_daily_accounts_per_ip")}
    assert b.max_accounts_per_ip.median() >= 2 * a.max_accounts_per_ip.median()  # a shared IP gathers accounts
    assert ks["max_daily_accounts_per_ip"] <= 0.6 * ks["max_accounts_per_ip"]
