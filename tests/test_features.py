"""Tests for fraudkit.features (stage-1 per-entity features)."""

import numpy as np
import pandas as pd
import pytest

from _toy import T0, toy_tables
from fraudkit.errors import MissingInputError
from fraudkit.features import (ACCOUNT_FEATURES, account_behaviour, account_features, address_features,
                               device_features, entity_features, first_activity, interaction_features,
                               ip24_features, ip_features, order_features, phone_features)

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
    io = pytest.importorskip("fraudkit.io")
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
