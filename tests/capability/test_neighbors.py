"""Tests for fraudkit.capability.neighbors: neighbour aggregates, structural features, leave-one-out label features."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fraudkit.capability.neighbors import aggregate_neighbors, neighbor_label_features, structural_features


def _path4():
    # 0 - 1 - 2 - 3, plus isolated node 4; a self-loop on 1 that must be ignored
    a = np.zeros((5, 5))
    for i, j in ((0, 1), (1, 2), (2, 3)):
        a[i, j] = a[j, i] = 1
    a[1, 1] = 1
    return sp.csr_matrix(a)


def test_hop1_stats_match_brute_force():
    rng = np.random.default_rng(3)
    a = sp.random(60, 60, density=0.08, random_state=3, format="csr")
    a = ((a + a.T) > 0).astype(float)
    x = rng.normal(size=(60, 3))
    f = aggregate_neighbors(a, x, hops=1, stats=("mean", "std", "max", "min", "sum"))
    dense = a.toarray()
    np.fill_diagonal(dense, 0)
    for i in range(60):
        nb = np.flatnonzero(dense[i])
        row = f.iloc[i]
        if len(nb) == 0:
            assert (row == 0).all()
            continue
        np.testing.assert_allclose(row[[f"hop1_mean_f{j}" for j in range(3)]], x[nb].mean(0), atol=1e-12)
        np.testing.assert_allclose(row[[f"hop1_std_f{j}" for j in range(3)]], x[nb].std(0), atol=1e-7)
        np.testing.assert_allclose(row[[f"hop1_max_f{j}" for j in range(3)]], x[nb].max(0))
        np.testing.assert_allclose(row[[f"hop1_min_f{j}" for j in range(3)]], x[nb].min(0))
        np.testing.assert_allclose(row[[f"hop1_sum_f{j}" for j in range(3)]], x[nb].sum(0), atol=1e-12)


def test_hop2_is_mean_of_neighbour_means_and_ignores_self_loops():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [9.0]])
    f = aggregate_neighbors(_path4(), x, hops=2, stats=("mean", "max"), feature_names=["v"])
    assert list(f.columns) == ["hop1_mean_v", "hop1_max_v", "hop2_mean_v", "hop2_max_v"]
    assert f["hop1_mean_v"].tolist() == [1.0, 1.0, 2.0, 2.0, 0.0]
    # hop-1 means are [1, 1, 2, 2, 0]; node 1's neighbours 0 and 2 -> mean 1.5, max 2
    assert f["hop2_mean_v"].tolist() == [1.0, 1.5, 1.5, 2.0, 0.0]
    assert f["hop2_max_v"].tolist() == [1.0, 2.0, 2.0, 2.0, 0.0]


def test_weighted_mean_and_chunked_max(monkeypatch):
    a = sp.csr_matrix(np.array([[0, 3.0, 1.0], [3.0, 0, 0], [1.0, 0, 0]]))
    x = np.array([[0.0], [4.0], [8.0]])
    f = aggregate_neighbors(a, x, hops=1, stats=("mean",), weighted=True)
    assert f["hop1_mean_f0"].tolist() == [5.0, 0.0, 0.0]
    import fraudkit.capability.neighbors as nb

    monkeypatch.setattr(nb, "_CHUNK_CELLS", 1)  # one feature column at a time
    x2 = np.array([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]])
    g = aggregate_neighbors(a, x2, hops=1, stats=("max", "min"))
    assert g.iloc[0].tolist() == [3.0, -2.0, 2.0, -3.0]


def test_aggregate_bad_input():
    a = _path4()
    with pytest.raises(ValueError, match="shape"):
        aggregate_neighbors(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="unknown statistic"):
        aggregate_neighbors(a, np.zeros((5, 2)), stats=("median",))
    with pytest.raises(ValueError, match="hops"):
        aggregate_neighbors(a, np.zeros((5, 2)), hops=0)
    with pytest.raises(ValueError, match="square"):
        aggregate_neighbors(sp.csr_matrix(np.ones((2, 3))), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="feature names"):
        aggregate_neighbors(a, np.zeros((5, 2)), feature_names=["a"])


def test_structural_features_values():
    f = structural_features(_path4())
    assert list(f.columns) == ["degree", "core", "pagerank", "clustering", "neighbor_degree"]
    np.testing.assert_allclose(f["degree"], np.log1p([1, 2, 2, 1, 0]))
    assert f["core"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert f["clustering"].tolist() == [0.0] * 5
    # inner path nodes carry more PageRank than the ends; the isolated node the least
    pr = f["pagerank"].to_numpy()
    assert pr[1] == pytest.approx(pr[2]) and pr[1] > pr[0] > pr[4]
    np.testing.assert_allclose(f["neighbor_degree"], [np.log1p(2), (np.log(2) + np.log(3)) / 2,
                                                      (np.log(3) + np.log(2)) / 2, np.log1p(2), 0.0])
    tri = sp.csr_matrix(np.ones((3, 3)) - np.eye(3))
    assert structural_features(tri, include=("clustering",))["clustering"].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown structural"):
        structural_features(tri, include=("betweenness",))


def test_label_features_never_see_own_label():
    rng = np.random.default_rng(0)
    a = sp.random(80, 80, density=0.1, random_state=1, format="csr")
    a = ((a + a.T) > 0).astype(float)
    y = (rng.random(80) < 0.3).astype(int)
    known = rng.random(80) < 0.6
    base = neighbor_label_features(a, y, known, prior=0.2)
    for i in np.flatnonzero(known)[:15]:
        flipped = y.copy()
        flipped[i] = 1 - flipped[i]
        other = neighbor_label_features(a, flipped, known, prior=0.2)
        pd.testing.assert_series_equal(base.iloc[i], other.iloc[i])  # own label changes nothing of its own row
    # brute-force 2-hop: walks i -> j -> k with k != i
    d = a.toarray()
    np.fill_diagonal(d, 0)
    pos = (known & (y == 1)).astype(float)
    walks = d @ d
    np.fill_diagonal(walks, 0)
    np.testing.assert_allclose(base["hop2_fraud"], walks @ pos)
    np.testing.assert_allclose(base["hop1_fraud_share"], (d @ pos + 0.2) / (d @ known + 1))


def test_label_features_bad_input():
    with pytest.raises(ValueError, match="shape"):
        neighbor_label_features(_path4(), [1, 0], [True, False])
    with pytest.raises(ValueError, match="hops"):
        neighbor_label_features(_path4(), [0] * 5, [True] * 5, hops=3)
