import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fraudkit.errors import MissingInputError
from fraudkit.identification.base import NotFittedError
from fraudkit.identification.group.clusters import (
    CoActionMiner,
    DeviceClusterer,
    _first_appearance_codes,
    _lsh_pairs,
    _mix64,
    _modal,
    _weighted_jaccard,
    candidates,
    profile_clusters,
)

T0 = pd.Timestamp("2024-03-01")


def _devices_and_events(seed=0):
    """8 cloned farm devices (5 accounts each, one /24, night shift) + 200 honest phones of the same spec,
    40 of them behind one campus /24."""
    rng = np.random.default_rng(seed)
    spec = dict(model="iPhone14,2", os="ios", os_version="17.1", screen="1170x2532", app_version="8.20",
                is_emulator=False, is_rooted=False)
    n_h = 200
    dev = pd.DataFrame({"device_id": [f"f{i}" for i in range(8)] + [f"h{i}" for i in range(n_h)],
                        "fingerprint": ["CLONE"] * 8 + [f"fp{i}" for i in range(n_h)], **spec})
    rows = []
    for i in range(8):
        for k in range(5):
            for _ in range(6):
                rows.append((f"f{i}", f"farm{i}_{k}", T0 + pd.Timedelta(hours=int(rng.integers(2, 4)),
                                                                           minutes=int(rng.integers(60))),
                             f"10.9.9.{rng.integers(1, 250)}", "like"))
    for i in range(n_h):
        net = "172.16.5" if i < 40 else f"100.{rng.integers(255)}.{rng.integers(255)}"
        for _ in range(int(rng.integers(3, 12))):
            rows.append((f"h{i}", f"user{i}", T0 + pd.Timedelta(hours=int(rng.integers(7, 24)),
                                                                  minutes=int(rng.integers(60))),
                         f"{net}.{rng.integers(1, 250)}", str(rng.choice(["view", "like", "collect"]))))
    ev = pd.DataFrame(rows, columns=["device_id", "account_id", "ts", "ip", "action"])
    return dev, ev


@pytest.mark.parametrize("algorithm", ["dbscan", "hdbscan"])
def test_device_farm_flagged_popular_model_not(algorithm):
    dev, ev = _devices_and_events()
    est = DeviceClusterer(algorithm=algorithm).fit(dev, ev)
    flagged = set(est.entity_ids_[est.labels_ == 1])
    farm = {f"f{i}" for i in range(8)}
    farm_cluster = est.clusters_.sort_values("score").iloc[-1]
    assert farm_cluster["fingerprint_identity"] == 1.0 and farm_cluster["accounts_per_device"] == 5.0
    # the campus devices (same spec, same /24, one account each) cluster but score low
    assert (est.clusters_["score"].drop(farm_cluster.name) < 0.5).all()
    if algorithm == "hdbscan":  # HDBSCAN keeps the densest core of a tiny block only
        assert flagged and flagged <= farm
        return
    assert flagged == farm and farm_cluster["n_devices"] == 8
    acc = est.account_scores(ev)
    assert set(acc.loc[acc.score > 0.5, "account_id"]) == {f"farm{i}_{k}" for i in range(8) for k in range(5)}


def test_device_clusterer_seeded_result_and_no_mutation():
    dev, ev = _devices_and_events(seed=1)
    dev0, ev0 = dev.copy(), ev.copy()
    a = DeviceClusterer().fit(dev, ev)
    b = DeviceClusterer().fit(dev, ev)
    pd.testing.assert_frame_equal(dev, dev0)
    pd.testing.assert_frame_equal(ev, ev0)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert a.threshold_ == 0.5 and a.score_frame()["entity_type"].iloc[0] == "device"


def test_device_clusterer_on_counts_reduced_before_pandas_is_the_same():
    """Issue 13: the group stage hands the clusterer one row per (device, account, ip, hour, action) with a count."""
    dev, ev = _devices_and_events(seed=2)
    counts = (ev.assign(hour=ev["ts"].dt.hour).drop(columns="ts")
              .value_counts(["device_id", "account_id", "ip", "hour", "action"]).rename("n").reset_index())
    counts = counts.sample(frac=1.0, random_state=0)  # order-free
    a, b = DeviceClusterer().fit(dev, ev), DeviceClusterer().fit(dev, counts)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    pd.testing.assert_frame_equal(a.device_features_.drop(columns="_hours"), b.device_features_.drop(columns="_hours"))
    pd.testing.assert_frame_equal(a.clusters_, b.clusters_)


