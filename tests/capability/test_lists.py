import numpy as np
import pandas as pd
import pytest

from fraudkit.capability.lists import AUDIT_COLUMNS, ListStore
from fraudkit.errors import FraudkitError


@pytest.fixture
def store():
    s = ListStore()
    s.add("blacklist", "scalpers", "account", ["a1", "a2"], reason="ring", actor="ana", at="2024-11-01",
          scope="promotion:p11")
    s.add("graylist", "campus", "ip", ["10.0.0.1"], reason="campus NAT", actor="bo", at="2024-11-01",
          expires_at="2024-11-10")
    s.add("blacklist", "proxy_ips", "ip", ["9.9.9.9"], reason="vendor feed", actor="feed", at="2024-10-01",
          scope="global")
    return s


def test_scope_applies_only_inside_its_promotion(store):
    vals = ["a1", "a2", "a3"]
    assert store.contains("scalpers", vals, scope="promotion:p11", as_of="2024-11-11").tolist() == [True, True, False]
    assert store.contains("scalpers", vals, scope="promotion:p12", as_of="2024-11-11").tolist() == [False] * 3
    assert store.contains("scalpers", vals, as_of="2024-11-11").tolist() == [False] * 3
    # per-row scopes: one row in the promotion, one outside it, one with no promotion
    per_row = np.array(["promotion:p11", "promotion:p12", None], dtype=object)
    assert store.contains("scalpers", ["a1", "a1", "a1"], scope=per_row, as_of="2024-11-11").tolist() == \
        [True, False, False]


def test_expiry_and_time_of_adding(store):
    assert store.contains("campus", ["10.0.0.1"], as_of="2024-11-05").tolist() == [True]
    assert store.contains("campus", ["10.0.0.1"], as_of="2024-11-10").tolist() == [False]  # expired at that instant
    assert store.contains("campus", ["10.0.0.1"], as_of="2024-10-31").tolist() == [False]  # not yet added
    assert len(store.active("2024-11-05")) == 4
    assert len(store.active("2024-11-20")) == 3


def test_list_type_and_entity_filters(store):
    assert store.contains("proxy_ips", ["9.9.9.9"], list_type="graylist", as_of="2024-11-05").tolist() == [False]
    assert store.contains("proxy_ips", ["9.9.9.9"], list_type="blacklist", entity_type="ip",
                          as_of="2024-11-05").tolist() == [True]
    assert store.contains("proxy_ips", ["9.9.9.9"], entity_type="account", as_of="2024-11-05").tolist() == [False]


def test_integer_keys_match_text_entries():
    s = ListStore()
    s.add("blacklist", "bad", "account", [7, 12], reason="r", actor="x", at="2024-01-01")
    assert s.contains("bad", pd.Series([7, 8, 12], dtype="int64"), as_of="2024-02-01").tolist() == [True, False, True]
    assert s.contains("bad", pd.Series(["7", None, "12"]), as_of="2024-02-01").tolist() == [True, False, True]


def test_remove_is_audited_and_point_in_time(store, tmp_path):
    n = store.remove("scalpers", ["a1"], reason="appeal upheld", actor="cara", at="2024-11-05")
    assert n == 1
    assert store.remove("scalpers", ["zz"], reason="x", actor="y") == 0
    sc = "promotion:p11"
    assert store.contains("scalpers", ["a1"], scope=sc, as_of="2024-11-04").tolist() == [True]
    assert store.contains("scalpers", ["a1"], scope=sc, as_of="2024-11-06").tolist() == [False]
    audit = store.audit
    assert tuple(audit.columns) == AUDIT_COLUMNS
    assert audit["op"].tolist() == ["add", "add", "add", "add", "remove"]
    last = audit.iloc[-1]
    assert (last["actor"], last["entity_id"], last["reason"]) == ("cara", "a1", "appeal upheld")
    assert audit["audit_id"].tolist() == list(range(5))
    assert len(store.to_frame()) == 3  # contract columns, live entries only
    store.save(tmp_path / "lists")
    back = ListStore.read(tmp_path / "lists")
    pd.testing.assert_frame_equal(back.audit, store.audit)
    assert back.contains("scalpers", ["a2"], scope=sc, as_of="2024-11-11").tolist() == [True]
    # new ids continue after the saved ones
    ids = back.add("graylist", "campus", "ip", ["10.0.0.2"], reason="r", actor="x", at="2024-11-02")
    assert ids.tolist() == ["L00000005"]


def test_bad_input_is_rejected(store, tmp_path):
    with pytest.raises(FraudkitError, match="list_type must be one of"):
        store.add("whitelist", "x", "account", ["a"], reason="r", actor="x")
    with pytest.raises(FraudkitError, match="bad list scope 'shop:1'"):
        store.add("blacklist", "x", "account", ["a"], reason="r", actor="x", scope="shop:1")
    with pytest.raises(FraudkitError, match="reason and an actor"):
        store.add("blacklist", "x", "account", ["a"], reason="", actor="x")
    with pytest.raises(FraudkitError, match="not after the time of adding"):
        store.add("blacklist", "x", "account", ["a"], reason="r", actor="x", at="2024-01-02", expires_at="2024-01-01")
    with pytest.raises(FraudkitError, match="entries.parquet is missing"):
        ListStore.read(tmp_path)
    with pytest.raises(FraudkitError, match="lack column"):
        ListStore(pd.DataFrame({"entry_id": [1]}))


