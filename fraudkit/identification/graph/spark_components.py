"""Graph work that scales out: connected components on Spark, then Leiden per component in parallel.

Modularity communities never cross connected components (an edge-less pair of groups gains nothing by being
merged), so the communities of a graph are the union of the communities of its components. On Spark:

1. :func:`connected_components` labels every node of an edge DataFrame with its component (the smallest node
   id in it) by alternating *large-star* and *small-star* rounds (Kiveris et al., "Connected Components in
   MapReduce and Beyond", SoCC 2014): DataFrame joins and group-bys only, O(log n) rounds, each a shuffle of
   the edges;
2. :func:`component_communities` runs Leiden (leidenalg, igraph inside) on each component in parallel with
   ``groupBy("component").applyInPandas``. Each component gets its own seed, derived from the run's seed and
   the component's id (:func:`component_seed`), and its graph is built in one canonical order, so the
   partition does not depend on how Spark splits, orders or schedules the work;
3. a *giant* component (more than ``max_component_edges`` edges) would not fit one executor's Python worker: it
   is gathered on the driver (after a memory check that refuses, with the figures and the fix, when the
   driver lacks room) and partitioned there by the same function, with the same seed.

:func:`local_component_communities` is the same computation in pandas on one machine; the two give the same
partition (``tests/identification/graph/test_spark_components.py``).

pyspark is optional: it is imported only inside the functions that take Spark DataFrames.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from fraudkit.errors import FraudkitError, MissingInputError

__all__ = ["connected_components", "component_communities", "local_component_communities", "component_seed",
           "leiden_component", "MAX_COMPONENT_EDGES"]

MAX_COMPONENT_EDGES = 5_000_000
"""Components with more edges are partitioned on the driver, not in an executor's Python worker."""

_BYTES_PER_EDGE = 200
"""Driver memory per edge of a giant component: the Arrow/pandas frame, igraph's graph and leidenalg's state."""


def connected_components(edges, *, src="src", dst="dst", max_rounds=64):
    """Connected components of an edge DataFrame on Spark by large-star / small-star rounds.

    Parameters
    ----------
    edges : pyspark.sql.DataFrame
        One row per edge; direction, duplicates and self-loops do not matter. Node ids are integers or
        strings (one type); null ends are not nodes (an edge with one is ignored).
    src, dst : str, default="src", "dst"
        The two end columns.
    max_rounds : int, default=64
        Rounds of (large-star, small-star) before giving up; each round at least halves the distance to a
        star for every node, so a few tens of rounds cover any real graph.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns ``node`` and ``component`` (the smallest node id of the component), one row per node that
        appears in ``edges``.

    Raises
    ------
    MissingInputError
        ``src`` or ``dst`` is not a column.
    FraudkitError
        The rounds did not converge within ``max_rounds``.
    """
    from pyspark.sql import functions as F

    missing = [c for c in (src, dst) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"connected_components: the edges have no column(s) {', '.join(missing)}; "
                                f"columns: {', '.join(edges.columns)}; pass src= and dst=")
    e = (edges.select(F.col(src).alias("a"), F.col(dst).alias("b"))
         .where(F.col("a").isNotNull() & F.col("b").isNotNull()))
    nodes = e.select(F.col("a").alias("node")).union(e.select(F.col("b").alias("node"))).distinct()
    # an edge (u, v) with u > v: v is u's parent candidate
    e = e.where(F.col("a") != F.col("b")).select(F.greatest("a", "b").alias("u"), F.least("a", "b").alias("v"))
    e = e.distinct().localCheckpoint()
    for _ in range(max_rounds):
        e = _small_star(_large_star(e)).localCheckpoint()
        # converged when the edges form stars: each node has one parent, and every parent is a root
        twice = e.groupBy("u").count().where(F.col("count") > 1).select("u")
        if twice.union(e.select("v").intersect(e.select("u"))).limit(1).count() == 0:
            break
    else:
        raise FraudkitError(f"connected_components did not converge in {max_rounds} rounds; raise max_rounds")
    parent = e.select(F.col("u").alias("node"), F.col("v").alias("component"))
    return (nodes.join(parent, "node", "left")
            .select("node", F.coalesce("component", "node").alias("component")))


