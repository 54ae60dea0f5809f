"""Tests for fraudkit.capability.sequences (sessions, scripts, script sharing)."""

import numpy as np
import pandas as pd
import pytest
from _toy import toy_tables

from fraudkit.capability.sequences import (
    SEQUENCE_FEATURES,
    SEQUENCE_WINDOW_COUNTS,
    script_pairs,
    sequence_features,
    session_scripts,
)


def _it(rows):
    df = pd.DataFrame(rows, columns=["account_id", "ts", "action", "target_id"])
    df["ts"] = pd.to_datetime(df.ts)
    df.insert(0, "event_id", np.arange(len(df)))
    df["device_id"] = None
    df["ip"] = None
    return {"interactions": df}


def test_sessions_split_on_gap_and_scripts():
    d = _it([(1, "2024-01-01 10:00:00", "view", 5), (1, "2024-01-01 10:00:05", "like", 5),
             (1, "2024-01-01 10:20:00", "view", 6), (1, "2024-01-01 11:00:00", "collect", 7)])
    s = session_scripts(d)
    assert s.script.tolist() == ["VL2V5", "C"]
    assert s.n_events.tolist() == [3, 1]
    assert session_scripts(d, session_gap="10min").script.tolist() == ["VL2", "V", "C"]


def test_a_script_is_its_sessions_first_40_tokens_in_time_and_event_order():
    # a session of 50 events, two of them in one second (event id order), one of an action without a letter
    # (its place counts, its token is left out), and a second account's session of one event
    rng = np.random.default_rng(5)
    gaps = rng.choice([0, 2, 5, 20, 60, 600], size=49)
    ts = pd.Timestamp("2024-01-01 10:00") + pd.to_timedelta(np.r_[0, np.cumsum(gaps)], unit="s")
    actions = rng.choice(["view", "like", "collect", "comment", "share", "follow"], size=50)
    actions[7] = "report"
    rows = [(1, t, a, 5) for t, a in zip(ts, actions)] + [(2, ts[0], "like", 5)]
    d = _it(rows[::-1])  # event ids against time: ties in time go by event id, reversed here
    d["interactions"]["ts"] = pd.to_datetime(d["interactions"]["ts"])
    letters = {"view": "V", "like": "L", "collect": "C", "comment": "M", "share": "S", "follow": "F"}
    order = np.lexsort((-np.arange(50), ts.to_numpy()))  # time, then event id (the rows were reversed)
    want, prev = [], None
    for i in order[:40]:
        t = ts[i]
        g = None if prev is None else (t - prev).total_seconds()
        prev = t
        bucket = "" if g is None else "0" if g < 1 else "1" if g < 3 else "2" if g < 10 else "3" if g < 30 \
            else "4" if g < 120 else "5"
        if actions[i] in letters:
            want.append(letters[actions[i]] + bucket)
    s = session_scripts(d)
    assert s["n_events"].tolist() == [50, 1]
    assert s["script"].tolist() == ["".join(want), "L"]


def test_blind_and_view_to_like():
    d = _it([(1, "2024-01-01 10:00:00", "view", 5), (1, "2024-01-01 10:00:40", "like", 5),
             (1, "2024-01-01 10:00:41", "like", 9), (1, "2024-01-01 10:00:42", "view", 9),
             (1, "2024-01-01 10:00:43", "collect", 9)])
    f = sequence_features(d).iloc[0]
    assert list(f.index) == ["account_id", *SEQUENCE_FEATURES]
    assert f.blind_engage_share == pytest.approx(1 / 3)  # like on 9 came before its view
    assert f.v2l_median_s == pytest.approx(20.5)  # 40 s and 1 s
    assert f.fast_engage_share == pytest.approx(0.5)
    assert f.n_sessions == 1


def test_view_in_another_session_does_not_count():
    d = _it([(1, "2024-01-01 10:00:00", "view", 5), (1, "2024-01-01 12:00:00", "like", 5)])
    assert sequence_features(d).blind_engage_share.iloc[0] == 1.0


def test_farm_shares_scripts_and_pairs():
    t = toy_tables(0)
    f = sequence_features(t).set_index("account_id")
    farm = f.loc[121:144]
    assert (farm.script_share_count == 23).all()
    assert (farm.blind_engage_share == 1).all()
    assert farm.top_script.nunique() == 1 and farm.top_script.iloc[0].startswith("LC1L1")
    assert f.loc[1:120].script_share_count.max() < 23
    p = script_pairs(t)
    assert list(p.columns) == ["account_a", "account_b", "shared_scripts"]
    assert (p.account_a < p.account_b).all()
    farm_pairs = p[p.account_a.between(121, 144) & p.account_b.between(121, 144)]
    assert len(farm_pairs) == 24 * 23 // 2
    capped = script_pairs(t, max_script_accounts=10, max_script_share=0.0)
    assert not (capped.account_a.between(121, 144) & capped.account_b.between(121, 144)).any()


