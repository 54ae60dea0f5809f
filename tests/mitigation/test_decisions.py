import numpy as np
import pandas as pd
import pytest

from fraudkit.capability.lists import ListStore
from fraudkit.errors import FraudkitError
from fraudkit.identification.rules import load_ruleset
from fraudkit.mitigation import decisions as d
from fraudkit.mitigation.decisions import DECISION_COLUMNS, DecisionPolicy, decide


@pytest.fixture
def events():
    return pd.DataFrame({
        "order_id": [1, 2, 3, 4, 5],
        "account_id": ["a", "b", "c", "d", "e"],
        "ip": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"],
        "promotion_id": ["p1", "p1", "p2", "p1", "p1"],
        "qty": [1, 1, 9, 9, 1],
    })


@pytest.fixture
def lists():
    s = ListStore()
    s.add("blacklist", "scalpers", "account", ["a"], reason="ring", actor="t", at="2024-01-01")
    s.add("graylist", "watch", "ip", ["2.2.2.2"], reason="shared", actor="t", at="2024-01-01")
    s.add("blacklist", "p2_only", "ip", ["4.4.4.4"], reason="p2 drop", actor="t", at="2024-01-01",
          scope="promotion:p2")
    return s


def test_layer_order(events, lists):
    rules = load_ruleset({"thresholds": {"verify": 40, "block": 80},
                          "rules": [{"id": "bulk", "condition": "qty > 5", "score": 50}]}).evaluate(events)
    portrait = pd.DataFrame({"account_id": ["a", "b", "c", "d", "e"], "score": [0.0, 0.1, 0.2, 0.3, 0.95],
                             "flagged": [False, False, False, False, True]})
    network = pd.DataFrame({"account_id": ["e"], "score": [0.9], "flagged": [True]})
    d = decide(events, rules=rules, portrait=portrait, network=network, lists=lists, as_of="2024-02-01")
    assert list(d.columns) == list(DECISION_COLUMNS)
    # a: blacklisted with a low score -> block; b: graylisted -> verify; c: rules -> verify;
    # d: rule verify (its blacklist entry is scoped to p2, d's order is in p1); e: portrait + network agree -> block
    assert d["decision"].tolist() == ["block", "verify", "verify", "verify", "block"]
    assert d["layer"].tolist() == ["blacklist", "graylist", "rules", "rules", "network"]
    assert d.loc[0, "reasons"] == "blacklist:scalpers(account_id)"
    assert d.loc[1, "reasons"] == "graylist:watch(ip)"
    assert d.loc[2, "reasons"] == "rules:bulk"
    assert d.loc[4, "reasons"] == "portrait:flagged; network+portrait:corroborated"
    assert d["score_rules"].tolist() == [0, 0, 50, 50, 0]
    assert d["score_network"].isna().tolist() == [True, True, True, True, False]


def test_blacklist_beats_everything_and_missing_layers_are_noted(events, lists):
    notes = []
    d = decide(events, lists=lists, as_of="2024-02-01", notes=notes)
    assert d["decision"].tolist() == ["block", "verify", "pass", "pass", "pass"]
    assert any("network layer skipped" in n for n in notes)
    assert any("rules layer skipped" in n for n in notes)
    assert any("portrait layer skipped" in n for n in notes)


def test_block_thresholds_on_scores(events):
    portrait = pd.DataFrame({"account_id": ["a", "b"], "score": [0.5, 0.99], "flagged": [True, True]})
    d = decide(events, portrait=portrait, policy=DecisionPolicy(portrait_block=0.9))
    assert d["decision"].tolist() == ["verify", "block", "pass", "pass", "pass"]
    assert d.loc[1, "reasons"] == "portrait:score>=0.9"


def test_delayed_interception_acts_at_the_next_key_step():
    ev = pd.DataFrame({
        "event_id": range(6), "account_id": ["a", "a", "a", "b", "b", "c"],
        "action": ["like", "like", "comment", "like", "follow", "comment"],
        "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:01", "2024-01-01 12:00",
                              "2024-01-01 10:00", "2024-01-01 09:00", "2024-01-01 08:00"]),
        "fast": [1, 1, 0, 1, 0, 0],
    })
    rules = load_ruleset({"thresholds": {"verify": 40, "block": 80},
                          "rules": [{"id": "fast", "condition": "fast == 1", "score": 90}]}).evaluate(ev)
    now = decide(ev, rules=rules)
    assert now["decision"].tolist() == ["block", "block", "pass", "block", "pass", "pass"]
    d = decide(ev, rules=rules, policy=DecisionPolicy(delayed=True))
    # the likes pass now; a's later comment is blocked; b's follow came *before* its like, so it passes
    assert d["decision"].tolist() == ["pass", "pass", "block", "pass", "pass", "pass"]
    assert d["delayed"].tolist() == [True, True, False, True, False, False]
    assert d["pending"].tolist() == ["block", "block", "", "block", "", ""]
    assert d.loc[2, "layer"] == "delayed"


