"""Tests of fraudkit.capability.graphs: heterogeneous graph, projections, hot-entity capping."""

import numpy as np
import pandas as pd
import pytest

from fraudkit.capability.graphs import (
    EDGE_TYPES,
    build_hetero_graph,
    coaction_projection,
    edges_to_sparse,
    entity_events,
    project_entity_events,
    shared_entity_projection,
)
from fraudkit.errors import MissingInputError

T0 = pd.Timestamp("2024-03-01")


def _tables():
    logins = pd.DataFrame({"login_id": range(5), "account_id": ["a", "a", "b", "c", "c"],
                           "device_id": ["d1", "d1", "d1", "d2", None],
                           "ip": ["1.2.3.4", "1.2.3.5", "1.2.3.4", "9.9.9.9", "9.9.9.9"],
                           "ts": T0 + pd.to_timedelta([0, 1, 2, 3, 4], "h")})
    orders = pd.DataFrame({"order_id": [1, 2], "account_id": ["a", "c"], "product_id": ["p1", "p1"],
                           "device_id": ["d1", "d2"], "ip": [None, None], "address": ["X", "X"],
                           "receiver_phone": ["139", "139"], "ts": T0 + pd.to_timedelta([5, 6], "h")})
    products = pd.DataFrame({"product_id": ["p1"], "merchant_id": ["m1"]})
    inter = pd.DataFrame({"event_id": [1, 2], "account_id": ["a", "b"], "device_id": ["d1", "d1"],
                          "ip": [None, None], "action": ["like", "follow"], "target_id": ["n1", "a"],
                          "ts": T0 + pd.to_timedelta([7, 8], "h")})
    return {"logins": logins, "orders": orders, "products": products, "interactions": inter}


def test_hetero_graph_nodes_and_edges():
    g = build_hetero_graph(_tables())
    assert g.nodes["node"].tolist() == list(range(len(g.nodes)))
    types = g.nodes.groupby("type", observed=True).size().to_dict()
    assert types == {"account": 3, "device": 2, "ip": 3, "ip24": 2, "phone": 1, "address": 1, "note": 1,
                     "product": 1, "merchant": 1}
    assert set(g.edges["type"].astype(str)) <= set(EDGE_TYPES)
    # a's two logins on d1 plus order plus like collapse into one uses_device edge of weight 4
    a, d1 = g.node_index("account", ["a"])[0], g.node_index("device", ["d1"])[0]
    e = g.edges[(g.edges["src"] == a) & (g.edges["dst"] == d1)]
    assert e["weight"].tolist() == [4.0] and e["type"].astype(str).tolist() == ["uses_device"]
    # follow points at the author's account node, with its action
    b = g.node_index("account", ["b"])[0]
    f = g.edges[(g.edges["src"] == b) & (g.edges["type"] == "acted_on")]
    assert f["dst"].tolist() == [a] and f["action"].tolist() == ["follow"]
    assert g.node_index("device", ["zz"]).tolist() == [-1]


def test_hetero_graph_point_in_time_and_views():
    t = _tables()
    g = build_hetero_graph(t, as_of=T0 + pd.Timedelta(hours=2))
    # static catalogue edges (sold_by) stay; events after as_of go
    assert "note" not in set(g.nodes["type"].astype(str)) and "bought" not in set(g.edges["type"].astype(str))
    assert g.edges["ts"].max() <= T0 + pd.Timedelta(hours=2)
    w = build_hetero_graph(t, window="2h")  # relative to the last event (8h)
    assert w.edges["ts"].min() > T0 + pd.Timedelta(hours=6)
    m = build_hetero_graph(t, edge_types=("uses_device",))
    assert set(m.edges["type"].astype(str)) == {"uses_device"}
    with pytest.raises(ValueError):
        build_hetero_graph(t, edge_types=("nope",))
    g = build_hetero_graph(t)
    adj = g.to_sparse()
    assert adj.shape == (g.n_nodes, g.n_nodes) and (adj != adj.T).nnz == 0
    ig = g.to_igraph()
    assert ig.vcount() == g.n_nodes and ig.ecount() == len(g.edges)
    a = g.node_index("account", ["a"])
    one = g.neighbourhood(a, hops=1)
    two = g.neighbourhood(a, hops=2)
    assert set(one) < set(two) and a[0] in one
    assert g.node_index("account", ["b"])[0] in two


