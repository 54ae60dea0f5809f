"""Tests of fraudkit.identification.graph.communities: detection, comparison, stability, profiles, screening."""

import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import MissingInputError
from fraudkit.identification.base import NotFittedError
from fraudkit.identification.graph.communities import (
    PROFILE_FEATURES,
    CommunityScreener,
    Partition,
    compare_partitions,
    detect_communities,
    community_evidence,
    profile_communities,
    stability,
)


def _planted(n_blocks=4, size=25, seed=0):
    rng = np.random.default_rng(seed)
    n = n_blocks * size
    i, j = np.triu_indices(n, 1)
    same = (i // size) == (j // size)
    keep = rng.random(len(i)) < np.where(same, 0.5, 0.01)
    return pd.DataFrame({"src": i[keep], "dst": j[keep], "weight": rng.uniform(0.5, 1.5, keep.sum())})


@pytest.mark.parametrize("method", ["leiden", "louvain", "leidenalg"])
def test_detect_recovers_planted_blocks(method):
    import random
    random.seed(1)
    e = _planted()
    p = detect_communities(e, method=method, seed=0)
    assert p.n_communities == 4 and len(p.nodes) == 100
    truth = Partition(np.arange(100), np.arange(100) // 25, "truth", n_communities=4)
    assert compare_partitions(p, truth)["ari"] == pytest.approx(1.0)
    assert 0.6 < p.modularity < 0.8
    assert np.all(np.diff(p.sizes()) <= 0)  # relabelled largest first


def test_detect_is_seeded_and_reproducible():
    e = _planted(6, 15)
    a, b = detect_communities(e, seed=3), detect_communities(e, seed=3)
    assert np.array_equal(a.membership, b.membership) and a.modularity == b.modularity
    assert a.params["seed"] == 3 and a.method == "leiden"


def test_detect_resolution_isolated_nodes_and_errors():
    e = _planted()
    coarse = detect_communities(e, resolution=0.05)
    fine = detect_communities(e, resolution=5.0)
    assert coarse.n_communities < 4 < fine.n_communities
    p = detect_communities(e, nodes=[1000, 1001])
    f = p.to_frame()
    assert f.loc[f["account_id"] == 1000, "community_size"].item() == 1
    with pytest.raises(ValueError):
        detect_communities(e, method="girvan_newman")
    with pytest.raises(MissingInputError):
        detect_communities(e.drop(columns="weight"))
    with pytest.raises(ValueError):
        detect_communities(e.assign(weight=-1.0))
    assert detect_communities(e.drop(columns="weight"), weight=None).n_communities == 4


def test_compare_and_stability():
    a = Partition(np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1]), "a", n_communities=2)
    b = Partition(np.array([1, 2, 3, 4]), np.array([0, 1, 0, 1]), "b", n_communities=2)
    c = compare_partitions(a, b)
    assert c["ari"] < 0 and c["nmi"] == pytest.approx(0.0, abs=1e-9)
    # missing nodes are singletons
    d = Partition(np.array([1, 2]), np.array([0, 0]), "d", n_communities=1)
    assert 0 < compare_partitions(a, d)["nmi"] < 1
    s = stability(_planted(), seeds=[0, 1, 2])
    assert len(s) == 3 and s.attrs["mean_ari"] == pytest.approx(1.0)


def _profile_world():
    accounts = pd.DataFrame({"account_id": list(range(10)),
                             "registered_at": [pd.Timestamp("2024-03-09")] * 5 + [pd.Timestamp("2023-01-01")] * 5})
    t = pd.Timestamp("2024-03-10 12:00")
    logins = pd.DataFrame({"account_id": list(range(10)),
                           "device_id": ["farm"] * 5 + [f"d{i}" for i in range(5)],
                           "ts": [t] * 5 + [t + pd.Timedelta(hours=i) for i in range(5)]})
    orders = pd.DataFrame({"account_id": list(range(10)), "ts": [t] * 10, "device_id": None,
                           "product_id": ["p"] * 10, "address": ["仓库路1号"] * 5 + [f"X路{i}号" for i in range(5)],
                           "receiver_phone": [f"{i}" for i in range(10)], "promotion_id": [None] * 10})
    products = pd.DataFrame({"product_id": ["p"], "discount": [0.3]})
    part = Partition(np.arange(10), np.array([0] * 5 + [1] * 5), "x", n_communities=2)
    edges = pd.DataFrame({"src": [0, 0, 1, 5], "dst": [1, 2, 2, 6], "n": [3, 1, 2, 1]})
    return part, {"accounts": accounts, "logins": logins, "orders": orders, "products": products}, edges