def component_communities(edges, *, src="src", dst="dst", weight=None, resolution=1.0, seed=0, n_iterations=-1,
                          components=None, max_component_edges=MAX_COMPONENT_EDGES, driver_memory=None):
    """Leiden communities of an edge DataFrame on Spark, one component per task, exact and reproducible.

    Parameters
    ----------
    edges : pyspark.sql.DataFrame
        One row per edge (undirected; duplicate pairs add their weights; self-loops are dropped).
    src, dst : str, default="src", "dst"
        End columns.
    weight : str or None, default=None
        Weight column (positive); ``None`` weighs every edge 1.
    resolution : float, default=1.0
        Modularity resolution (leidenalg's ``RBConfigurationVertexPartition``).
    seed : int, default=0
        The run's seed; each component is seeded with :func:`component_seed` ``(seed, component)``.
    n_iterations : int, default=-1
        Leiden iterations; negative runs until the partition stops changing.
    components : pyspark.sql.DataFrame or None, default=None
        ``node``, ``component`` from :func:`connected_components` (computed when None).
    max_component_edges : int, default=MAX_COMPONENT_EDGES
        A component with more edges is partitioned on the driver (see the module docstring).
    driver_memory : int or None, default=None
        Bytes the driver may use for a giant component (default: the memory available now, from psutil).

    Returns
    -------
    pyspark.sql.DataFrame
        Columns ``node``, ``component`` and ``community`` (the smallest node id of the community), one row per
        node of ``edges``.

    Raises
    ------
    FraudkitError
        A giant component does not fit the driver's memory (the message gives its size and the fix).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType

    if components is None:
        components = connected_components(edges, src=src, dst=dst)
    w = F.col(weight).cast("double") if weight else F.lit(1.0)
    e = (edges.select(F.col(src).alias("src"), F.col(dst).alias("dst"), w.alias("weight"))
         .where(F.col("src").isNotNull() & F.col("dst").isNotNull())
         .join(components.select(F.col("node").alias("src"), "component"), "src"))
    node_type = components.schema["node"].dataType
    schema = StructType([StructField("node", node_type), StructField("component", node_type),
                         StructField("community", node_type)])
    sizes = e.groupBy("component").count()
    giant = [r["component"] for r in sizes.where(F.col("count") > int(max_component_edges)).collect()]
    run = _component_runner(float(resolution), int(seed), int(n_iterations))
    small = e.join(F.broadcast(sizes.where(F.col("count") > int(max_component_edges)).select("component")),
                   "component", "left_anti") if giant else e
    out = small.groupBy("component").applyInPandas(run, schema=schema)
    for comp in giant:
        part = e.where(F.col("component") == F.lit(comp))
        n = part.count()
        need, have = n * _BYTES_PER_EDGE, _available(driver_memory)
        if need > have:
            raise FraudkitError(
                f"component {comp!r} has {n:,} edges: partitioning it on the driver needs about {need >> 20:,} MiB "
                f"and {have >> 20:,} MiB are available. Give the driver more memory (spark.driver.memory), prune "
                f"hot entities from the graph so it splits, or raise max_component_edges on executors with room")
        local = run(part.toPandas())
        out = out.unionByName(edges.sparkSession.createDataFrame(local, schema=schema))
    return out


def local_component_communities(edges, *, src="src", dst="dst", weight=None, resolution=1.0, seed=0,
                                n_iterations=-1) -> pd.DataFrame:
    """The same per-component Leiden as :func:`component_communities`, in pandas on one machine.

    Parameters
    ----------
    edges : pandas.DataFrame
        As in :func:`component_communities`.
    src, dst, weight, resolution, seed, n_iterations
        As in :func:`component_communities`.

    Returns
    -------
    pandas.DataFrame
        ``node``, ``component``, ``community``, sorted by ``node``.

    Examples
    --------
    >>> e = pd.DataFrame({"src": [1, 2, 3, 10, 11], "dst": [2, 3, 1, 11, 12]})
    >>> local_component_communities(e)["component"].tolist()
    [1, 1, 1, 10, 10, 10]
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components as cc

    missing = [c for c in (src, dst) + ((weight,) if weight else ()) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"local_component_communities: the edges have no column(s) {', '.join(missing)}")
    e = edges[[src, dst]].rename(columns={src: "src", dst: "dst"})
    e["weight"] = edges[weight].astype(float).to_numpy() if weight else 1.0
    e = e.dropna(subset=["src", "dst"])
    nodes = np.unique(np.concatenate([e["src"].to_numpy(), e["dst"].to_numpy()]))
    a, b = np.searchsorted(nodes, e["src"].to_numpy()), np.searchsorted(nodes, e["dst"].to_numpy())
    _, labels = cc(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes))), directed=False)
    first = pd.Series(nodes).groupby(labels).transform("min").to_numpy()  # nodes are sorted: min = first
    component = pd.Series(first, index=nodes)
    e["component"] = component.loc[e["src"].to_numpy()].to_numpy()
    run = _component_runner(float(resolution), int(seed), int(n_iterations))
    parts = [run(g) for _, g in e.groupby("component", sort=True)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["node", "component", "community"])
    return out.sort_values("node", kind="stable", ignore_index=True)


