import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import MissingInputError
from fraudkit.identification.graph.communities import Partition, detect_communities
from fraudkit.identification.graph.fitness import FITNESS_MEASURES, community_fitness


def _planted(seed=0):
    """A closed 6-clique (a ring), a loose 8-node community wired to the rest, and a sparse background."""
    rng = np.random.default_rng(seed)
    clique = [(a, b) for a in range(6) for b in range(a + 1, 6)]
    loose = [(10 + i, 10 + (i + 1) % 8) for i in range(8)] + [(10 + i, 20 + i) for i in range(8)]
    back = [tuple(sorted(rng.choice(np.arange(20, 60), 2, replace=False))) for _ in range(60)]
    e = pd.DataFrame(clique + loose + back, columns=["src", "dst"]).drop_duplicates()
    return e.assign(weight=1.0)


def test_a_closed_clique_has_zero_conductance_and_full_density():
    e = _planted()
    p = detect_communities(e, seed=0)
    clique = int(p.membership[list(p.nodes).index(0)])
    f = community_fitness(e, p, communities=[clique]).iloc[0]
    assert f["size"] == 6
    assert f["conductance"] == 0.0 and f["expansion"] == 0.0
    assert f["internal_edge_density"] == 1.0 and f["average_internal_degree"] == 5.0
    assert f["triangle_participation_ratio"] == 1.0


def test_measures_do_not_depend_on_node_order_or_ids():
    e = _planted(1)
    nodes = np.array([0, 1, 2, 3, 10, 11, 12, 13])
    p = Partition(nodes, np.array([0, 0, 0, 0, 1, 1, 1, 1]), "x", n_communities=2)
    perm = np.random.default_rng(3).permutation(len(nodes))
    q = Partition(nodes[perm], p.membership[perm], "x", n_communities=2)
    shuffled = e.sample(frac=1.0, random_state=4).reset_index(drop=True)
    pd.testing.assert_frame_equal(community_fitness(e, p), community_fitness(shuffled, q))
    relabel = {k: f"acct_{k}" for k in pd.unique(e[["src", "dst"]].to_numpy().ravel())}
    r = Partition(np.array([relabel[k] for k in nodes]), p.membership, "x", n_communities=2)
    renamed = e.assign(src=e["src"].map(relabel), dst=e["dst"].map(relabel))
    pd.testing.assert_frame_equal(community_fitness(e, p), community_fitness(renamed, r))


def test_default_picks_largest_communities_and_returns_every_measure():
    e = _planted()
    p = detect_communities(e, seed=0)
    f = community_fitness(e, p, max_communities=2)
    assert list(f.columns) == ["community", "size", *FITNESS_MEASURES]
    assert len(f) == 2 and set(f["size"]) <= set(p.sizes()[:2])
    assert ((f["conductance"] >= 0) & (f["conductance"] <= 1)).all()


def test_missing_columns_name_the_fix():
    p = Partition(np.array([1, 2, 3]), np.array([0, 0, 0]), "x", n_communities=1)
    with pytest.raises(MissingInputError, match="src, dst"):
        community_fitness(pd.DataFrame({"a": [1], "b": [2]}), p)