def test_hetero_graph_inputs_unchanged_and_bad_columns():
    t = _tables()
    before = {k: v.copy() for k, v in t.items()}
    build_hetero_graph(t)
    for k in t:
        pd.testing.assert_frame_equal(t[k], before[k])
    with pytest.raises(MissingInputError, match="receiver_phone"):
        build_hetero_graph({"orders": t["orders"].drop(columns="receiver_phone")})


def test_shared_entity_projection_weights_and_counts():
    f = pd.DataFrame({"account_id": ["a", "b", "a", "b", "c", "d", None],
                      "device_id": ["d1", "d1", "d2", "d2", "d2", None, "d1"]})
    e = shared_entity_projection(f).set_index(["src", "dst"])
    assert e.loc[("a", "b"), "n_shared"] == 2
    assert e.loc[("a", "b"), "weight"] == pytest.approx(1 / np.log(3) + 1 / np.log(4))
    assert e.loc[("a", "c"), "weight"] == pytest.approx(1 / np.log(4))
    assert ("c", "d") not in e.index and len(e) == 3
    inv = shared_entity_projection(f, weight="inverse_degree").set_index(["src", "dst"])
    assert inv.loc[("a", "b"), "weight"] == pytest.approx(1 / 2 + 1 / 3)
    assert len(shared_entity_projection(f, min_shared=2)) == 1


def test_shared_entity_window():
    f = pd.DataFrame({"account_id": ["a", "b", "c"], "ip": "1.1.1.1",
                      "ts": T0 + pd.to_timedelta([0, 10, 600], "min")})
    e = shared_entity_projection(f, entity="ip", time="ts", window="30min")
    assert e[["src", "dst"]].values.tolist() == [["a", "b"]]
    with pytest.raises(ValueError, match="time"):
        shared_entity_projection(f, entity="ip", window="1h")
    with pytest.raises(MissingInputError):
        shared_entity_projection(f, entity="device_id")
    with pytest.raises(ValueError):
        shared_entity_projection(f, entity="ip", weight="pagerank")


def test_hot_entity_is_capped_and_down_weighted():
    rng = np.random.default_rng(0)
    n = 20_000
    hot = pd.DataFrame({"account_id": np.arange(n), "product_id": 0,
                        "ts": T0 + pd.to_timedelta(rng.integers(0, 3600, n), "s")})
    small = pd.DataFrame({"account_id": [n, n + 1, n + 2], "product_id": 1, "ts": T0})
    e = shared_entity_projection(pd.concat([hot, small]), entity="product_id", time="ts", k_neighbors=20)
    assert e.attrs["n_hot_entities"] == 1
    n_hot_pairs = int((e["src"] < n).sum())
    assert n_hot_pairs <= 20 * n            # O(n K), not n^2/2 = 2e8
    assert n_hot_pairs > 10 * n             # and the cap still pairs almost everyone with K neighbours
    w_hot = e.loc[e["src"] < n, "weight"].max()
    w_small = e.loc[e["src"] >= n, "weight"].min()
    assert w_hot == pytest.approx(1 / np.log1p(n)) and w_small == pytest.approx(1 / np.log(4))
    assert w_hot < w_small
    # without a time column the hot entity cannot be windowed: skipped and reported
    e2 = shared_entity_projection(pd.concat([hot, small]).drop(columns="ts"), entity="product_id")
    assert e2.attrs["skipped_hot_entities"] == 1 and len(e2) == 3


