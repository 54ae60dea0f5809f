"""Components on Spark by large-star / small-star, Leiden per component in parallel: the local result, exactly."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import MissingInputError
from fraudkit.identification.graph.spark_components import (
    component_communities,
    component_seed,
    connected_components,
    local_component_communities,
)


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
