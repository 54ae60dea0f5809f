"""Tests of fraudkit.identification.graph.propagation: label propagation, PPR, sub-graph sampling, strong entities, seed pool."""

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fraudkit.capability.graphs import build_hetero_graph
from fraudkit.errors import ConvergenceWarning, MissingInputError
from fraudkit.identification.graph.propagation import (
    SeedPool,
    label_propagation,
    personalized_pagerank,
    propagate_by_block,
    sample_subgraph,
    strong_entities,
)


def _two_cliques():
    # clique 0-4, clique 5-9, one bridge 4-5, isolated node 10
    rows, cols = [], []
    for block in (range(5), range(5, 10)):
        for i in block:
            for j in block:
                if i < j:
                    rows.append(i)
                    cols.append(j)
    rows.append(4)
    cols.append(5)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(11, 11))


def test_label_propagation_properties():
    adj = _two_cliques()
    f = label_propagation(adj, [0])
    assert f[1:5].min() > f[5:10].max() > 0 and f[10] == 0
    assert np.allclose(f[1:4], f[1])  # symmetric positions get equal scores
    g = label_propagation(adj, [0], negative_seeds=[9])
    assert g[8] < 0 < g[1] and g[1] < f[1] + 1e-12
    assert np.allclose(label_propagation(adj.T.tocsr(), [0]), f)  # direction does not matter
    with pytest.warns(ConvergenceWarning):
        label_propagation(adj, [0], max_iter=2)
    with pytest.raises(ValueError):
        label_propagation(adj, [0], alpha=1.0)
    with pytest.raises(IndexError):
        label_propagation(adj, [11])
    with pytest.raises(TypeError):
        label_propagation(adj.toarray(), [0])
    with pytest.raises(ValueError):
        label_propagation(-adj, [0])


def test_degree_normalisation_protects_hub_neighbours():
    # seed 0 touches hub 1, which has 50 other neighbours; seed 0 also touches leaf 2 directly
    n = 53
    rows = [0, 0] + [1] * 50
    cols = [1, 2] + list(range(3, 53))
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    f = label_propagation(adj, [0])
    assert f[2] > f[1] > f[3]


def test_personalized_pagerank():
    adj = _two_cliques()
    p = personalized_pagerank(adj, [0])
    assert p.sum() == pytest.approx(1.0) and p[10] == 0
    assert p[1:5].min() > p[6:10].max()
    q = personalized_pagerank(adj, [0, 9], seed_weights=[1, 3])
    assert q[9] > q[0]
    with pytest.raises(ValueError):
        personalized_pagerank(adj, [0], seed_weights=[0.0])
    with pytest.warns(ConvergenceWarning):
        personalized_pagerank(adj, [0], max_iter=3)


def _logins():
    t = pd.Timestamp("2024-01-01")
    rows = [("a", "d1", "1.1.1.1"), ("b", "d1", "1.1.1.2"), ("c", "d1", "1.1.1.3"), ("d", "d2", "2.2.2.2"),
            ("e", "d2", "2.2.2.3"), ("f", "d3", "9.9.9.9")]
    rows += [(f"campus{i}", f"cd{i}", "8.8.8.8") for i in range(30)] + [("a", "d1", "8.8.8.8")]
    df = pd.DataFrame(rows, columns=["account_id", "device_id", "ip"])
    df["ts"] = t
    df.insert(0, "login_id", range(len(df)))
    return df


def test_sample_subgraph_hops_and_hubs():
    g = build_hetero_graph({"logins": _logins()})
    a = g.node_index("account", ["a"])
    sub = sample_subgraph(g, a, hops=2, max_degree=10)
    accs = set(sub.nodes.loc[sub.nodes["type"] == "account", "key"])
    # d1 reached at hop 1, its users at hop 2; the campus IP is included but not expanded
    assert {"a", "b", "c"} <= accs and not any(k.startswith("campus") for k in accs)
    assert "8.8.8.8" in set(sub.nodes["key"])
    assert sub.nodes.loc[sub.nodes["key"] == "a", "hop"].item() == 0
    assert sub.edges["src"].max() < len(sub.nodes)
    orig = sub.nodes["orig_node"].to_numpy()
    assert (g.nodes["key"].to_numpy()[orig] == sub.nodes["key"].to_numpy()).all()
    small = sample_subgraph(g, a, hops=3, max_nodes=4)
    assert len(small.nodes) == 4
    wide = sample_subgraph(g, a, hops=2, max_degree=1000)
    assert any(str(k).startswith("campus") for k in wide.nodes["key"])