def test_device_clusterer_on_usage_aggregated_in_duckdb_is_the_same():
    """Issue 13: per-device aggregates reduced in DuckDB (device_usage_sql) give the events' clusters."""
    import duckdb

    from fraudkit.identification.group.clusters import device_usage_sql

    dev, ev = _devices_and_events(seed=2)
    con = duckdb.connect()
    con.register("ev", ev.sample(frac=1.0, random_state=1))  # order-free
    usage = device_usage_sql("SELECT device_id, account_id, ip, ts, action FROM ev", lambda q: con.sql(q).df())
    # the older layout: counts by (device, hour, action) in one table
    joint = {**{k: v for k, v in usage.items() if k != "actions"},
             "hours": con.sql("SELECT device_id, hour(ts) AS hour, action, count(*) AS n FROM ev "
                              "WHERE device_id IS NOT NULL GROUP BY ALL").df()}
    a = DeviceClusterer().fit(dev, ev)
    assert (a.cluster_ >= 0).any() and set(usage) == {"hours", "actions", "accounts", "ips"}
    for b in (DeviceClusterer().fit(dev, usage=usage), DeviceClusterer().fit(dev, usage=joint)):
        np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
        pd.testing.assert_frame_equal(a.device_features_.drop(columns="_hours"),
                                      b.device_features_.drop(columns="_hours"))
        np.testing.assert_array_equal(np.stack(a.device_features_["_hours"]), np.stack(b.device_features_["_hours"]))
        pd.testing.assert_frame_equal(a.clusters_, b.clusters_)
    with pytest.raises(ValueError, match="not both"):
        DeviceClusterer().fit(dev, ev, usage=usage)


def test_device_clusterer_bad_input():
    dev, ev = _devices_and_events()
    with pytest.raises(MissingInputError):
        DeviceClusterer().fit(dev.drop(columns=["fingerprint"]), ev)
    with pytest.raises(ValueError, match="duplicate device_id"):
        DeviceClusterer().fit(pd.concat([dev, dev.iloc[:1]]), ev)
    with pytest.raises(ValueError):
        DeviceClusterer(algorithm="kmeans").fit(dev, ev)
    with pytest.raises(NotFittedError):
        DeviceClusterer().account_scores(ev)