def test_profile_communities():
    part, data, edges = _profile_world()
    prof = profile_communities(part, data, known_bad=[0, 7], edges=edges, tie_count="n").set_index("community")
    assert prof.loc[0, "size"] == 5 and prof.loc[0, "n_internal_edges"] == 3
    assert prof.loc[0, "density"] == pytest.approx(3 / 10) and prof.loc[0, "repeat_tie_share"] == pytest.approx(2 / 3)
    assert prof.loc[0, "new_account_share"] == 1.0 and prof.loc[1, "new_account_share"] == 0.0
    assert prof.loc[0, "device_sharing"] == 1.0 and prof.loc[1, "device_sharing"] == 0.0
    assert prof.loc[0, "address_sharing"] == 1.0 and prof.loc[1, "address_sharing"] == 0.0
    assert prof.loc[0, "time_concentration"] == 1.0 and prof.loc[1, "time_concentration"] == pytest.approx(6 / 10)
    assert prof.loc[0, "discounted_share"] == 1.0
    assert prof.loc[0, "known_bad_share"] == pytest.approx(0.2) and prof.loc[1, "known_bad_share"] == pytest.approx(0.2)
    # missing tables leave zeros and say so
    p2 = profile_communities(part, {"accounts": data["accounts"]})
    assert set(p2.attrs["missing"]) == {"interactions", "orders", "logins"} and (p2["device_sharing"] == 0).all()
    # small communities are not profiled
    assert profile_communities(part, data, min_size=6).empty


def test_profiles_from_evidence_reduced_once_are_the_same():
    """Issue 13: the graph stage reduces the data once (community_evidence) and profiles every view from it."""
    part, data, edges = _profile_world()
    ev = community_evidence(data)
    assert not ev.devices.duplicated().any() and not ev.receivers.duplicated().any()
    assert ev.hours["n"].sum() == sum(len(data[t]) for t in ("orders", "logins") if t in data)
    pd.testing.assert_frame_equal(profile_communities(part, data, edges=edges, tie_count="n", evidence=ev),
                                  profile_communities(part, data, edges=edges, tie_count="n"))
    # the evidence is all that is read: the data may be gone
    pd.testing.assert_frame_equal(profile_communities(part, {}, known_bad=[0, 7], evidence=ev),
                                  profile_communities(part, data, known_bad=[0, 7]))


def test_evidence_of_a_dataset_reduced_in_duckdb_gives_the_same_profiles():
    """Issue 13: a Dataset's evidence is reduced in DuckDB (distinct pairs, per-account counts); the profiles
    of every community equal those from the pandas frames."""
    from fraudkit.data.dataset import Dataset
    from fraudkit.simulation import generate, load_scenario

    tables = generate(load_scenario("micro"), seed=0)
    tables.pop("labels", None)
    ds = Dataset.from_tables(tables, validate=False)
    frames = {k: ds.to_pandas(k) for k in ds.tables}
    a, b = community_evidence(frames), community_evidence(ds)
    assert len(b.hours) < sum(len(frames[t]) for t in ("interactions", "orders", "logins"))
    keys = frames["accounts"]["account_id"].to_numpy()
    part = detect_communities(pd.DataFrame({"src": keys[:-1], "dst": keys[1:], "weight": 1.0}), seed=0)
    pd.testing.assert_frame_equal(profile_communities(part, frames, evidence=a, known_bad=keys[:5]),
                                  profile_communities(part, frames, evidence=b, known_bad=keys[:5]))


def test_screener_unsupervised_and_supervised():
    part, data, edges = _profile_world()
    prof = profile_communities(part, data, edges=edges, tie_count="n")
    scr = CommunityScreener().fit(prof)
    assert scr.labels_.tolist() == [1, 0] and scr.decision_scores_[0] > scr.decision_scores_[1]
    assert scr.entity_ids_.tolist() == [0, 1] and scr.threshold_ == 0.5
    x = prof.set_index("community").loc[0, list(PROFILE_FEATURES)].to_numpy(float)
    from fraudkit.identification.graph.communities import SCREEN_WEIGHTS
    w = np.array([SCREEN_WEIGHTS[f] for f in PROFILE_FEATURES])
    gate = min(1.0, np.log(5) / np.log(8))
    assert scr.decision_scores_[0] == pytest.approx(gate * (1 - np.prod(1 - w * x)))
    sf = scr.score_frame()
    assert (sf["entity_type"] == "community").all() and (sf["stage"] == "graph").all()
    sup = CommunityScreener().fit(prof, y=[1, 0])
    assert sup.decision_scores_[0] > 0.5 > sup.decision_scores_[1]
    assert np.allclose(sup.decision_function(prof), sup.decision_scores_)
    with pytest.raises(ValueError):
        CommunityScreener().fit(prof, y=[1, 1])
    with pytest.raises(MissingInputError):
        CommunityScreener().fit(prof.drop(columns="density"))
    with pytest.raises(NotFittedError):
        CommunityScreener().decision_function(prof)