def test_strong_entities():
    g = build_hetero_graph({"logins": _logins()})
    s = strong_entities(g, ["a", "b", "c", "d"], min_accounts=2)
    assert s[["entity_type", "entity_id", "n_accounts", "n_risky", "risky_share"]].values.tolist() == [
        ["device", "d1", 3, 3, 1.0]]
    s1 = strong_entities(g, ["a", "b", "c", "d"], min_accounts=1)
    assert s1["entity_id"].tolist()[0] == "d1" and s1["entity_id"].tolist()[-1] == "8.8.8.8"
    assert s1.loc[s1["entity_id"] == "8.8.8.8", "risky_share"].item() == pytest.approx(1 / 31)
    assert strong_entities(g, ["zzz"]).empty
    assert set(strong_entities(g, ["a", "b", "c"], min_accounts=1, entity_types=("ip",))["entity_type"]) == {"ip"}


def test_seed_pool_update_save_load(tmp_path):
    p0 = SeedPool.empty()
    new = pd.DataFrame({"entity_type": ["account", "account", "device"], "entity_id": [1, 2, "d1"],
                        "source": "rules", "score": [0.9, 0.5, 0.7]})
    p1 = p0.update(new, run_id="r1", seen_at="2024-01-01")
    assert len(p0) == 0 and len(p1) == 3  # update returns a new pool
    p2 = p1.update(pd.DataFrame({"entity_type": ["account"], "entity_id": ["2"], "source": ["graph"],
                                 "score": [0.8]}), run_id="r2", seen_at="2024-02-01")
    row = p2.table.set_index("entity_id").loc["2"]
    assert row["n_runs"] == 2 and row["score"] == 0.8 and row["source"] == "graph"
    assert row["first_run"] == "r1" and row["last_run"] == "r2"
    assert row["first_seen"] == pd.Timestamp("2024-01-01") and row["last_seen"] == pd.Timestamp("2024-02-01")
    assert sorted(p2.keys("account")) == ["1", "2"] and p2.keys("device").tolist() == ["d1"]
    path = tmp_path / "pool" / "seed_pool.parquet"
    p2.save(path)
    back = SeedPool.load(path)
    pd.testing.assert_frame_equal(back.table.reset_index(drop=True), p2.table.reset_index(drop=True),
                                  check_dtype=False)
    assert len(SeedPool.load(tmp_path / "missing.parquet")) == 0
    with pytest.raises(MissingInputError):
        p2.update(pd.DataFrame({"entity_id": [1]}), run_id="x")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(MissingInputError):
        SeedPool.load(tmp_path / "bad.parquet")


def test_symmetric_normalisation_equals_the_diagonal_products():
    """D^-1/2 W D^-1/2 by scaling entries gives the bits (values and order) of the two sparse products."""
    import scipy.sparse as sp

    from fraudkit.capability.graphs import edges_to_sparse
    from fraudkit.identification.graph.propagation import _normalised

    rng = np.random.default_rng(4)
    n, m = 3000, 40_000
    A = edges_to_sparse(rng.integers(0, n, m), rng.integers(0, n, m), rng.random(m), n=n, symmetric=False)
    S, _ = _normalised(A, "sym")
    W = ((sp.csr_matrix(A, dtype=float) + sp.csr_matrix(A, dtype=float).T) * 0.5).tocsr()
    deg = np.asarray(W.sum(axis=1)).ravel()
    D = sp.diags(np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0))
    want = (D @ W @ D).tocsr()
    assert np.array_equal(S.indptr, want.indptr) and np.array_equal(S.indices, want.indices)
    assert np.array_equal(S.data, want.data)