def test_coaction_projection():
    i = pd.DataFrame({"account_id": ["a", "b", "a", "b", "c", "a", "b"],
                      "action": ["like", "like", "collect", "like", "like", "view", "follow"],
                      "target_id": [1, 1, 2, 2, 2, 3, 1],
                      "ts": T0 + pd.to_timedelta([0, 5, 100, 102, 500, 0, 1], "min")})
    e = coaction_projection(i).set_index(["src", "dst"])
    # a,b co-liked 1 and co-acted on 2 within 10 minutes; c acted 6 hours later; views ignored;
    # b's follow of account 1 is a different target from note 1
    assert e.index.tolist() == [("a", "b")]
    assert e.loc[("a", "b"), "n_coactions"] == 2
    assert e.loc[("a", "b"), "weight"] == pytest.approx(1 / np.log(3) + 1 / np.log(4))
    assert coaction_projection(i, popularity_weight=False)["weight"].tolist() == [2.0]
    assert coaction_projection(i, window="1min").empty


def test_coaction_hot_target_bounded():
    rng = np.random.default_rng(1)
    n = 5000
    i = pd.DataFrame({"account_id": np.arange(n), "action": "like", "target_id": "viral",
                      "ts": T0 + pd.to_timedelta(rng.integers(0, 600, n), "s")})
    e = coaction_projection(i, k_neighbors=5)
    assert len(e) <= 5 * n and e["weight"].max() == pytest.approx(1 / np.log1p(n))


def test_helpers():
    m = edges_to_sparse([0, 0], [1, 1], [1.0, 2.0], n=2)
    assert m.toarray().tolist() == [[0.0, 3.0], [3.0, 0.0]]