def _crowd_and_taste(seed=0):
    """A paid crowd of 30 working 3 campaigns of 6 niche notes, inside 600 honest accounts whose taste
    communities dominate their own topic's notes."""
    from fraudkit.identification.graph.communities import capture_scores, captured_targets  # noqa: F401

    rng = np.random.default_rng(seed)
    rows = []
    honest = [f"h{i}" for i in range(600)]
    for i, a in enumerate(honest):  # taste: topic i % 6, 12 likes among 300 notes of that topic
        topic = i % 6
        for n in rng.choice(300, 12, replace=False):
            rows.append((a, f"t{topic}_{n}", f"topic{topic}"))
    crowd = [f"w{i}" for i in range(30)]
    for c in range(3):
        workers = rng.choice(crowd, 20, replace=False)
        for w in workers:
            for n in rng.choice(6, 3, replace=False):
                rows.append((w, f"paid{c}_{n}", f"topic{(c + n) % 6}"))
    for w in crowd:  # workers are real people with their own taste too
        topic = int(rng.integers(0, 6))
        for n in rng.choice(300, 8, replace=False):
            rows.append((w, f"t{topic}_{n}", f"topic{topic}"))
    ev = pd.DataFrame(rows, columns=["account_id", "target", "stratum"])
    return ev, crowd


def test_capture_finds_the_crowd_and_spares_taste_communities():
    from fraudkit.capability.graphs import shared_entity_projection
    from fraudkit.identification.graph.communities import capture_scores, captured_targets

    ev, crowd = _crowd_and_taste()
    e = shared_entity_projection(ev, entity="target", max_degree=500, min_shared=2)
    part = detect_communities(e, seed=0)
    mem = part.to_frame().set_index("account_id")["community"]
    # crowd members end up in one community
    assert mem.reindex(crowd).value_counts().iloc[0] >= 27
    cap = captured_targets(part, ev, stratum="stratum")
    assert cap.attrs["n_tests"] == len(cap)
    paid = cap.loc[cap["captured"], "target"]
    assert len(paid) and paid.str.startswith("paid").all()
    s = capture_scores(part, ev, cap).set_index("account_id")["score"]
    assert (s.reindex(crowd) > 0.5).mean() >= 0.9
    assert (s.drop(crowd) > 0.5).mean() == 0.0
    # exact seeded figures
    assert int((s.reindex(crowd) > 0.5).sum()) == 28


def test_capture_bad_input():
    from fraudkit.identification.graph.communities import captured_targets

    p = Partition(np.array(["a"]), np.array([0]), "x", n_communities=1)
    with pytest.raises(MissingInputError):
        captured_targets(p, pd.DataFrame({"account_id": ["a"]}))


def test_capture_finds_a_crowd_absorbed_into_a_taste_community():
    """Crowd workers are real people: community detection can fold them into their taste community, where they
    are a minority (capture_share ~0.2) although the notes they were paid for are engaged almost only by them.
    ``coordination`` (the confirmed share of the engagers of an account's captured targets) still finds them;
    the honest heavy users of that community stay clear."""
    from fraudkit.identification.graph.communities import capture_scores, captured_targets

    ev, crowd = _crowd_and_taste()
    accounts = pd.unique(ev["account_id"])
    topic = {a: (int(a[1:]) % 6 if a.startswith("h") else 0) for a in accounts}  # the crowd joins topic 0's fans
    part = Partition(np.asarray(accounts), np.array([topic[a] for a in accounts]), "taste", n_communities=6)
    cap = captured_targets(part, ev, stratum="stratum")
    paid = cap.loc[cap["captured"], "target"]
    assert len(paid) and paid.str.startswith("paid").all()
    s = capture_scores(part, ev, cap).set_index("account_id")
    assert (s.loc[crowd, "capture_share"] < 0.5).all()  # the community-share view alone misses them
    assert (s.loc[crowd, "score"] > 0.5).mean() >= 0.9
    assert (s.drop(crowd)["score"] > 0.5).sum() == 0
    assert np.allclose(s["score"], np.maximum(s["coordination"], s["capture_share"]
                                              * np.minimum(1, s["n_captured"] / 2)))
    # exact seeded figures
    assert int((s.loc[crowd, "score"] > 0.5).sum()) == 29
    assert round(float(s.loc[crowd, "capture_share"].iloc[0]), 3) == 0.223


def test_evidence_with_addresses_normalised_by_the_caller_is_the_same():
    """community_evidence(addresses=...) looks normalised addresses up instead of normalising them again, and
    normalises those the mapping lacks: the receivers are the same, from frames and from a Dataset."""
    from fraudkit.capability.r_ab import normalize_address
    from fraudkit.data.dataset import Dataset
    from fraudkit.simulation import generate, load_scenario

    tables = generate(load_scenario("micro"), seed=0)
    tables.pop("labels", None)
    ds = Dataset.from_tables(tables, validate=False)
    frames = {k: ds.to_pandas(k) for k in ds.tables}
    raw = pd.unique(frames["orders"]["address"].dropna().astype(str))
    assert len(raw) > 4
    known = pd.Series(normalize_address(raw[: len(raw) // 2])["address"].to_numpy(), index=raw[: len(raw) // 2])

    def rows(f):
        return f.sort_values(list(f.columns), kind="stable").reset_index(drop=True)

    for data in (frames, ds):
        want, got = community_evidence(data), community_evidence(data, addresses=known)
        pd.testing.assert_frame_equal(rows(got.receivers), rows(want.receivers), check_exact=True)
        pd.testing.assert_frame_equal(rows(got.orders), rows(want.orders), check_exact=True)