def _full_iteration(adj, seeds, alpha=0.85, max_iter=100, tol=1e-6):
    """The propagation iterated over every node with the plain symmetrisation (the reference)."""
    W = ((sp.csr_matrix(adj, dtype=float) + sp.csr_matrix(adj, dtype=float).T) * 0.5).tocsr()
    deg = np.asarray(W.sum(axis=1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
    S = sp.csr_matrix(((inv[rows] * W.data) * inv[W.indices], W.indices, W.indptr), shape=W.shape)
    y = np.zeros(adj.shape[0])
    y[seeds] = 1.0
    f = (1 - alpha) * y
    for it in range(max_iter):
        nxt = alpha * (S @ f) + (1 - alpha) * y
        delta = np.abs(nxt - f).max(initial=0.0)
        f = nxt
        if delta < tol:
            break
    return f, it + 1


@pytest.mark.parametrize("symmetric", [True, False])
def test_propagation_of_a_symmetric_adjacency_gives_the_bits_of_the_plain_symmetrisation(symmetric):
    """Skipping the sum of an already symmetric matrix (the graph stage's combined adjacency) changes no bit
    of the scores nor the number of iterations; explicit zero weights are dropped either way."""
    from fraudkit.capability.graphs import edges_to_sparse
    from fraudkit.identification.graph.propagation import LabelPropagation, _symmetrised

    rng = np.random.default_rng(7)
    n, m = 4000, 9000
    w = rng.random(m) * (rng.random(m) > 0.1)
    adj = edges_to_sparse(rng.integers(0, n, m), rng.integers(0, n, m), w, n=n, symmetric=symmetric)
    data = adj.data.copy()
    W = _symmetrised(adj)
    want = ((adj + adj.T) * 0.5).tocsr()
    assert np.array_equal(W.indptr, want.indptr) and np.array_equal(W.indices, want.indices)
    assert np.array_equal(W.data, want.data) and (W.data > 0).all()
    assert np.array_equal(adj.data, data)  # the input is not changed
    seeds = rng.choice(n, size=4, replace=False)
    est = LabelPropagation().fit(adj, seeds)
    f, n_iter = _full_iteration(adj, seeds)
    assert est.n_iter_ == n_iter > 5
    assert np.array_equal(est.decision_scores_, f)


def _plain_iteration(S, y, block, alpha=0.85, tol=1e-6, max_iter=100):
    """The block iteration written plainly: every row multiplied every time, finished blocks' rows not updated."""
    n = S.shape[0]
    starts = np.r_[0, np.flatnonzero(np.diff(block) != 0) + 1]
    lengths = np.diff(np.r_[starts, n])
    f = (1 - alpha) * y
    active = np.ones(len(starts), dtype=bool)
    change = np.full(len(starts), np.inf)
    iters = np.zeros(len(starts), dtype=np.int64)
    for it in range(max_iter):
        nxt = alpha * (S @ f) + (1 - alpha) * y
        change = np.where(active, np.maximum.reduceat(np.abs(nxt - f), starts), change)
        f = np.where(np.repeat(active, lengths), nxt, f)
        iters[active] = it + 1
        active &= ~(change < tol)
        if not active.any():
            break
    late = change[change >= tol]
    return f, int(iters.max()), float(late.max()) if len(late) else 0.0


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_propagation_on_threads_and_live_rows_is_the_plain_iteration(monkeypatch, tol):
    """Issue 13: the iteration multiplies only the rows of blocks still changing, their matrix cut into parts
    multiplied on threads; the scores, iterations and last change are the plain loop's, bit for bit. Blocks of
    1 to 400 nodes finish at different iterations, so the rows are re-cut several times."""
    import fraudkit.capability.graphs as graphs
    import fraudkit.identification.graph.propagation as propagation

    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 400, 300)
    n, starts = sizes.sum(), np.r_[0, np.cumsum(sizes)[:-1]]
    b = rng.integers(0, len(sizes), 40_000)
    r = starts[b] + (rng.random(len(b)) * sizes[b]).astype(int)
    c = starts[b] + (rng.random(len(b)) * sizes[b]).astype(int)
    W = sp.csr_matrix((rng.random(len(b)), (r, c)), shape=(n, n))
    W = (W + W.T).tocsr()
    W.sort_indices()
    y = np.where(rng.random(n) < 0.02, 1.0, np.where(rng.random(n) < 0.01, -1.0, 0.0))
    block = np.repeat(np.arange(len(sizes)), sizes)
    deg = np.asarray(W.sum(axis=1)).ravel()
    d = 1 / np.sqrt(np.where(deg > 0, deg, 1.0))  # a node without edges has an empty row
    S = (sp.diags(d) @ W @ sp.diags(d)).tocsr()
    cuts = []
    monkeypatch.setattr(graphs, "MATVEC_PART_NNZ", 500)
    monkeypatch.setattr(propagation, "row_parts", lambda A: cuts.append(A.shape[0]) or graphs.row_parts(A))
    got = propagate_by_block(S, y, block, tol=tol, max_iter=300, normalised=True)
    want = _plain_iteration(S, y, block, tol=tol, max_iter=300)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]
    assert len(cuts) >= 3 and cuts[0] == n and cuts[-1] < n / 4
    assert len(graphs.row_parts(S)) == len(os.sched_getaffinity(0))
