"""Tests of fraudkit.graphs: heterogeneous graph, projections, hot-entity capping."""

import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import MissingInputError
from fraudkit.graphs import (EDGE_TYPES, build_hetero_graph, coaction_projection, edges_to_sparse, ip24,
                             shared_entity_projection)

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
    assert ip24(["1.2.3.4", None]).tolist() == ["1.2.3", None]
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
    assert set(g.nodes.loc[g.nodes["type"] == "ip24", "key"]) == {"10.0.0"}
