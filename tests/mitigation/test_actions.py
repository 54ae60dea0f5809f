"""Tests for fraudkit.mitigation.actions: each governance action on hand-made frames with exact results."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudkit.capability.lists import ListStore
from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.mitigation.actions import (
    PurchaseLimit,
    apply_purchase_limits,
    ban_accounts,
    clean_engagement,
    delay_interception,
    demote_notes,
    lists_from_decisions,
    mitigation_summary,
    restrict_commerce,
)

T = pd.Timestamp


@pytest.fixture
def interactions():
    return pd.DataFrame({
        "event_id": [1, 2, 3, 4, 5, 6, 7],
        "account_id": ["a", "b", "c", "a", "b", "d", "b"],
        "action": ["like", "like", "like", "view", "like", "like", "follow"],
        "target_id": ["n1", "n1", "n1", "n1", "n2", "n2", "u9"],
    })


@pytest.fixture
def accounts():
    return pd.DataFrame({
        "account_id": ["a", "b", "c", "d"],
        "flagged_behaviour": [False, True, True, False],
        "flagged_graph": [False, True, False, False],
        "flagged_combined": [False, True, True, False],
        "score_combined": [0.1, 0.95, 0.7, 0.2],
    })


def test_clean_engagement_counts(interactions, accounts):
    before = interactions.copy()
    r = clean_engagement(interactions, accounts)  # flagged: b, c
    t = r.table.set_index(["target_id", "action"])
    assert t.loc[("n1", "like")].tolist()[:3] == [3, 2, 1]
    assert t.loc[("n1", "view")].tolist()[:3] == [1, 0, 1]
    assert t.loc[("n2", "like")].tolist()[:3] == [2, 1, 1]
    assert t.loc[("u9", "follow")].tolist()[:3] == [1, 1, 0]
    assert r.summary["fake_removed"] == 4 and r.summary["engagement_removed"] == 3
    assert sorted(r.affected["entity_id"]) == ["2", "3", "5", "7"]
    pd.testing.assert_frame_equal(interactions, before)  # input not mutated
    # a plain list of keys gives the same result
    assert clean_engagement(interactions, ["b", "c"]).table.equals(r.table)


def test_clean_engagement_bad_input(interactions):
    with pytest.raises(MissingInputError, match="target_id"):
        clean_engagement(interactions.drop(columns="target_id"), ["a"])
    with pytest.raises(MissingInputError, match="flagged_combined"):
        clean_engagement(interactions, pd.DataFrame({"account_id": ["a"]}))


def test_ban_accounts_burns_only_exclusive_resources(accounts):
    tables = {
        "accounts": pd.DataFrame({"account_id": ["a", "b", "c", "d"], "phone": ["p1", "p2", "p2", None]}),
        "logins": pd.DataFrame({"account_id": ["a", "b", "c", "c"], "device_id": ["d0", "d1", "d1", "d2"],
                                "ip": ["campus", "campus", "x", "x"]}),
        "orders": pd.DataFrame({"account_id": ["b", "d"], "device_id": ["d1", "d3"], "ip": ["x", "y"],
                                "address": ["flat 9", "flat 9"], "receiver_phone": ["r1", "r2"]}),
    }
    r = ban_accounts(accounts, tables)
    assert r.table["account_id"].tolist() == ["b", "c"]
    assert r.table["reason"].tolist() == ["behaviour+graph", "behaviour"]
    assert r.table.set_index("account_id").loc["c", ["n_device", "n_ip", "n_phone"]].tolist() == [2, 1, 1]
    s = r.summary
    # devices d1, d2 only used by banned accounts: burned; campus IP shared with honest a: touched, not burned
    assert (s["device_touched"], s["device_burned"]) == (2, 2)
    assert (s["ip_touched"], s["ip_burned"]) == (2, 1)
    assert (s["phone_touched"], s["phone_burned"]) == (2, 2)  # p2 (b and c) and receiver r1 (b)
    assert (s["address_touched"], s["address_burned"]) == (1, 0)  # flat 9 shared with d
    # corroboration and a minimum score narrow the ban list
    assert ban_accounts(accounts, min_stages=2).table["account_id"].tolist() == ["b"]
    assert ban_accounts(accounts, min_score=0.8).table["account_id"].tolist() == ["b"]
    with pytest.raises(MissingInputError, match="score_x"):
        ban_accounts(accounts, min_score=0.5, score="score_x")


def test_demote_and_restrict_commerce(interactions, accounts):
    more = pd.DataFrame({"event_id": range(10, 16), "account_id": ["b", "c", "e", "b", "c", "f"],
                         "action": ["collect", "comment", "like", "like", "like", "like"],
                         "target_id": ["n1", "n1", "n1", "n3", "n3", "n3"]})
    ev = pd.concat([interactions, more], ignore_index=True)
    cc = clean_engagement(ev, accounts)
    dem = demote_notes(cc, fake_share=0.5, min_fake=2)
    t = dem.table.set_index("note_id")
    # n1: like a,b,c,e + collect b + comment c = 6 raw, 4 fake; view and follow are not engagement
    assert t.loc["n1", ["raw_count", "fake_count"]].tolist() == [6, 4]
    assert t.loc["n1", "demoted"] and t.loc["n3", "demoted"] and not t.loc["n2", "demoted"]  # n2: 1 fake < 2
    assert t.loc["n1", "weight"] == pytest.approx((1 - 4 / 6) ** 2)
    assert t.loc["n2", "weight"] == 1.0
    notes = pd.DataFrame({"note_id": ["n1", "n2", "n3", "n4"], "author_id": ["u1", "u1", "u2", "u2"]})
    r = restrict_commerce(notes, dem, min_demoted=1, min_share=0.6)
    rt = r.table.set_index("author_id")
    assert rt.loc["u1", ["n_notes", "n_demoted", "fake_bought"]].tolist() == [2, 1, 5]  # n1: 4, n2: 1
    assert rt.loc["u2", ["n_notes", "n_demoted", "fake_bought"]].tolist() == [2, 1, 2]
    assert not rt["restricted"].any()  # half their notes each: below min_share 0.6
    assert restrict_commerce(notes, dem).summary["restricted"] == 2
    with pytest.raises(FraudkitError, match="fake_share"):
        demote_notes(cc, fake_share=0)


def _orders():
    # two buyers, each ordering a limited item to their own address 3 times in 10 hours, then once 30 h later
    ts = [T("2024-06-01 08:00"), T("2024-06-01 12:00"), T("2024-06-01 18:00"), T("2024-06-02 14:00")]
    rows = []
    for acct, addr, base in (("hi", "flat 1", 0), ("lo", "flat 2", 10)):
        for i, t in enumerate(ts):
            rows.append({"order_id": base + i, "ts": t, "account_id": acct, "product_id": 7, "quantity": 1,
                         "address": addr, "device_id": f"dev_{acct}", "promotion_id": None})
    rows.append({"order_id": 99, "ts": T("2024-06-01 09:00"), "account_id": "hi", "product_id": 8,
                 "quantity": 4, "address": None, "device_id": "dev_hi", "promotion_id": None})
    return pd.DataFrame(rows)


PRODUCTS = pd.DataFrame({"product_id": [7, 8], "category": ["toys", "books"], "limited_stock": [True, False]})
RISK = pd.DataFrame({"account_id": ["hi", "lo"], "score_combined": [0.9, 0.1]})
LIMIT = PurchaseLimit("limited_per_address_24h", key="address", scope="limited_stock", window="24h",
                      tiers=(("low", 0.0, 5), ("medium", 0.5, 3), ("high", 0.8, 2)))


def test_purchase_limit_tiers_refuse_third_unit_for_high_risk_only():
    orders = _orders()
    r = apply_purchase_limits(orders, [LIMIT], risk=RISK, products=PRODUCTS)
    t = r.table.set_index("order_id")
    assert len(t) == len(orders)  # no order dropped
    assert t.loc[[0, 1, 2, 3], "allowed"].tolist() == [True, True, False, True]  # 4th: the 24 h window slid
    assert t.loc[[0, 1, 2, 3], "used"].tolist() == [1, 2, 3, 2]
    assert t.loc[2, "tier"] == "high" and t.loc[2, "limit"] == 2
    assert t.loc[[10, 11, 12, 13], "allowed"].all() and t.loc[12, "tier"] == "low"
    assert t.loc[99, "allowed"] and t.loc[99, "reason"] == "no limit applies"  # not limited stock, no address
    assert r.summary == {"orders": 9, "orders_limited": 8, "orders_refused": 1, "units_refused": 1,
                         "accounts_refused": 1}
    # without risk scores everyone is in the lowest tier
    assert apply_purchase_limits(orders, [LIMIT], products=PRODUCTS).summary["orders_refused"] == 0


def test_purchase_limit_declared_as_data_and_errors():
    d = LIMIT.to_dict()
    assert PurchaseLimit.from_dict(d) == LIMIT
    assert LIMIT.tier_of([0.79, 0.8, float("nan")]).tolist() == ["medium", "high", "low"]
    with pytest.raises(FraudkitError, match="unknown field"):
        PurchaseLimit.from_dict({**d, "limt": 3})
    with pytest.raises(FraudkitError, match="key 'user'"):
        PurchaseLimit("x", key="user")
    with pytest.raises(FraudkitError, match="window"):
        PurchaseLimit("x", window="yesterday")
    with pytest.raises(MissingInputError, match="products"):
        apply_purchase_limits(_orders(), [LIMIT], risk=RISK)
    dup = _orders()
    dup.loc[1, "order_id"] = 0
    with pytest.raises(FraudkitError, match="duplicates"):
        apply_purchase_limits(dup, [LIMIT], products=PRODUCTS)


def test_purchase_limit_per_device_and_category():
    lim = PurchaseLimit("toys_per_device", key="device_id", scope="category", values=("toys",), window=None,
                        tiers=(("low", 0.0, 3),))
    t = apply_purchase_limits(_orders(), [lim], products=PRODUCTS).table.set_index("order_id")
    assert t.loc[[0, 1, 2, 3], "allowed"].tolist() == [True, True, True, False]  # no window: 4th unit refused
    assert t.loc[99, "reason"] == "no limit applies"


def _promo_orders():
    return pd.DataFrame({
        "order_id": [1, 2, 3, 4, 5, 6, 7],
        "ts": pd.to_datetime(["2024-11-11 00:01"] * 7),
        "account_id": ["s1", "s2", "s3", "h1", "h2", "h3", "s1"],
        "promotion_id": ["p1", "p1", "p1", "p1", "p1", "p1", "p2"],
        "address": ["den", "den", "den", "campus", "campus", "home", "den"],
        "device_id": ["d1", "d1", "d2", "d3", "d4", "d5", "d1"],
    })


def test_lists_scoped_per_promotion_do_not_leak():
    orders = _promo_orders()
    dec = pd.DataFrame({"entity_type": "order", "entity_id": ["1", "2", "3", "4", "5", "6", "7"],
                        "account_id": orders["account_id"], "decision": ["block", "block", "block", "block",
                                                                         "pass", "pass", "pass"]})
    store = ListStore()
    r = lists_from_decisions(store, dec, orders, promotion_id="p1", entity_types=("address", "device"),
                             at="2024-11-11 01:00", actor="analyst", reason="ring in p1")
    assert len(store) == 0  # the input store is not changed
    t = r.table
    # den: 3 blocked of 3; campus: 1 blocked of 2 (below 2 accounts) -> not listed; d1 shared by s1, s2
    assert sorted(zip(t["entity_type"], t["entity_id"])) == [("address", "den"), ("device", "d1")]
    s = r.store
    assert s.contains("scalper_addresses", ["den"], scope="promotion:p1", as_of="2024-11-12").tolist() == [True]
    assert s.contains("scalper_addresses", ["den"], scope="promotion:p2", as_of="2024-11-12").tolist() == [False]
    assert s.contains("scalper_addresses", ["den"], as_of="2024-11-12").tolist() == [False]  # not global
    assert s.contains("scalper_addresses", ["den"], scope="promotion:p1", as_of="2024-11-19").tolist() == [False]
    assert set(s.audit["actor"]) == {"analyst"} and set(s.audit["reason"]) == {"ring in p1"}
    assert r.summary["accounts_covered"] == 3
    with pytest.raises(FraudkitError, match="no orders in promotion 'p9'"):
        lists_from_decisions(store, dec, orders, promotion_id="p9")


def _decisions():
    return pd.DataFrame({
        "entity_type": ["interaction", "interaction", "interaction", "order", "order", "interaction"],
        "entity_id": ["e1", "e2", "e3", "o1", "o2", "e4"],
        "account_id": ["a", "a", "a", "a", "a", "b"],
        "action": ["like", "like", "comment", None, None, "like"],
        "ts": pd.to_datetime(["2024-06-01 10:00", "2024-06-01 11:00", "2024-06-01 13:00", "2024-06-01 20:00",
                              "2024-06-02 09:00", "2024-06-01 12:00"]),
        "decision": ["verify", "block", "pass", "pass", "pass", "block"],
    })


def test_delayed_interception_moves_the_effective_time():
    d = _decisions()
    r = delay_interception(d)  # key steps: comments, shares, follows and orders
    t = r.table.set_index("entity_id")
    assert (t.loc["e1", "flagged_at"], t.loc["e1", "effective_at"]) == (T("2024-06-01 10:00"), T("2024-06-01 13:00"))
    assert t["decision_delayed"].tolist() == ["pass", "pass", "block", "block", "block", "pass"]
    assert t["leaked"].tolist() == [True, True, False, False, False, True]
    assert r.summary["accounts_never_acted"] == 1  # b has no later key step
    assert r.summary["median_lag_hours"] == 3.0
    late = delay_interception(d, at="delay", delay="12h").table.set_index("entity_id")
    assert late.loc["e1", "effective_at"] == T("2024-06-01 22:00")
    assert late["decision_delayed"].tolist() == ["pass", "pass", "pass", "pass", "block", "pass"]
    promos = pd.DataFrame({"starts_at": [T("2024-06-01")], "ends_at": [T("2024-06-01 21:00")]})
    w = delay_interception(d, at="window_end", window_end=promos).table.set_index("entity_id")
    assert w.loc["e1", "effective_at"] == T("2024-06-01 21:00")
    assert w.loc["o2", "decision_delayed"] == "block" and w.loc["o1", "decision_delayed"] == "pass"
    with pytest.raises(FraudkitError, match="delay="):
        delay_interception(d, at="delay")
    with pytest.raises(FraudkitError, match="unknown decision 'deny'"):
        delay_interception(d.assign(decision="deny"))


def test_mitigation_summary_counts_fraud_and_collateral(interactions, accounts):
    labels = pd.DataFrame({"entity_type": ["account", "account", "interaction", "account"],
                           "entity_id": ["b", "c", "3", "a"],
                           "typology": ["device_farm", "honest_shared_device", "offline_script", "honest_viral_fan"]})
    res = [clean_engagement(interactions, accounts), ban_accounts(accounts)]
    s = mitigation_summary(res, labels).set_index("action")
    # interactions 2, 5, 7 by b (device_farm account); 3 labelled offline_script itself
    assert s.loc["clean_engagement", ["n_affected", "n_fraud", "n_honest"]].tolist() == [4, 4, 0]
    assert s.loc["clean_engagement", "fake_engagement_removed"] == 4
    assert s.loc["ban_accounts", ["n_affected", "n_fraud", "n_honest", "honest_shared_device"]].tolist() == [2, 1, 1, 1]
    assert s.loc["ban_accounts", "precision"] == 0.5
    assert "device_farm" in mitigation_summary(res).columns or len(mitigation_summary(res).columns) >= 5
    with pytest.raises(FraudkitError, match="MitigationResult"):
        mitigation_summary([accounts], labels)


def test_decide_and_the_what_if_defer_the_same_way():
    """One delayed interception: decide(delayed=True) on the raw events equals delay_interception on the
    immediate decisions; a key step only receives what was deferred before it (no look-ahead)."""
    from fraudkit.identification.rules import load_ruleset
    from fraudkit.mitigation.decisions import DecisionPolicy, decide

    ev = pd.DataFrame({
        "entity_type": "interaction", "entity_id": [f"e{i}" for i in range(7)],
        "account_id": ["a", "a", "a", "a", "b", "b", "c"],
        "action": ["like", "comment", "like", "follow", "follow", "like", "share"],
        "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00", "2024-01-01 13:00",
                              "2024-01-01 09:00", "2024-01-01 10:00", "2024-01-01 08:00"]),
        "score": [50, 0, 90, 0, 0, 90, 90]})
    rules = load_ruleset({"thresholds": {"verify": 40, "block": 80},
                          "rules": [{"id": "s", "condition": "score >= 40", "score": 50},
                                    {"id": "hi", "condition": "score >= 80", "score": 40}]}).evaluate(ev)
    now = decide(ev, rules=rules)
    assert now["decision"].tolist() == ["verify", "pass", "block", "pass", "pass", "block", "block"]
    later = decide(ev, rules=rules, policy=DecisionPolicy(delayed=True))
    # a's comment at 11:00 gets the verify deferred at 10:00, not the block deferred at 12:00; the follow gets it
    assert later["decision"].tolist() == ["pass", "verify", "pass", "block", "pass", "pass", "block"]
    what_if = delay_interception(ev.assign(decision=now["decision"])).table
    assert what_if["decision_delayed"].tolist() == later["decision"].tolist()
    assert what_if["leaked"].tolist() == [True, False, True, False, False, True, False]
    # a blacklisted event is never deferred
    blk = delay_interception(ev.assign(decision=now["decision"], layer=["blacklist"] + [""] * 6)).table
    assert blk.loc[0, "decision_delayed"] == "verify" and not blk.loc[0, "leaked"]