def _coactions(seed=0):
    """20 paid accounts like 3 obscure notes within an hour; 150 fans like a viral note; organic noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(20):
        for n in ("buy1", "buy2", "buy3"):
            rows.append((f"paid{a}", n, T0 + pd.Timedelta(minutes=int(rng.integers(60)))))
        rows.append((f"paid{a}", f"n{rng.integers(500)}", T0 + pd.Timedelta(days=int(rng.integers(10)))))
    for a in range(150):
        rows.append((f"fan{a}", "viral", T0 + pd.Timedelta(minutes=int(rng.integers(60)))))
        for _ in range(int(rng.integers(1, 4))):
            rows.append((f"fan{a}", f"n{rng.integers(500)}", T0 + pd.Timedelta(days=int(rng.integers(10)))))
    for a in range(400):
        for _ in range(int(rng.integers(1, 6))):
            rows.append((f"org{a}", f"n{rng.integers(500)}", T0 + pd.Timedelta(days=int(rng.integers(10)))))
    return pd.DataFrame(rows, columns=["account_id", "target_id", "ts"])


def test_coaction_finds_paid_group_not_fans():
    ev = _coactions()
    m = CoActionMiner(seed=0).fit(ev)
    strong = m.groups_[m.groups_["score"] > 0.5]
    assert len(strong) == 1
    g = strong.iloc[0]
    assert g["n_accounts"] == 20 and g["targets"] == ["buy1", "buy2", "buy3"]
    assert g["support"] == 20 and g["time_spread_hours"] < 1.0 and g["exclusivity"] == 1.0
    s = m.account_scores()
    assert set(s.loc[s["score"] > 0.5, "account_id"]) == {f"paid{a}" for a in range(20)}
    # fans that share the viral note and one more note, and organic accounts that share one of their two or three
    # notes (weighted Jaccard >= 0.3, chained into components), form only weak groups
    weak = s[~s["account_id"].str.startswith("paid")]
    assert len(weak) and weak["score"].max() < 0.3


def test_coaction_candidate_pairs_deduplicated_as_generated_seeded():
    """Issue 13: pairs are de-duplicated band by band (not kept for every band); the candidate set is unchanged."""
    ev = _coactions()
    m = CoActionMiner(seed=0, max_neighbors=3).fit(ev)
    # the same as when every band's pairs were kept until the end (test_lsh_pairs_merged_as_generated_...)
    assert m.n_candidate_pairs_ == 2435
    best = m.groups_.loc[m.groups_["score"].idxmax()]
    assert best["n_accounts"] == 20 and best["score"] > 0.5 and (m.groups_["score"] > 0.5).sum() == 1


def test_a_chain_without_a_shared_target_is_no_coaction_group():
    """Accounts k and k + 1 share one of their three targets (Jaccard 1/3, verified): 30 of them make one
    connected component in which no target is used by half the members. It is no group (its members score 0,
    no reason); a crew of six on the same three targets is one."""
    rows = [(f"chain{k}", f"t{k + j}", T0) for k in range(30) for j in (0, 1)]
    rows += [(f"crew{a}", t, T0 + pd.Timedelta(minutes=a)) for a in range(6) for t in ("x", "y", "z")]
    m = CoActionMiner(seed=0).fit(pd.DataFrame(rows, columns=["account_id", "target_id", "ts"]))
    assert m.n_candidate_pairs_ >= 29 + 15
    assert m.groups_["n_accounts"].tolist() == [6] and m.groups_["targets"].tolist() == [["x", "y", "z"]]
    assert m.groups_["n_targets"].dtype == np.int64 and m.groups_["group_id"].tolist() == [0]
    s = pd.Series(m.decision_scores_, index=m.entity_ids_)
    assert (s[[f"chain{k}" for k in range(30)]] == 0).all() and (s[[f"crew{a}" for a in range(6)]] > 0.5).all()
    assert set(m.membership_["account_id"]) == {f"crew{a}" for a in range(6)}


def _every_band_pairs(Ab, eligible, num_perm, bands, max_neighbors, rng):
    """The banding written plainly: every band's pairs kept, de-duplicated at the end (same draws, same order)."""
    rows = np.flatnonzero(eligible)
    sub = Ab[rows].tocsr()
    r = num_perm // bands
    salt = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    coef = rng.integers(1, 1 << 31, size=r, dtype=np.uint64)
    tiebreak = rng.permutation(len(rows))
    pairs = set()
    for band in range(bands):
        key = np.zeros(len(rows), dtype=np.uint64)
        for j in range(r):
            k = band * r + j
            h = _mix64(sub.indices.astype(np.uint64) ^ salt[k])
            key = key * coef[j] + np.minimum.reduceat(h, sub.indptr[:-1])
        order = np.lexsort((tiebreak, key))
        for p in range(len(order)):
            for q in range(p + 1, min(p + max_neighbors + 1, len(order))):
                if key[order[q]] != key[order[p]]:
                    break
                pairs.add((min(order[p], order[q]), max(order[p], order[q])))
    return rows[np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_neighbors", [1, 3, 50])
def test_lsh_pairs_merged_as_generated_are_every_bands_pairs(seed, max_neighbors):
    """Issue 13: the bands' pairs are merged as they come; they equal every band's pairs de-duplicated at the end.

    Rows are copies of a few item sets (they collide in every band), near copies (in some bands) and noise.
    """
    rng = np.random.default_rng(seed)
    base = [rng.choice(300, size=int(rng.integers(2, 8)), replace=False) for _ in range(12)]
    sets = []
    for _ in range(400):
        kind = rng.random()
        s = set(base[int(rng.integers(len(base)))].tolist())
        if kind < 0.3:
            s.add(int(rng.integers(300)))
        elif kind < 0.5:
            s = set(rng.choice(300, size=int(rng.integers(1, 6)), replace=False).tolist())
        sets.append(sorted(s))
    Ab = sp.csr_matrix((np.ones(sum(map(len, sets))), (np.repeat(np.arange(len(sets)), [len(s) for s in sets]),
                                                         np.concatenate(sets))), shape=(len(sets), 300))
    eligible = np.diff(Ab.indptr) >= 2
    got = _lsh_pairs(Ab, eligible, 16, 8, max_neighbors, np.random.default_rng(seed))
    want = _every_band_pairs(Ab, eligible, 16, 8, max_neighbors, np.random.default_rng(seed))
    assert len(want) > 100
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cores", [2, 3])
def test_lsh_pairs_with_bands_on_threads_are_the_bands_one_by_one(cores, monkeypatch):
    """Issue 13: as many bands at a time as there are cores (on threads), the same pairs as one band at a time."""
    import fraudkit.capability.graphs as G
    from fraudkit.identification.group import clusters

    rng = np.random.default_rng(5)
    sets = [sorted(set(rng.choice(60, size=int(rng.integers(2, 6)), replace=False).tolist())) for _ in range(500)]
    Ab = sp.csr_matrix((np.ones(sum(map(len, sets))), (np.repeat(np.arange(len(sets)), [len(s) for s in sets]),
                                                         np.concatenate(sets))), shape=(len(sets), 60))
    eligible = np.diff(Ab.indptr) >= 2
    want = _lsh_pairs(Ab, eligible, 16, 8, 3, np.random.default_rng(0))  # few entries: one band at a time
    assert len(want) > 200
    monkeypatch.setattr(clusters, "parts_for", lambda n: cores)
    monkeypatch.setattr(G, "usable_cores", lambda: cores)
    np.testing.assert_array_equal(_lsh_pairs(Ab, eligible, 16, 8, 3, np.random.default_rng(0)), want)


@pytest.mark.parametrize(("bands", "expected"), [(1, 0.25), (4, 1 - 0.75 ** 4)])
def test_lsh_pairs_collide_as_often_as_minhash_says(bands, expected):
    """Two accounts of Jaccard 1/2 are a candidate pair with probability 1 - (1 - 0.5 ** 2) ** bands (two rows a
    band), whatever numbers their items have. 3,000 such pairs on items numbered at random: the share found is
    within four standard deviations. (A hash increasing in the item number pairs them with probability 1/2 in
    every band: the lowest-numbered item of the union is shared half the time.)"""
    rng = np.random.default_rng(7)
    n_pairs = 3000
    ids = rng.permutation(n_pairs * 20).reshape(n_pairs, 20)
    rows = np.concatenate([ids[:, :15], ids[:, 5:]], axis=1).reshape(2 * n_pairs, 15)
    Ab = sp.csr_matrix((np.ones(rows.size), (np.repeat(np.arange(2 * n_pairs), 15), rows.ravel())),
                       shape=(2 * n_pairs, n_pairs * 20))
    pairs = _lsh_pairs(Ab, np.ones(2 * n_pairs, dtype=bool), 2 * bands, bands, 1, np.random.default_rng(0))
    assert set(map(tuple, pairs.tolist())) <= {(2 * k, 2 * k + 1) for k in range(n_pairs)}
    found = len(pairs) / n_pairs
    assert abs(found - expected) < 4 * np.sqrt(expected * (1 - expected) / n_pairs), found


def test_mix64_is_a_bijection_on_a_sample():
    x = np.arange(1 << 16, dtype=np.uint64)
    h = _mix64(x)
    assert len(np.unique(h)) == len(x) and not np.array_equal(np.sort(h), h)


def test_coaction_window_splits_and_seed_reproducible():
    ev = _coactions()
    a = CoActionMiner(seed=3).fit(ev)
    b = CoActionMiner(seed=3).fit(ev)
    pd.testing.assert_frame_equal(a.membership_, b.membership_)
    # the same three targets hit on different days by two halves do not co-act within a 1-day window
    late = ev.copy()
    half = late["account_id"].isin([f"paid{i}" for i in range(10)]) & late["target_id"].str.startswith("buy")
    late.loc[half, "ts"] += pd.Timedelta(days=3)
    w = CoActionMiner(window="1D", seed=0, min_group_size=5).fit(late)
    assert sorted(w.groups_["n_accounts"].tolist()) == [10, 10]


def test_coaction_bad_input():
    with pytest.raises(ValueError):
        CoActionMiner(num_perm=64, bands=5).fit(_coactions())
    with pytest.raises(MissingInputError):
        CoActionMiner().fit(pd.DataFrame({"account_id": [1]}))


def test_profile_and_candidates():
    ev = _coactions()
    m = CoActionMiner(seed=0).fit(ev)
    acc = pd.DataFrame({"account_id": ev["account_id"].unique(),
                        "registered_at": T0 - pd.Timedelta(days=400)})
    acc.loc[acc["account_id"].str.startswith("paid"), "registered_at"] = T0 - pd.Timedelta(days=2)
    prof = profile_clusters(m.membership_, accounts=acc, events=ev)
    assert prof["n_accounts"].tolist() == m.groups_["n_accounts"].tolist()
    assert prof.loc[0, "new_account_share"] == 1.0 and prof.loc[1:, "new_account_share"].max() == 0.0
    src = m.account_scores().assign(kind="coaction", group_size=20)
    c = candidates(src, min_score=0.5)
    assert list(c.columns) == ["account_id", "group_id", "kind", "score", "reason"]
    assert len(c) == 20 and c["reason"].str.contains("coaction group").all()
    assert len(candidates(src, min_score=0.5, min_size=21)) == 0
    with pytest.raises(MissingInputError):
        candidates(pd.DataFrame({"account_id": [1]}))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_spec_codes_and_modal_networks_equal_the_text_computations(seed):
    rng = np.random.default_rng(seed)
    n = 2_000
    spec = pd.DataFrame({c: rng.choice(["a", "b", "c", None, 1.5], n) for c in ("model", "os", "screen")})
    text = spec.astype(str)
    assert np.array_equal(_first_appearance_codes(text), pd.factorize(text.agg("|".join, axis=1))[0])
    d = rng.integers(0, 300, n)
    p = rng.choice(np.array(["10.0.0.0/24", "10.0.1.0/24", "9.9.9.0/24", None], dtype=object), n)
    k = rng.integers(1, 4, n)
    old = (pd.DataFrame({"d": d, "p": p, "k": k}).dropna().groupby(["d", "p"])["k"].sum().reset_index()
           .sort_values(["d", "k", "p"], ascending=[True, False, True]).drop_duplicates("d"))
    want = np.full(310, None, dtype=object)
    want[old["d"].to_numpy()] = old["p"].to_numpy()
    assert _modal(310, d, p, k).tolist() == want.tolist()


@pytest.mark.parametrize("longest", [5, 40, 1_000])
def test_weighted_jaccard_is_scipys_row_sum_bit_for_bit(longest):
    """Issue 13: the pairs' shared weight is summed as SciPy sums the rows of their product (the first value plus
    NumPy's pairwise sum of the rest: 8 partial sums up to 128 values, halves beyond), so the Jaccard values and
    every threshold on them are those of ``Ab[left].multiply(Aw[right]).sum(axis=1)``, bit for bit; rows of up to
    1,000 shared items take the halving path. Pairs come in any order; a row may be empty."""
    rng = np.random.default_rng(longest)
    n_acc, n_item = 120, 2 * longest + 10
    size = rng.integers(0, longest + 1, n_acc)
    rows = np.repeat(np.arange(n_acc), size)
    cols = np.concatenate([rng.choice(n_item, k, replace=False) for k in size])
    A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_acc, n_item))
    w = 1.0 / np.log(np.diff(A.tocsc().indptr) + 1.7 + rng.random(n_item))
    Aw = sp.csr_matrix(A.multiply(w[None, :]))
    Aw.eliminate_zeros()
    Ab = Aw.copy()
    Ab.data[:] = 1.0
    pairs = rng.integers(0, n_acc, (3_000, 2))
    got = _weighted_jaccard(Ab, Aw, pairs)
    inter = np.asarray(Ab[pairs[:, 0]].multiply(Aw[pairs[:, 1]]).sum(axis=1)).ravel()
    tot = np.asarray(Aw.sum(axis=1)).ravel()
    union = tot[pairs[:, 0]] + tot[pairs[:, 1]] - inter
    want = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    shared = np.asarray(Ab[pairs[:, 0]].multiply(Ab[pairs[:, 1]]).sum(axis=1)).ravel()
    assert (shared > 0).sum() > 500 and shared.max() > {5: 1, 40: 8, 1_000: 256}[longest]
    np.testing.assert_array_equal(got, want)