def component_seed(seed: int, component) -> int:
    """The Leiden seed of one component: a hash of the run's seed and the component's id (its smallest node).

    Independent of how the components are split into tasks and of their order, so a partition is reproducible
    run to run and engine to engine.

    Examples
    --------
    >>> component_seed(0, 17) == component_seed(0, 17), component_seed(0, 17) == component_seed(1, 17)
    (True, False)
    """
    value = component.item() if isinstance(component, np.generic) else component
    digest = hashlib.sha256(f"{int(seed)}\0{value!r}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def leiden_component(edges: pd.DataFrame, *, resolution=1.0, seed=0, n_iterations=-1) -> pd.DataFrame:
    """Leiden on the edges of one component (``src``, ``dst``, ``weight``, ``component``), canonically built.

    Edges are made undirected (``min``/``max`` ends), self-loops dropped, duplicate pairs summed and sorted;
    vertices are the sorted node ids. The community of a node is the smallest node id of its community.

    Returns
    -------
    pandas.DataFrame
        ``node``, ``component``, ``community``.
    """
    import igraph as ig
    import leidenalg

    comp = edges["component"].iloc[0]
    lo = np.minimum(edges["src"].to_numpy(), edges["dst"].to_numpy())
    hi = np.maximum(edges["src"].to_numpy(), edges["dst"].to_numpy())
    e = pd.DataFrame({"lo": lo, "hi": hi, "weight": edges["weight"].to_numpy(dtype=float)})
    nodes = np.unique(np.concatenate([lo, hi]))
    e = e[e["lo"] != e["hi"]].groupby(["lo", "hi"], sort=True, as_index=False)["weight"].sum()
    if e.empty:  # only self-loops: each node alone
        return pd.DataFrame({"node": nodes, "component": comp, "community": nodes})
    g = ig.Graph(n=len(nodes), edges=list(zip(np.searchsorted(nodes, e["lo"]), np.searchsorted(nodes, e["hi"]))))
    part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights=e["weight"].tolist(),
                                    resolution_parameter=resolution, seed=component_seed(seed, comp),
                                    n_iterations=n_iterations)
    membership = np.asarray(part.membership)
    first = pd.Series(nodes).groupby(membership).transform("min").to_numpy()
    return pd.DataFrame({"node": nodes, "component": comp, "community": first})


# --- private helpers ----------------------------------------------------------------------------


def _component_runner(resolution, seed, n_iterations):
    def run(pdf):
        if pdf.empty:
            return pd.DataFrame(columns=["node", "component", "community"])
        return leiden_component(pdf, resolution=resolution, seed=seed, n_iterations=n_iterations)

    return run


def _large_star(e):
    """Connect every larger neighbour of a node to the smallest node of its neighbourhood (itself included)."""
    from pyspark.sql import functions as F

    both = e.union(e.select(F.col("v").alias("u"), F.col("u").alias("v")))  # (node, neighbour)
    m = both.groupBy("u").agg(F.min("v").alias("m"))
    out = (both.join(m, "u").where(F.col("v") > F.col("u"))
           .select(F.col("v").alias("x"), F.least(F.col("m"), F.col("u")).alias("y")))
    return out.where(F.col("x") != F.col("y")).select(F.greatest("x", "y").alias("u"),
                                                      F.least("x", "y").alias("v")).distinct()


def _small_star(e):
    """Connect every node and its smaller neighbours to the smallest of them."""
    from pyspark.sql import functions as F

    m = e.groupBy("u").agg(F.min("v").alias("m"))  # e holds (u, v) with v < u
    out = (e.join(m, "u").select(F.col("v").alias("x"), F.col("m").alias("y"))
           .union(m.select(F.col("u").alias("x"), F.col("m").alias("y"))))
    return out.where(F.col("x") != F.col("y")).select(F.greatest("x", "y").alias("u"),
                                                      F.least("x", "y").alias("v")).distinct()


def _available(limit) -> int:
    if limit is not None:
        return int(limit)
    import psutil

    return int(psutil.virtual_memory().available)