def test_loading_contract_table_logs_a_load_row():
    entries = pd.DataFrame({"entry_id": [1], "list_type": ["blacklist"], "list_name": ["bad"],
                            "entity_type": ["device"], "entity_id": ["d1"], "scope": ["global"],
                            "reason": ["farm"], "added_at": [pd.Timestamp("2024-01-01")], "expires_at": [pd.NaT]})
    s = ListStore(entries)
    assert s.audit["op"].tolist() == ["load"]
    assert entries["entry_id"].tolist() == [1]  # input not mutated
    assert s.names() == ["bad"] and len(s) == 1


def test_contains_checks_each_value_at_its_own_time():
    """An entry that expired in the data's past still applies to the events before its expiry."""
    store = ListStore()
    store.add("blacklist", "proxy_ips", "ip", ["1.1.1.1"], reason="proxy", actor="t", at="2024-06-01",
              expires_at="2024-06-03")
    store.add("blacklist", "scalpers", "address", ["den"], reason="ring", actor="t", at="2024-06-01",
              scope="promotion:7")
    ts = pd.to_datetime(["2024-05-31", "2024-06-02", "2024-06-04", "2024-06-02"])
    hit = store.contains("proxy_ips", ["1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2"], as_of=ts)
    assert hit.tolist() == [False, True, False, False]
    # one time for all (the old behaviour) still works; now is after the expiry
    assert not store.contains("proxy_ips", ["1.1.1.1"]).any()
    # scope per row together with time per row
    promo = np.array(["promotion:7", "promotion:8", "promotion:7"], dtype=object)
    hit = store.contains("scalpers", ["den", "den", "den"], scope=[promo],
                         as_of=pd.to_datetime(["2024-06-02", "2024-06-02", "2024-05-01"]))
    assert hit.tolist() == [True, False, False]
    store.remove("scalpers", ["den"], reason="cleared", actor="t", at="2024-06-05")
    assert store.contains("scalpers", ["den", "den"], scope="promotion:7",
                          as_of=pd.to_datetime(["2024-06-04", "2024-06-06"])).tolist() == [True, False]
    with pytest.raises(FraudkitError, match="as_of times for 2 values"):
        store.contains("scalpers", ["den", "den"], as_of=pd.to_datetime(["2024-06-04"] * 3))


# --- lists weighted by sharing ---------------------------------------------------------------------

from fraudkit.capability.lists import (  # noqa: E402
    COLLATERAL_COLUMNS,
    WEIGHT_COLUMNS,
    account_standing,
    list_usage,
    weigh_lists,
)
from tests.capability.infra_world import NAT_IP, RING_IP, infra_world  # noqa: E402


@pytest.fixture(scope="module")
def feed():
    data, nat, ring = infra_world()
    s = ListStore()
    s.add("blacklist", "threat_feed", "ip", [NAT_IP, RING_IP, "58.1.0.9"], reason="vendor feed", actor="intel",
          at="2024-05-01")
    s.add("blacklist", "bad_accounts", "account", ["r01"], reason="ban", actor="ana", at="2024-05-01")
    return data, nat, ring, s


def test_account_standing_needs_age_and_activity(feed):
    data, nat, ring, _ = feed
    st = account_standing(data)
    assert (st[list(ring)] == "unknown").all()  # five days old
    assert (st[list(nat)] == "honest").all()  # 400 days old, active on many days


def test_weigh_lists_suspends_a_shared_honest_ip_and_keeps_the_ring(feed):
    data, nat, ring, s = feed
    w = weigh_lists(s, data)
    assert tuple(w.weights.columns) == WEIGHT_COLUMNS and tuple(w.collateral.columns) == COLLATERAL_COLUMNS
    got = w.weights.set_index("entity_id")
    assert got.loc[NAT_IP, "n_accounts"] == 60 and got.loc[NAT_IP, "n_look_honest"] == 60
    assert got.loc[NAT_IP, "sharing"] == 1.0 and got.loc[NAT_IP, "weight"] == 0.0 and not got.loc[NAT_IP, "acts"]
    assert "shared infrastructure" in got.loc[NAT_IP, "reason"] and "suspended" in got.loc[NAT_IP, "reason"]
    assert got.loc[RING_IP, "acts"] and got.loc[RING_IP, "n_unknown"] == 12
    assert got.loc["r01", "acts"] and got.loc["58.1.0.9", "acts"]  # a home IP: not widely shared
    assert not w.store.contains("threat_feed", [NAT_IP], as_of="2024-06-10")[0]
    assert w.store.contains("threat_feed", [RING_IP], as_of="2024-06-10")[0]
    c = w.collateral.set_index(["list_name", "entity_type"]).loc[("threat_feed", "ip")]
    home = set(list_usage(data, pd.DataFrame({"entity_type": ["ip"], "entity_id": ["58.1.0.9"]}))["account_id"])
    assert c["accounts_touched"] == 60 + 12 + len(home - nat)
    assert c["n_entries_suspended"] == 1 and c["accounts_touched_acting"] == 12 + len(home)
    # min_weight=0 trusts every entry, and the input store is left as it was
    assert weigh_lists(s, data, min_weight=0).weights["acts"].all() and len(s) == 4


def test_weigh_lists_of_an_empty_store(feed):
    data, *_ = feed
    w = weigh_lists(ListStore(), data)
    assert w.weights.empty and w.collateral.empty and len(w.store) == 0