def test_accounts_without_interactions_and_seeded_stability():
    t = toy_tables(0)
    f = sequence_features(t)
    assert len(f) == len(t["accounts"])
    silent = f[f.account_id >= 145]
    assert (silent.n_sessions == 0).all() and silent.top_script.isna().all()
    pd.testing.assert_frame_equal(f, sequence_features(toy_tables(0)))


def test_bad_input():
    d = _it([(1, "2024-01-01 10:00:00", "view", 5)])
    with pytest.raises(ValueError, match="window"):
        sequence_features(d, session_gap="thirty minutes")
    with pytest.raises(Exception, match="interactions"):
        sequence_features({"accounts": pd.DataFrame({"account_id": [1], "registered_at": [pd.Timestamp(0)],
                                                     "register_channel": ["app"], "phone": [None]})})


def test_sessions_per_day_and_shared_session_share():
    d = _it([(1, "2024-01-01 10:00:00", "view", 5), (1, "2024-01-01 12:00:00", "like", 5),
             (1, "2024-01-02 10:00:00", "view", 6), (1, "2024-01-03 10:00:00", "view", 6),
             (2, "2024-01-03 09:00:00", "view", 6)])
    f = sequence_features(d, as_of="2024-01-05 10:00").set_index("account_id")
    # no accounts table: observed from the window's start (2024-01-01 10:00) to as_of, 4 days
    assert f.sessions_per_day.tolist() == [1.0, 0.25]
    assert f.shared_script_session_share.tolist() == [0.0, 0.0]
    assert SEQUENCE_WINDOW_COUNTS == ("n_sessions", "n_distinct_scripts", "script_share_count",
                                      "shared_script_sessions")


_PAIRS_SQL = """
    WITH s AS (SELECT DISTINCT account_id, script FROM rare),
    r AS (SELECT account_id, dense_rank() OVER (ORDER BY script) AS sid,
                 row_number() OVER (PARTITION BY script ORDER BY account_id) AS rn,
                 count(*) OVER (PARTITION BY script) AS n FROM s),
    o AS (SELECT account_id, sid, rn,
                 unnest(generate_series(1, CASE WHEN n <= {full} THEN n - rn ELSE least({k}, n - rn) END)) AS off
          FROM r WHERE rn < n),
    p AS (SELECT least(o.account_id, b.account_id) AS account_a, greatest(o.account_id, b.account_id) AS account_b
          FROM o JOIN r b ON b.sid = o.sid AND b.rn = o.rn + o.off)
    SELECT account_a, account_b, count(*) AS shared_scripts FROM p
    GROUP BY ALL HAVING count(*) >= {min_shared} ORDER BY account_a, account_b"""
"""The pairs as one SQL query (what script_pairs ran before the pairs were generated in numpy)."""


@pytest.mark.parametrize("ids", ["int", "text"])
@pytest.mark.parametrize("full, k, min_shared", [(500, 20, 1), (6, 3, 1), (6, 3, 2), (1, 1, 1)])
def test_script_pairs_are_those_of_the_sql_join(ids, full, k, min_shared, monkeypatch):
    import duckdb

    from fraudkit.capability import sequences

    monkeypatch.setattr(sequences, "_PAIR_BLOCK", 50)  # many blocks of pairs
    rng = np.random.default_rng(11)
    m = 3000
    acc = rng.integers(0, 400, m)
    rare = pd.DataFrame({"account_id": acc if ids == "int" else np.array([f"u{a}" for a in acc], dtype=object),
                         "script": [f"V{s}L" for s in rng.zipf(1.6, m) % 90]})  # a few scripts of many accounts
    con = duckdb.connect()
    con.register("rare", rare)
    want = con.execute(_PAIRS_SQL.format(full=full, k=k, min_shared=min_shared)).df()
    s = rare.drop_duplicates()
    sid = pd.factorize(s["script"], sort=True)[0].astype(np.int64)
    got = sequences._script_pairs(s["account_id"].reset_index(drop=True), sid, full=full, k_neighbors=k,
                                  min_shared=min_shared)
    assert len(want) > 50
    assert got.equals(want.astype({"shared_scripts": np.int64}))
