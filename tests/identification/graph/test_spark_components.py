"""Communities per connected component: the scaled resolution keeps the global modularity; on Spark (large-star /
small-star components, a unit per task, a giant on the driver) the local partition, exactly."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.identification.graph.communities import detect_communities
from fraudkit.identification.graph.spark_components import (
    communities_by_component,
    component_bucket,
    component_communities,
    component_seed,
    component_units,
    connected_components,
    local_component_communities,
    partition_modularity,
    spark_frame,
)

pytestmark = pytest.mark.slow(80)  # about 80 s in all here: the file starts early (tests/conftest.py)


def _planted(seed=0) -> pd.DataFrame:
    """Three dense groups joined by single edges, a star, a path, a pair, a self-loop; rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for lo in (0, 10, 20):
        rows += [(i, j) for i in range(lo, lo + 10) for j in range(i + 1, lo + 10) if rng.random() < 0.8]
    rows += [(5, 15), (15, 25)]
    rows += [(100, 100 + k) for k in range(1, 8)]          # a star
    rows += [(200 + k, 201 + k) for k in range(6)]          # a path
    rows += [(300, 301), (400, 400)]                         # a pair, a self-loop
    e = pd.DataFrame(rows, columns=["src", "dst"])
    flip = rng.random(len(e)) < 0.5                          # direction does not matter
    e.loc[flip, ["src", "dst"]] = e.loc[flip, ["dst", "src"]].to_numpy()
    return e.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_local_communities_recover_the_planted_groups_and_follow_components():
    e = _planted()
    out = local_component_communities(e, seed=0)
    G = nx.from_pandas_edgelist(e, "src", "dst")
    assert dict(zip(out["node"], out["component"])) == {n: min(c) for c in nx.connected_components(G) for n in c}
    groups = out.set_index("node")["community"]
    for lo in (0, 10, 20):
        assert groups.loc[lo:lo + 9].nunique() == 1 and groups.loc[lo] == lo
    assert groups.loc[400] == 400
    # the result does not depend on row order or edge direction
    again = local_component_communities(e.sample(frac=1, random_state=9)[["dst", "src"]], src="dst", dst="src", seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_component_seeds_are_stable_and_distinct():
    assert component_seed(0, np.int64(5)) == component_seed(0, 5)
    assert len({component_seed(0, c) for c in range(100)}) == 100
    with pytest.raises(MissingInputError, match="weight"):
        local_component_communities(_planted(), weight="weight")
    # the low-level functions take ranks (integers); text ids go through communities_by_component
    with pytest.raises(FraudkitError, match="node keys must be integers"):
        local_component_communities(_planted().astype(str))


@pytest.mark.spark
def test_spark_components_and_communities_equal_the_local_ones(spark):
    e = _planted(1)
    sdf = spark.createDataFrame(e.assign(w=1.0))
    comps = connected_components(sdf).toPandas().sort_values("node", ignore_index=True)
    G = nx.from_pandas_edgelist(e, "src", "dst")
    assert dict(zip(comps["node"], comps["component"])) == {n: min(c) for c in nx.connected_components(G) for n in c}
    local = local_component_communities(e, seed=7)
    on_spark = component_communities(sdf, weight="w", seed=7, components=spark.createDataFrame(comps))
    pd.testing.assert_frame_equal(on_spark.toPandas().sort_values("node", ignore_index=True), local)
    # a component above the bound is partitioned on the driver, with the same seed: the same partition
    giant = component_communities(sdf, weight="w", seed=7, components=spark.createDataFrame(comps),
                                  max_component_edges=20)
    pd.testing.assert_frame_equal(giant.toPandas().sort_values("node", ignore_index=True), local)
    with pytest.raises(Exception, match="spark.driver.memory"):
        component_communities(sdf, seed=7, components=spark.createDataFrame(comps), max_component_edges=20,
                              driver_memory=1000).count()


def _world(seed=0) -> pd.DataFrame:
    """Integer-keyed, weighted: a 'giant' of three planted groups, mid components, triangles, pairs (one heavy),
    a self-loop-only node and a pair with a self-loop; duplicate pairs and both directions; rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for lo in (0, 20, 40):                                     # the giant: three dense groups, weakly joined
        rows += [(i, j, 1.0 + rng.random()) for i in range(lo, lo + 20) for j in range(i + 1, lo + 20)
                 if rng.random() < 0.5]
    rows += [(5, 25, 0.3), (25, 45, 0.3), (45, 5, 0.3)]
    for lo in range(100, 400, 12):                             # mid components: two joined cliques of six
        rows += [(i, j, 1.0) for i in range(lo, lo + 6) for j in range(i + 1, lo + 6)]
        rows += [(i, j, 1.0) for i in range(lo + 6, lo + 12) for j in range(i + 1, lo + 12)]
        rows += [(lo, lo + 6, 0.5)]
    for lo in range(500, 530, 3):                              # triangles
        rows += [(lo, lo + 1, 1.0), (lo + 1, lo + 2, 1.0), (lo, lo + 2, 1.0)]
    rows += [(600 + 2 * k, 601 + 2 * k, 1.0 + k) for k in range(8)]  # pairs
    rows += [(700, 701, 2.0), (700, 701, 1.5), (701, 700, 0.5)]      # a pair given three times
    rows += [(800, 800, 1.0), (900, 901, 1.0), (901, 901, 2.0)]      # a lone self-loop; a looped pair
    e = pd.DataFrame(rows, columns=["src", "dst", "w"])
    flip = rng.random(len(e)) < 0.5
    e.loc[flip, ["src", "dst"]] = e.loc[flip, ["dst", "src"]].to_numpy()
    return e.sample(frac=1, random_state=seed).reset_index(drop=True)


def _spelled(e, spell) -> pd.DataFrame:
    """The same edges, in the same order, with every id renamed by ``spell`` (a bijection)."""
    return e.assign(src=e["src"].map(spell), dst=e["dst"].map(spell))


def _text(i):
    return f"acct_{i}"  # "acct_10" < "acct_9": text order is not the integers' order


UNITS = {"alone_edges": 40, "n_buckets": 3}


def test_scaled_resolution_gives_each_component_its_share_of_the_global_modularity():
    import igraph as ig

    e = _world()
    p = communities_by_component(e, weight="w", resolution=1.3, seed=0, **UNITS)
    nodes = pd.Index(p.nodes)
    g = ig.Graph(n=len(nodes), edges=list(zip(nodes.get_indexer(e["src"]), nodes.get_indexer(e["dst"]))))
    q = g.modularity(p.membership.tolist(), weights=e["w"].tolist(), resolution=1.3)
    assert p.modularity == pytest.approx(q, abs=1e-12)
    assert partition_modularity(e, p.nodes, p.membership, resolution=1.3, weight="w") == pytest.approx(q, abs=1e-12)
    # Q = sum over components of (m_c / m) * Q_c(gamma * m_c / m), each Q_c computed on the component alone
    comp = local_component_communities(e, weight="w", **UNITS).set_index("node")["component"]
    m, parts = e["w"].sum(), []
    for c, ec in e.groupby(e["src"].map(comp)):
        sub = pd.Index(np.unique(np.r_[ec["src"], ec["dst"]]))
        gc = ig.Graph(n=len(sub), edges=list(zip(sub.get_indexer(ec["src"]), sub.get_indexer(ec["dst"]))))
        mc = ec["w"].sum()
        qc = gc.modularity(p.membership[nodes.get_indexer(sub)].tolist(), weights=ec["w"].tolist(),
                           resolution=1.3 * mc / m)
        parts.append(mc / m * qc)
    assert sum(parts) == pytest.approx(q, abs=1e-12)
    # and the per-component optimum is no worse than Leiden on the whole graph at once
    assert p.modularity >= detect_communities(e, weight="w", resolution=1.3, seed=0).modularity - 1e-3


def test_components_are_solved_alone_in_buckets_or_directly():
    e = _world()
    out = local_component_communities(e, weight="w", seed=0, **UNITS)
    community = out.set_index("node")["community"]
    G = nx.from_pandas_edgelist(e, "src", "dst")
    assert dict(zip(out["node"], out["component"])) == {n: min(c) for c in nx.connected_components(G) for n in c}
    assert (out.groupby("community")["component"].nunique() == 1).all()   # no community crosses components
    # the giant's three groups are found; a mid component's two cliques are one community, as the global objective
    # wants (their penalty gamma * K_A * K_B / (2 m^2) is small next to the view's weight), two at a high resolution
    for lo in (0, 20, 40):
        assert community.loc[lo:lo + 19].nunique() == 1
    assert community.loc[106] == 100
    high = local_component_communities(e, weight="w", resolution=40.0, seed=0, **UNITS).set_index("node")
    assert high.loc[106, "community"] == 106 and high.loc[100, "community"] == 100
    # pairs are merged without Leiden (gamma * w < 2 m); a pair is split at a resolution above 2 m / w
    assert community.loc[601] == 600 and community.loc[701] == 700 and community.loc[800] == 800
    m = e["w"].sum()
    split = local_component_communities(e, weight="w", resolution=2 * m / 4.0 * 1.01, seed=0, **UNITS)
    assert split.set_index("node")["community"].loc[701] == 701          # the pair weighs 2 + 1.5 + 0.5
    units = component_units([0, 100, 600], [900, 31, 1], **UNITS)
    assert units["alone"].tolist() == [True, False, False]
    assert units["bucket"].tolist() == [0, 1, 0] == [component_bucket(c, 3) for c in (0, 100, 600)]


def test_partition_is_canonical_and_pinned():
    e = _world()
    p = communities_by_component(e, weight="w", seed=0, **UNITS)
    # nodes in order of first appearance (src, then dst), as detect_communities numbers them
    np.testing.assert_array_equal(p.nodes, pd.unique(np.r_[e["src"].to_numpy(), e["dst"].to_numpy()]))
    sizes = p.sizes()
    assert (np.diff(sizes) <= 0).all() and p.params["by_component"] and p.params["n_components"] == 47
    assert (p.n_communities, sizes[:4].tolist(), round(p.modularity, 6)) == PINNED
    # ties in size are broken by rank: among equal sizes, a community's first node appears earlier
    first = pd.Series(np.arange(len(p.nodes))).groupby(p.membership).min()
    same = pd.DataFrame({"size": sizes, "first": first.to_numpy()})
    assert all(g["first"].is_monotonic_increasing for _, g in same.groupby("size"))


PINNED = (49, [20, 20, 20, 12], 0.944301)


@pytest.mark.parametrize("spell", ["text", "bijection"])
def test_renaming_the_ids_gives_the_same_partition_of_the_renamed_nodes(spell):
    e = _world()
    if spell == "text":
        rename = _text
    else:  # a shuffled bijection of the integers: their order is scrambled
        ids = np.unique(np.r_[e["src"], e["dst"]])
        rename = dict(zip(ids.tolist(), np.random.default_rng(4).permutation(ids * 7 + 3).tolist())).get
    p = communities_by_component(e, weight="w", seed=0, **UNITS)
    q = communities_by_component(_spelled(e, rename), weight="w", seed=0, **UNITS)
    assert [rename(n) for n in p.nodes.tolist()] == q.nodes.tolist()
    np.testing.assert_array_equal(p.membership, q.membership)
    assert q.modularity == p.modularity and q.params == p.params
    # the global Leiden numbers nodes the same way: its partition is invariant too (the property kept here)
    d, dq = (detect_communities(x, weight="w", seed=0) for x in (e, _spelled(e, rename)))
    np.testing.assert_array_equal(d.membership, dq.membership)


@pytest.mark.spark
def test_spark_partition_equals_the_local_one_with_a_giant_on_the_driver(spark):
    e = _world(2)
    local = communities_by_component(e, weight="w", resolution=0.9, seed=3, **UNITS)
    on_spark = communities_by_component(e, weight="w", resolution=0.9, seed=3, spark=spark, **UNITS)
    # the giant (about 300 edge rows) above a lowered bound: gathered and solved on the driver, the same result
    giant = communities_by_component(e, weight="w", resolution=0.9, seed=3, spark=spark, max_component_edges=100,
                                     **UNITS)
    for p in (on_spark, giant):
        np.testing.assert_array_equal(p.nodes, local.nodes)
        np.testing.assert_array_equal(p.membership, local.membership)
        assert p.modularity == local.modularity and p.params == local.params
    rows = local_component_communities(e, weight="w", resolution=0.9, seed=3, **UNITS)
    sdf = spark.createDataFrame(e)
    # the giant alone above the bound shares bucket 0 with small components: they stay on the executors
    got = component_communities(sdf, weight="w", resolution=0.9, seed=3, max_component_edges=100, **UNITS)
    pd.testing.assert_frame_equal(got.toPandas().sort_values("node", ignore_index=True), rows)
    # text ids reach the executors as ranks: the same partition of the renamed nodes
    text = communities_by_component(_spelled(e, _text), weight="w", resolution=0.9, seed=3, spark=spark, **UNITS)
    assert text.nodes.tolist() == [_text(n) for n in local.nodes.tolist()]
    np.testing.assert_array_equal(text.membership, local.membership)
    with pytest.raises(FraudkitError, match="node keys must be integers"):
        component_communities(spark.createDataFrame(_spelled(e, _text)), weight="w")


@pytest.mark.spark
def test_spark_frame_keeps_every_row_in_order_after_its_file_is_gone(spark):
    from pyspark.sql.types import LongType, StructField, StructType

    frame = pd.DataFrame({"src": np.arange(5_000, dtype=np.int64)[::-1], "w": np.linspace(0.5, 2.0, 5_000),
                          "name": [f"acct_{i}" for i in range(5_000)]})
    got = spark_frame(spark, frame)
    pd.testing.assert_frame_equal(got.toPandas(), frame)  # read after the temporary Parquet file was removed
    typed = spark_frame(spark, frame[["src"]].astype("int32"), schema=StructType([StructField("src", LongType())]))
    assert typed.schema["src"].dataType == LongType() and typed.count() == 5_000


def _blocks(seed=0, n=1_500):
    """A symmetric weighted graph of many components (1 to 60 nodes, some lone nodes), nodes shuffled; 30 seeds."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows, cols, start = [], [], 0
    while start < n:
        k = min(int(rng.integers(1, 60)), n - start)
        m = int(k * 1.5)
        rows.append(rng.integers(start, start + k, m))
        cols.append(rng.integers(start, start + k, m))
        start += k
    perm = rng.permutation(n)
    r, c = perm[np.concatenate(rows)], perm[np.concatenate(cols)]
    a = sp.csr_matrix((rng.random(len(r)), (r, c)), shape=(n + 5, n + 5))  # 5 nodes without any entry
    seeds = np.r_[rng.choice(n, 30, replace=False), n + 1]  # one seed has no edge at all
    return (a + a.T).tocsr(), seeds


def test_propagation_by_component_converges_per_component_and_skips_unseeded_ones():
    from scipy.sparse.csgraph import connected_components as scipy_components

    from fraudkit.identification.graph.propagation import LabelPropagation

    adj, seeds = _blocks(0)
    whole = LabelPropagation().fit(adj, seeds)
    per = LabelPropagation(by_component=True).fit(adj, seeds)
    _, label = scipy_components(adj, directed=False)
    seeded = np.isin(label, label[seeds])
    assert (per.decision_scores_[~seeded] == 0).all() and (per.decision_scores_[seeded] > 0).any()
    # the global stop iterates converged components further: within the fixed point's error, never more
    assert np.abs(per.decision_scores_ - whole.decision_scores_).max() < 1e-6 * 0.85 / 0.15 * 2
    assert per.decision_scores_[seeds[-1]] == pytest.approx(0.15)  # the seed without any edge: (1 - alpha)
    # each component alone gives its scores bit for bit
    for c in np.unique(label[seeds])[:5]:
        nodes = np.flatnonzero(label == c)
        alone = LabelPropagation(by_component=True).fit(adj[nodes][:, nodes], np.flatnonzero(np.isin(nodes, seeds)))
        np.testing.assert_array_equal(alone.decision_scores_, per.decision_scores_[nodes])
    with pytest.raises(ValueError, match="needs by_component=True"):
        LabelPropagation().fit(adj, seeds, propagator=print)


@pytest.mark.spark
def test_spark_propagation_equals_the_local_one_bit_for_bit(spark):
    import functools

    from fraudkit.identification.graph.propagation import LabelPropagation, propagate_by_component
    from fraudkit.identification.graph.spark_components import propagation_by_component

    adj, seeds = _blocks(1)
    local = LabelPropagation(by_component=True, threshold=0.05).fit(adj, seeds)
    on_spark = LabelPropagation(by_component=True, threshold=0.05).fit(
        adj, seeds, propagator=functools.partial(propagation_by_component, spark=spark))
    np.testing.assert_array_equal(on_spark.decision_scores_, local.decision_scores_)
    np.testing.assert_array_equal(on_spark.labels_, local.labels_)
    assert on_spark.n_iter_ == local.n_iter_ and local.labels_.sum() > len(seeds)
    # small units in shared buckets, larger components alone, units above the bound on the driver: the same rows
    y = np.zeros(adj.shape[0])
    y[seeds] = 1.0
    y[seeds[:3]] = -1.0  # negative seeds too
    want = propagate_by_component(adj, y).sort_values("node", ignore_index=True)
    got = propagation_by_component(adj, y, spark=spark, alone_edges=40, n_buckets=3, max_component_edges=60)
    got = got.sort_values("node", ignore_index=True)
    cols = ["node", "score"]  # n_iter and change are those of the unit a node was solved in
    pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=True)
    assert got["n_iter"].max() == want["n_iter"].max() and (got["change"] == 0).all() and (want["change"] == 0).all()
    assert (want["score"] != 0).sum() > len(seeds)
    # a unit above the bound that the driver's memory cannot hold: refused with its size and the fix
    with pytest.raises(FraudkitError, match=r"edges: solving it on the driver needs about .*\(spark\.driver\.memory\)"):
        propagation_by_component(adj, y, spark=spark, max_component_edges=60, driver_memory=1)