def test_bad_input(events):
    with pytest.raises(FraudkitError, match="account_id"):
        decide(events.drop(columns="account_id"))
    with pytest.raises(FraudkitError, match="needs columns account_id, score, flagged"):
        decide(events, portrait=pd.DataFrame({"account_id": ["a"], "score": [1.0]}))


def test_vectorised_on_many_rows():
    rng = np.random.default_rng(0)
    n = 200_000
    ev = pd.DataFrame({"account_id": rng.integers(0, 5000, n).astype(str)})
    portrait = pd.DataFrame({"account_id": np.arange(5000).astype(str), "score": rng.random(5000)})
    portrait["flagged"] = portrait["score"] > 0.9
    d = decide(ev, portrait=portrait)
    expect = ev["account_id"].map(portrait.set_index("account_id")["flagged"]).to_numpy()
    assert ((d["decision"] == "verify").to_numpy() == expect).all()


def test_lists_are_checked_at_each_event_time_and_promotion():
    """The simulator's proxy_ips entries expire in the data's past: each event is checked at its own ts,
    so they fire for the events before their expiry (the pipeline passed no as_of and they never fired)."""
    from fraudkit.capability.lists import ListStore

    store = ListStore()
    store.add("blacklist", "proxy_ips", "ip", ["9.9.9.9"], reason="proxy", actor="t", at="2024-06-01",
              expires_at="2024-06-03")
    store.add("graylist", "watch", "address", ["den"], reason="r", actor="t", at="2024-06-01",
              scope="promotion:1")
    ev = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "ip": ["9.9.9.9", "9.9.9.9", "1.1.1.1", "1.1.1.1"],
                       "address": ["x", "x", "den", "den"], "promotion_id": [None, None, 1, 2],
                       "ts": pd.to_datetime(["2024-06-02", "2024-06-04", "2024-06-02", "2024-06-02"])})
    d = decide(ev, lists=store)
    assert d["decision"].tolist() == ["block", "pass", "verify", "pass"]
    assert d["reasons"].iloc[0] == "blacklist:proxy_ips(ip)"
    # an explicit single as_of checks every event then
    assert decide(ev, lists=store, as_of="2024-06-10")["decision"].tolist() == ["pass", "pass", "verify", "pass"]


def test_reasons_from_one_int_key_equal_the_tuple_path():
    rng = np.random.default_rng(0)
    n = 5_000
    why_labels = {k: [""] + [f"{k}:{i}" for i in range(m)] for k, m in zip(d._LAYERS, (1, 40, 3, 7, 2))}
    why = {k: rng.integers(0, len(why_labels[k]), n) for k in d._LAYERS}
    got = d._reasons(why, why_labels, n).dense()
    want = ["; ".join(why_labels[k][why[k][i]] for k in d._LAYERS if why[k][i] > 0) for i in range(n)]
    assert got.tolist() == want
    assert d._digits(2 * 7 + 5, [3, 7]) == [2, 5]


def test_account_scores_decide_chunks_as_the_tables_do(events, lists):
    """Chunks decided with indexed layers (``AccountScores``, as a run decides 2M events at a time) equal the
    whole frame decided with the tables: duplicate accounts keep their first row, missing ones pass."""
    portrait = pd.DataFrame({"account_id": ["b", "c", "b", "z"], "score": [0.7, 0.95, 0.1, 0.99],
                             "flagged": [True, True, False, True]})
    network = pd.DataFrame({"account_id": ["c", "d"], "score": [0.8, 0.2], "flagged": [True, False]})
    policy = DecisionPolicy(portrait_block=0.9)
    whole = decide(events, portrait=portrait, network=network, lists=lists, policy=policy)
    p, n = d.AccountScores.of(portrait, "portrait"), d.AccountScores.of(network, "network")
    assert d.AccountScores.of(p) is p and len(p) == 3
    chunks = pd.concat([decide(events.iloc[i:i + 2].reset_index(drop=True), portrait=p, network=n, lists=lists,
                               policy=policy) for i in range(0, len(events), 2)], ignore_index=True)
    pd.testing.assert_frame_equal(chunks, whole.reset_index(drop=True))
    assert whole["decision"].tolist() == ["block", "verify", "block", "pass", "pass"]  # d: p2-only blacklist, on p1