def test_all_null_entity_column_gives_no_edges():
    f = pd.DataFrame({"account_id": ["a", "b"], "device_id": [None, None],
                      "ts": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    for kw in ({}, {"time": "ts"}, {"time": "ts", "window": "1h"}):
        e = shared_entity_projection(f, entity="device_id", **kw)
        assert e.empty and list(e.columns) == ["src", "dst", "weight", "n_shared"]


def test_hetero_graph_integer_coded_and_collapsed():
    logins = pd.DataFrame({"account_id": ["a", "a", "b"], "device_id": ["d", "d", "d"],
                           "ip": ["10.0.0.1", "10.0.0.1", "10.0.0.2"],
                           "ts": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"])})
    g = build_hetero_graph({"logins": logins})
    assert g.edges["src"].dtype.kind == "i" and g.edges["dst"].dtype.kind == "i"
    ud = g.edges[g.edges["type"] == "uses_device"]
    a = g.node_index("account", ["a"])[0]
    row = ud[ud["src"] == a].iloc[0]
    assert row["weight"] == 2 and row["ts"] == pd.Timestamp("2024-01-01") and row["ts_last"] == pd.Timestamp("2024-01-03")
    assert set(g.nodes.loc[g.nodes["type"] == "ip24", "key"]) == {"10.0.0.0/24"}


# --- DuckDB reductions and sort-based aggregation give what the pandas path gives --------------------------


@pytest.fixture(scope="module")
def micro_tables():
    from fraudkit.simulation import generate, load_scenario

    d = generate(load_scenario("micro"), seed=3)
    d.pop("labels")
    return d


@pytest.mark.parametrize("entity,tables,max_degree", [
    ("device_id", ("logins", "interactions", "orders", "coupon_claims"), 200),
    ("device_id", ("logins", "interactions", "orders", "coupon_claims"), 3),   # hot devices: paired by time
    ("ip", ("logins",), 200),
    ("ip", ("logins",), 2)])
def test_shared_entity_events_give_the_same_projection(micro_tables, entity, tables, max_degree):
    from fraudkit.capability.graphs import shared_entity_events
    from fraudkit.data.dataset import Dataset

    raw = pd.concat([micro_tables[t][["account_id", entity, "ts"]] for t in tables], ignore_index=True)
    want = shared_entity_projection(raw, entity=entity, time="ts", max_degree=max_degree)
    ev = shared_entity_events(micro_tables, entity=entity, tables=tables, max_degree=max_degree)
    assert len(ev) < len(raw)
    got = shared_entity_projection(ev, entity=entity, time="ts", max_degree=max_degree)
    # same edges, orientation and order; weights up to float rounding (entities summed in another order)
    assert got[["src", "dst", "n_shared"]].equals(want[["src", "dst", "n_shared"]])
    np.testing.assert_allclose(got["weight"], want["weight"], rtol=1e-12)
    assert got.attrs["n_hot_entities"] == want.attrs["n_hot_entities"]
    if max_degree < 10:
        assert want.attrs["n_hot_entities"] > 0
    # a Dataset over the same frames reduces to the same rows
    ds = Dataset.from_tables(micro_tables, validate=False)
    ev_ds = shared_entity_events(ds, entity=entity, tables=tables, max_degree=max_degree)
    assert ev_ds.equals(ev)


def test_hetero_graph_from_dataset_equals_frames(micro_tables):
    """The DuckDB-aggregated build (a Dataset) gives the same typed edges, times and counts as pandas."""
    from fraudkit.data.dataset import Dataset

    ds = Dataset.from_tables(micro_tables, validate=False)

    def keyed(g):
        typ, key = g.nodes["type"].astype(str).to_numpy(), g.nodes["key"].astype(str).to_numpy()
        e = g.edges
        return (e.drop(columns=["src", "dst"])
                .assign(st=typ[e["src"]], sk=key[e["src"]], dt=typ[e["dst"]], dk=key[e["dst"]],
                        type=e["type"].astype(str), action=e["action"].astype(str))
                .sort_values(["type", "st", "sk", "dt", "dk", "action"]).reset_index(drop=True))

    for kw in ({}, {"edge_types": ("uses_device", "uses_ip", "has_phone", "ships_to", "bound_to")},
               {"window": "3D"}, {"as_of": "2024-01-10", "window": "30D"}):
        a, b = build_hetero_graph(micro_tables, **kw), build_hetero_graph(ds, **kw)
        assert a.n_nodes == b.n_nodes and len(a.edges) > 0
        assert keyed(a).equals(keyed(b)), kw
        assert a.params == b.params


def test_group_sum_is_pandas_groupby_sum_bit_for_bit():
    from fraudkit.capability.graphs import group_sum

    rng = np.random.default_rng(0)
    g = np.sort(rng.integers(0, 3000, 50_000))
    v = rng.random(50_000) * 10.0 ** rng.integers(-8, 8, 50_000)
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    got = group_sum(v, starts)
    assert np.array_equal(got, pd.Series(v).groupby(g).sum().to_numpy())
    assert np.array_equal(got / np.diff(np.r_[starts, len(v)]), pd.Series(v).groupby(g).mean().to_numpy())
    assert group_sum(np.array([]), np.array([], np.int64)).shape == (0,)
    # mostly runs of one (the pairs sharing one entity), a few long ones, signed zeros and an infinity
    g = np.sort(np.r_[np.arange(40_000), rng.integers(0, 40_000, 5_000)])
    v = rng.random(len(g)) * 10.0 ** rng.integers(-8, 8, len(g))
    v[:3] = [-0.0, np.inf, -0.0]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    want = pd.Series(v).groupby(g).sum().to_numpy()
    assert np.array_equal(group_sum(v, starts), want) and np.signbit(want[0]) == np.signbit(group_sum(v, starts)[0])


@pytest.mark.parametrize("n_ent", [50, 2 ** 40])  # the second forces the lexsort path (code would overflow)
def test_distinct_pair_entity_matches_drop_duplicates(n_ent):
    from fraudkit.capability.graphs import _distinct_pair_entity

    rng = np.random.default_rng(1)
    p = rng.integers(0, 400, 20_000)
    e = rng.integers(0, 50, 20_000)
    got_p, got_e = _distinct_pair_entity(p, e, 2 ** 12, n_ent)
    want = pd.DataFrame({"p": p, "e": e}).drop_duplicates().sort_values(["p", "e"])
    assert np.array_equal(got_p, want["p"].to_numpy()) and np.array_equal(got_e, want["e"].to_numpy())


def test_coaction_weights_equal_the_pandas_aggregation(micro_tables):
    """coaction_projection's sort-based aggregation equals drop_duplicates + groupby on the same pairs."""
    import fraudkit.capability.graphs as G

    kw = dict(window="3D", actions=("like", "collect", "comment", "share", "follow"), max_degree=20,
              min_coactions=1)
    got = coaction_projection(micro_tables["interactions"], **kw)
    seen = []
    real = G._pair_entity_codes

    def spy(p, e, n_ent):
        seen.append((np.asarray(p).copy(), np.asarray(e).copy()))
        return real(p, e, n_ent)

    G._pair_entity_codes = spy  # called once per chunk of pairs
    try:
        again = coaction_projection(micro_tables["interactions"], **kw)
    finally:
        G._pair_entity_codes = real
    assert again.equals(got) and len(seen)
    chunks = seen
    allp = pd.concat([pd.DataFrame({"p": p, "e": e}).drop_duplicates() for p, e in chunks]).drop_duplicates()
    n = allp.groupby("p", sort=True).size()
    assert len(got) == len(n) and np.array_equal(got["n_coactions"].to_numpy(), n.to_numpy())


def test_coaction_pairs_below_min_coactions_are_dropped_before_their_weights(micro_tables):
    """min_coactions keeps exactly the pairs of min_coactions=1 with that many targets, with the same weights."""
    kw = dict(window="3D", actions=("like", "collect", "comment", "share", "follow"), max_degree=20)
    every = coaction_projection(micro_tables["interactions"], min_coactions=1, **kw)
    assert (every["n_coactions"] == 1).any() and (every["n_coactions"] >= 2).any()
    for k in (2, 3):
        want = every[every["n_coactions"] >= k].reset_index(drop=True)
        pd.testing.assert_frame_equal(coaction_projection(micro_tables["interactions"], min_coactions=k, **kw), want,
                                      check_exact=True)


def test_hetero_graph_around_accounts_keeps_what_strong_entities_need(micro_tables):
    """around= keeps every medium some of the accounts used, with all its users: strong entities of those
    accounts are the same as on the whole graph, from a Dataset (DuckDB) and from frames alike."""
    from fraudkit.data.dataset import Dataset
    from fraudkit.identification.graph.propagation import strong_entities

    types = ("uses_device", "uses_ip", "has_phone", "ships_to", "receiver_phone", "bound_to")
    accounts = micro_tables["accounts"]["account_id"].to_numpy()
    risky = accounts[::3]
    full = build_hetero_graph(micro_tables, edge_types=types)
    want = strong_entities(full, risky, min_accounts=2).drop(columns="node").astype({"entity_id": str})
    assert len(want)
    for data in (micro_tables, Dataset.from_tables(micro_tables, validate=False)):
        near = build_hetero_graph(data, edge_types=types, around=risky)
        assert len(near.edges) < len(full.edges)
        got = strong_entities(near, risky, min_accounts=2).drop(columns="node").astype({"entity_id": str})
        key = ["entity_type", "entity_id"]
        assert got.sort_values(key).reset_index(drop=True).equals(want.sort_values(key).reset_index(drop=True))
    with pytest.raises(ValueError, match="around"):
        build_hetero_graph(micro_tables, around=risky)


# --- hot entities from the data ------------------------------------------------------------------

from fraudkit.capability.graphs import HOT_COLUMNS, entity_usage, hot_entities, shared_entity_events  # noqa: E402
from tests.capability.infra_world import NAT_IP, RING_IP, infra_world  # noqa: E402


@pytest.fixture(scope="module")
def infra():
    return infra_world()


def test_entity_usage_measures_spread_and_relatedness(infra):
    data, nat, ring = infra
    u = entity_usage(data, entity="ip", tables=("logins",)).set_index("entity_id")
    assert u.loc[NAT_IP, "n_accounts"] == 60 and u.loc[NAT_IP, "n_days"] == 14
    assert u.loc[NAT_IP, "n_hours"] >= 20 and u.loc[NAT_IP, "peak_hour_share"] < 0.2
    assert u.loc[NAT_IP, "linked_share"] == 0.0
    assert u.loc[RING_IP, "n_accounts"] == 12 and u.loc[RING_IP, "peak_hour_share"] == 1.0
    assert u.loc[RING_IP, "linked_share"] == 1.0  # three accounts on each device
    assert (u["n_accounts"] >= 2).all()


def test_hot_entities_threshold_is_the_far_out_fence_of_the_degrees(infra):
    data, _, _ = infra
    u = entity_usage(data, entity="ip", tables=("logins",))
    h = hot_entities(u, entity_type="ip")
    q1, q3 = np.quantile(u["n_accounts"], [0.25, 0.75])
    assert h.attrs["degree_threshold"] == max(5, q3 + 3 * (q3 - q1))
    assert tuple(h.columns) == HOT_COLUMNS
    got = h.set_index("entity_id")
    assert got.loc[NAT_IP, "action"] == "dropped" and "steady use by unrelated accounts" in got.loc[NAT_IP, "reason"]
    assert got.loc[RING_IP, "action"] == "time_paired"  # bursty, related: paired by time, never dropped
    assert set(got.index) == {NAT_IP, RING_IP}
    # steady=False (another medium): hot entities are paired by time only
    assert set(hot_entities(u, entity_type="ip", steady=False)["action"]) == {"time_paired"}


def test_hot_entities_do_not_depend_on_row_order(infra):
    data, _, _ = infra
    shuffled = {k: v.sample(frac=1.0, random_state=3) for k, v in data.items()}
    a = hot_entities(entity_usage(data, entity="ip", tables=("logins",)), entity_type="ip")
    b = hot_entities(entity_usage(shuffled, entity="ip", tables=("logins",)), entity_type="ip")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("two_days", [False, True])
def test_hot_entities_of_the_data_equal_those_of_every_entitys_usage(infra, two_days):
    """:func:`hot_entities_of` works out the usage of the entities above the threshold only: the same table (rows,
    reasons, threshold and quartiles) as :func:`hot_entities` over every shared entity's usage, for a medium with
    and without a linking device, and when no hot entity is used on three days, where the span the steady test
    falls back to is read from every entity."""
    from fraudkit.capability.graphs import hot_entities_of

    data, _, _ = infra
    if two_days:  # the hot addresses' uses folded onto the first two days (the homes' stay on theirs): no hot
        # address reaches three days, the span is read from every shared address (14 days) and the NAT is not
        # steady (read from the hot ones alone, two days, it would be)
        lg = data["logins"]
        day = lg["ts"].dt.normalize()
        folded = day.min() + pd.to_timedelta((day - day.min()).dt.days % 2, unit="D") + (lg["ts"] - day)
        data = {**data, "logins": lg.assign(ts=lg["ts"].where(~lg["ip"].isin([NAT_IP, RING_IP]), folded))}
    for link, steady in (("device_id", True), (None, False)):
        want = hot_entities(entity_usage(data, entity="ip", tables=("logins",), link=link), entity_type="ip",
                            steady=steady)
        got = hot_entities_of(data, entity="ip", tables=("logins",), link=link, entity_type="ip", steady=steady)
        assert len(got) >= 2 and set(got["action"]) == ({"dropped", "time_paired"} if steady and not two_days
                                                         else {"time_paired"})
        assert got["n_days"].max() == (2 if two_days else 14)
        pd.testing.assert_frame_equal(got, want)
        assert got.attrs == want.attrs


def test_hot_entities_refuses_a_table_that_is_not_usage():
    with pytest.raises(MissingInputError, match="entity_usage"):
        hot_entities(pd.DataFrame({"entity_id": ["x"], "n_accounts": [3]}), entity_type="ip")


def test_dropping_steady_ips_keeps_the_ring_and_cuts_the_nat_clique(infra):
    data, nat, ring = infra
    h = hot_entities(entity_usage(data, entity="ip", tables=("logins",)), entity_type="ip")
    hot = h.loc[h["action"] == "time_paired", "entity_id"].to_numpy()
    drop = h.loc[h["action"] == "dropped", "entity_id"].to_numpy()
    fixed = shared_entity_projection(data["logins"], entity="ip", time="ts")
    nat_pairs = fixed["src"].isin(nat) & fixed["dst"].isin(nat)
    assert nat_pairs.sum() >= 60 * 59 / 2 - 1  # under the fixed cap of 200 the NAT is a 60-clique
    e = shared_entity_projection(data["logins"], entity="ip", time="ts", hot=hot, drop=drop)
    key = lambda f: sorted(map(tuple, np.sort(f[["src", "dst"]].to_numpy(), axis=1)))  # noqa: E731
    homes = shared_entity_projection(data["logins"][data["logins"]["ip"] != NAT_IP], entity="ip", time="ts")
    both = e["src"].isin(nat) & e["dst"].isin(nat)
    assert set(key(e[both])) <= set(key(homes))  # NAT members are tied only where they share a home
    ring_pairs = e[e["src"].isin(ring) & e["dst"].isin(ring)]
    assert len(ring_pairs) == 12 * 11 // 2  # the burst ties every ring pair within the hot window
    assert e.attrs["n_dropped_entities"] == 1 and e.attrs["n_hot_entities"] == 1
    # the DuckDB reduction gives the same edges
    ev = shared_entity_events(data, entity="ip", tables=("logins",), hot=hot, drop=drop)
    e2 = shared_entity_projection(ev, entity="ip", time="ts", hot=hot, drop=drop)
    assert key(e2) == key(e)


def test_sort_order_is_the_lexsort_permutation():
    """Issue 13: one stable argsort of a combined code (or the lexsort when the ranges overflow 63 bits)."""
    from fraudkit.capability.graphs import sort_order

    rng = np.random.default_rng(0)
    ent, t, acc = rng.integers(0, 50, 5000), rng.integers(-10**9, 10**9, 5000), rng.integers(0, 30, 5000)
    t[::7] = t[0]  # ties on every key
    acc[::7] = acc[0]
    ent[::7] = ent[0]
    assert np.array_equal(sort_order(ent, t, acc), np.lexsort((acc, t, ent)))
    wide = rng.integers(-2**40, 2**40, 5000)  # 2^41 * 2^41 overflows: the lexsort itself
    assert np.array_equal(sort_order(wide, wide[::-1].copy()), np.lexsort((wide[::-1], wide)))
    assert len(sort_order(np.zeros(0, np.int64))) == 0


@pytest.mark.parametrize("window", [None, "1D"])
def test_projection_does_not_depend_on_the_chunk_size(window):
    """Pairs are de-duplicated per chunk and merged when the held codes outgrow a chunk: any chunk size gives
    the same edges, weights and counts bit for bit."""
    import fraudkit.capability.graphs as G

    rng = np.random.default_rng(5)
    n = 20_000
    acc, ent, t = rng.integers(0, 3000, n), rng.integers(0, 400, n), rng.integers(0, 10 ** 6, n)
    keys = np.arange(3000) * 13 + 7
    kw = dict(window=window, max_degree=50, weight="inverse_log_degree", k_neighbors=10, hot_window="1h",
              min_count=1, count_name="n", params={})
    want = G._project(acc, keys, ent, t, chunk_pairs=20_000_000, **kw)
    assert len(want) > 500
    for chunk in (500, 5000):
        pd.testing.assert_frame_equal(G._project(acc, keys, ent, t, chunk_pairs=chunk, **kw), want, check_exact=True)


@pytest.mark.parametrize("window, min_count", [(None, 1), ("1D", 1), ("1D", 2)])
def test_projection_in_runs_on_threads_equals_one_run(window, min_count, monkeypatch):
    """Runs of whole entities on threads, then runs of whole pairs: the same edges, weights and counts bit for
    bit as one run, also with the chunk budget shared between the runs."""
    import fraudkit.capability.graphs as G

    rng = np.random.default_rng(8)
    n = 20_000
    acc, ent, t = rng.integers(0, 3000, n), rng.integers(0, 400, n), rng.integers(0, 10 ** 6, n)
    keys = np.arange(3000) * 13 + 7
    kw = dict(window=window, max_degree=50, weight="inverse_log_degree", k_neighbors=10, hot_window="1h",
              min_count=min_count, count_name="n", params={})
    want = G._project(acc, keys, ent, t, **kw)  # fewer rows than PARALLEL_ROWS: one run
    assert len(want) > 500
    monkeypatch.setattr(G, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(G, "usable_cores", lambda: 3)  # three runs, whatever this machine has
    assert len(G._entity_runs(np.sort(ent), 3)) == 3
    for chunk in (20_000_000, 900):
        pd.testing.assert_frame_equal(G._project(acc, keys, ent, t, chunk_pairs=chunk, **kw), want, check_exact=True)


@pytest.mark.parametrize("scale", [1, 7])
def test_runs_hold_whole_entities_and_pairs(scale):
    """Entity runs and pair runs cover every row once and never cut an entity or a pair, even a big one."""
    from fraudkit.capability.graphs import _entity_runs, _pair_runs

    rng = np.random.default_rng(2)
    keys = np.sort(np.r_[rng.integers(0, 60, 1000), np.full(3000, 20)]) * scale + rng.integers(0, scale, 4000)
    keys.sort()
    for runs in (_pair_runs(keys, scale, 4), _entity_runs(keys // scale, 4)):
        assert runs[0][0] == 0 and runs[-1][1] == len(keys) and 2 <= len(runs) <= 4
        assert all(hi == lo for (_, hi), (lo, _) in zip(runs, runs[1:]))
        assert all(keys[lo - 1] // scale != keys[lo] // scale for lo, _ in runs[1:])
    assert _pair_runs(keys, scale, 1) == [(0, len(keys))]


@pytest.mark.parametrize("window", [None, "1D"])
def test_entity_events_give_the_projection_of_the_rows(window):
    """Uses reduced to the first of each run of one account on one entity give the projection of every row:
    the same edges, orientation, row order, weights (to the last bit) and counts, hot entities included."""
    rng = np.random.default_rng(11)
    n = 12_000
    device = np.where(rng.random(n) < 0.1, "hot" + (rng.integers(0, 3, n)).astype(str),
                      rng.integers(0, 300, n).astype(str))
    frame = pd.DataFrame({"account_id": rng.integers(0, 2000, n) * 7 + 3,
                          "device_id": np.where(rng.random(n) < 0.05, None, device),
                          "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10 ** 6, n), "s")})
    frame = pd.concat([frame, frame.iloc[:3000]], ignore_index=True)  # repeated uses
    ev = entity_events(frame)
    assert len(ev.account) < frame["device_id"].notna().sum() and len(ev.account_keys) == frame.loc[
        frame["device_id"].notna(), "account_id"].nunique()
    want = shared_entity_projection(frame, time="ts", window=window, max_degree=150, k_neighbors=10)
    got = project_entity_events(ev, window=window, max_degree=150, k_neighbors=10)
    assert len(want) > 1000 and want.attrs["n_hot_entities"] == 3
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    with pytest.raises(ValueError, match="weight"):
        project_entity_events(ev, weight="squared")
