"""Communities per connected component, the same computation in pandas and on Spark.

Modularity communities never cross connected components: a community spanning two components gains modularity
when split at the component boundary (it loses no internal edge and sheds the ``gamma * K_A * K_B / (2 m^2)``
penalty term between the parts). So a graph is partitioned component by component, and each component alone
optimises exactly the global objective restricted to it, given a *scaled resolution*:

    Global modularity at resolution ``gamma`` of a graph of total edge weight ``m``, with strengths ``k``::

        Q = 1 / (2 m) * sum_ij (A_ij - gamma * k_i * k_j / (2 m)) * delta(c_i, c_j)

    Every pair ``i, j`` with ``delta = 1`` lies in one component ``c`` (a community does not cross components),
    so ``Q = sum_c Q|_c`` where ``Q|_c`` sums the pairs of ``c``. Solved alone, ``c`` has total weight ``m_c``
    and the same strengths (no edge leaves it); its modularity at resolution ``gamma_c`` is::

        Q_c = 1 / (2 m_c) * sum_{ij in c} (A_ij - gamma_c * k_i * k_j / (2 m_c)) * delta(c_i, c_j)

    With ``gamma_c = gamma * m_c / m`` the penalty ``gamma_c * k_i * k_j / (2 m_c)`` equals
    ``gamma * k_i * k_j / (2 m)``, so ``Q_c = (m / m_c) * Q|_c``: a positive multiple of the global objective's
    share of ``c``, with the same maximisers. The same holds for any union of components solved as one graph
    (a *bucket*: ``m_c`` is then the bucket's weight). igraph's ``community_leiden(objective_function=
    "modularity")`` and ``community_multilevel`` take any positive ``resolution`` (igraph divides it by the
    graph's ``2 m_c`` itself), as does leidenalg's ``RBConfigurationVertexPartition(resolution_parameter=)``.

Every choice below is keyed on a node's *rank*, never on its id: :func:`communities_by_component` numbers the
nodes ``0..n-1`` by their first appearance in the edge list (``src`` column, then ``dst``, as
:func:`fraudkit.identification.graph.communities.detect_communities` does), and the units, seeds and names work
on those ranks. Renaming the ids (integers to ``"acct_<n>"`` text, or any bijection) leaves the ranks, and so the
partition, unchanged; the graph stage builds its edges from canonically sorted tables, so the ranks do not
follow the input's row order either. :func:`local_component_communities` and :func:`component_communities`
take integer node keys and use their order as the rank (``communities_by_component`` hands them the ranks).

How the components are solved (:func:`component_units`), fixed by the data and not by the engine, so that
pandas and Spark give the same partition:

* a component of one node (self-loops only) is one community; a component of two nodes joined by an edge of
  weight ``w`` is one community when merging them gains modularity (``gamma * w / m < 2``), else two — no
  Leiden call for the many tiny components;
* a component is named by its smallest rank; one of ``alone_edges`` edge rows or more is solved alone, seeded
  with :func:`component_seed` ``(seed, component)``;
* the other components go to one of ``n_buckets`` buckets, their name modulo ``n_buckets`` (:func:`component_bucket`, the same in Python and in Spark SQL); each bucket is
  solved as one disjoint-union graph, seeded with :func:`component_seed` ``(seed, ("bucket", b))``;
* every unit's graph is built canonically (ends ordered, duplicate pairs summed, vertices and edges sorted by
  rank), so the result does not depend on how Spark splits the work, or on where it runs;
* the community of a node is named by the smallest rank in it; :func:`communities_by_component` relabels
  those ``0..k-1`` by decreasing size, ties by smallest rank (a canonical :class:`Partition`).

On Spark (:func:`component_communities`): :func:`connected_components` by alternating *large-star* and
*small-star* rounds (Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014; DataFrame joins
and group-bys, O(log n) rounds), then one ``groupBy(unit).applyInPandas`` task per unit. A unit of more than
``max_component_edges`` edge rows (a *giant* component, or a bucket that large) would not fit an executor's
Python worker: it is gathered on the driver, after a memory check that refuses with the figures and the fix,
and solved there by the same function with the same seed, so the bound moves work and never changes the
partition. :func:`local_component_communities` is the same computation in pandas. The executors receive the
ranks as the edges' ``src`` and ``dst`` columns, never the ids, so they build exactly the graphs pandas builds.

pyspark is optional: it is imported only inside the functions that take Spark DataFrames.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tempfile

import numpy as np
import pandas as pd

from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.identification.graph import leiden
from fraudkit.identification.graph.communities import Partition, relabel_by_size
from fraudkit.identification.graph.leiden import modularity, networkit_membership, use_networkit
from fraudkit.identification.graph.propagation import propagate_components
from fraudkit.randomness import igraph_seeded

__all__ = ["communities_by_component", "connected_components", "component_communities",
           "local_component_communities", "component_units", "component_bucket", "component_seed",
           "solve_unit", "partition_modularity", "propagation_by_component", "spark_frame", "ALONE_EDGES", "N_BUCKETS",
           "MAX_COMPONENT_EDGES"]

ALONE_EDGES = 1_000
"""A component with this many edge rows or more is solved alone; smaller ones share a bucket."""

N_BUCKETS = 16
"""Buckets the smaller components are spread over (by :func:`component_bucket`)."""

MAX_COMPONENT_EDGES = 5_000_000
"""On Spark, a unit with more edge rows is solved on the driver, not in an executor's Python worker."""

_BYTES_PER_EDGE = 200
"""Driver memory per edge of a giant unit: the Arrow/pandas frame, igraph's graph and the method's state."""

_PROPAGATION_BYTES_PER_EDGE = 64
"""Driver memory per upper-triangle row of a giant unit in label propagation: the unit's sub-matrix of ``W`` and
its normalised copy, both triangles (4 x 12 B), and the iteration's vectors."""

_METHODS = ("leiden", "louvain", "leidenalg")
_OUT = ["node", "component", "community"]


def communities_by_component(edges, *, method="leiden", resolution=1.0, seed=0, weight="weight", n_iterations=2,
                             src="src", dst="dst", spark=None, alone_edges=ALONE_EDGES, n_buckets=N_BUCKETS,
                             max_component_edges=MAX_COMPONENT_EDGES) -> Partition:
    """Modularity communities of a pandas edge list, component by component, locally or on Spark.

    The partition is the same whether ``spark`` is given or not (see the module docstring); the global
    modularity objective is kept by the scaled resolution of each component.

    Parameters
    ----------
    edges : pandas.DataFrame
        ``src``, ``dst`` and ``weight`` (positive; ``None``: every edge weighs 1). Duplicate pairs add up.
    method : {"leiden", "louvain", "leidenalg"}, default="leiden"
        As in :func:`fraudkit.identification.graph.communities.detect_communities`.
    resolution : float, default=1.0
        The global modularity resolution ``gamma``.
    seed : int, default=0
    weight : str or None, default="weight"
    n_iterations : int, default=2
        Leiden iterations (negative: until stable); ignored by ``louvain``.
    src, dst : str, default="src", "dst"
    spark : pyspark.sql.SparkSession or None, default=None
        Given: the edges go to Spark, components by :func:`connected_components`, units in ``applyInPandas``.
    alone_edges, n_buckets : int
        How components are grouped into units (:func:`component_units`); part of the result.
    max_component_edges : int, default=MAX_COMPONENT_EDGES
        On Spark, units above it are solved on the driver (where, not what).

    Returns
    -------
    Partition
        Nodes in order of first appearance in the edges (``src`` then ``dst``, as ``detect_communities``), which
        is their rank; communities ``0..k-1`` by decreasing size (ties by smallest rank), ``modularity`` the
        global one at ``resolution`` (:func:`partition_modularity`), ``params`` with ``by_component=True``,
        ``n_components``, ``alone_edges`` and ``n_buckets``. Renaming the ids gives the same partition of the
        renamed nodes.

    Examples
    --------
    >>> e = pd.DataFrame({"src": [1, 1, 2, 4, 4, 5, 3], "dst": [2, 3, 3, 5, 6, 6, 4], "weight": 1.0})
    >>> p = communities_by_component(e, seed=0)
    >>> p.n_communities, p.nodes.tolist(), p.membership.tolist()
    (2, [1, 2, 4, 5, 3, 6], [0, 0, 1, 1, 0, 1])
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    e = _edge_frame(edges, src, dst, weight, "communities_by_component")
    kw = dict(method=method, resolution=resolution, seed=seed, n_iterations=n_iterations, alone_edges=alone_edges,
              n_buckets=n_buckets)
    if not len(e):
        return Partition(nodes=e["src"].to_numpy()[:0], membership=np.zeros(0, dtype=np.int64), method=method,
                         params={"resolution": float(resolution), "seed": seed, "weight": weight, "n_edges": 0,
                                 "n_iterations": n_iterations, "by_component": True, "n_components": 0,
                                 "alone_edges": int(alone_edges), "n_buckets": int(n_buckets)})
    # each node's rank: its first appearance in the edges (src, then dst); every choice downstream is keyed on it,
    # so the partition does not depend on how the ids are spelled
    rank, nodes = pd.factorize(np.concatenate([e["src"].to_numpy(), e["dst"].to_numpy()]), sort=False)
    # on one machine the ranks as 32-bit integers (fewer than 2**31 nodes): the stage holds them while a view's
    # Leiden child solves, two views at once (the graph stage's _ViewCommunities), half the memory of 64-bit ones
    rank = rank.astype(np.int32 if spark is None and len(nodes) < 2 ** 31 else np.int64)
    nodes = np.asarray(nodes)
    a, b, w = rank[:len(e)], rank[len(e):], e["weight"].to_numpy(float)
    if spark is None:
        labels = _local_coded(a, b, w, np.arange(len(nodes), dtype=np.int64), **kw)
    else:
        # the executors receive the ranks as the ends, never the ids: the same graphs as the local path
        ranked = spark_frame(spark, pd.DataFrame({"src": a, "dst": b, "weight": w}))
        labels = (component_communities(ranked, weight="weight", max_component_edges=max_component_edges, **kw)
                  .toPandas().sort_values("node", kind="stable", ignore_index=True))
        if not np.array_equal(labels["node"].to_numpy(), np.arange(len(nodes))):
            raise FraudkitError("communities_by_component: Spark returned other nodes than the edges hold")
    community, components = labels["community"].to_numpy(np.int64), labels["component"].nunique()
    membership = relabel_by_size(community)  # labels are ranks, nodes in rank order: ties by smallest rank
    q = modularity(a, b, w, membership, resolution)
    return Partition(nodes=nodes, membership=membership, method=method,
                     params={"resolution": float(resolution), "seed": seed, "weight": weight, "n_edges": len(e),
                             "n_iterations": n_iterations, "by_component": True,
                             "n_components": int(components), "alone_edges": int(alone_edges),
                             "n_buckets": int(n_buckets)},
                     modularity=q, n_communities=int(membership.max(initial=-1) + 1))


def local_component_communities(edges, *, src="src", dst="dst", weight=None, method="leiden", resolution=1.0,
                                seed=0, n_iterations=2, alone_edges=ALONE_EDGES, n_buckets=N_BUCKETS) -> pd.DataFrame:
    """Communities per component in pandas on one machine: what :func:`component_communities` gives on Spark.

    Parameters
    ----------
    edges : pandas.DataFrame
        One row per edge (undirected; duplicate pairs add their weights; null ends are dropped). Node keys are
        integers whose order is the nodes' rank (:func:`communities_by_component` passes first-appearance
        ranks): vertex order, component and community names, buckets and seeds follow it.
    src, dst : str, default="src", "dst"
    weight : str or None, default=None
        Weight column (positive); ``None`` weighs every edge 1.
    method, resolution, seed, n_iterations, alone_edges, n_buckets
        As in :func:`communities_by_component`.

    Returns
    -------
    pandas.DataFrame
        ``node``, ``component`` (its smallest node), ``community`` (its smallest node), sorted by ``node``.

    Raises
    ------
    FraudkitError
        The node keys are not integers.

    Examples
    --------
    >>> e = pd.DataFrame({"src": [1, 2, 3, 10, 11], "dst": [2, 3, 1, 11, 12]})
    >>> local_component_communities(e)["component"].tolist()
    [1, 1, 1, 10, 10, 10]
    """
    e = _edge_frame(edges, src, dst, weight, "local_component_communities")
    _check_integer_keys(e["src"].dtype, e["dst"].dtype, "local_component_communities")
    if not len(e):
        return pd.DataFrame({c: pd.Series(dtype=e["src"].dtype) for c in _OUT})
    code, nodes = pd.factorize(np.concatenate([e["src"].to_numpy(), e["dst"].to_numpy()]), sort=True)
    nodes = np.asarray(nodes)
    out = _local_coded(code[:len(e)], code[len(e):], e["weight"].to_numpy(), nodes, method=method,
                       resolution=resolution, seed=seed, n_iterations=n_iterations, alone_edges=alone_edges,
                       n_buckets=n_buckets)
    return pd.DataFrame({c: nodes[out[c].to_numpy(np.int64)] for c in _OUT})


def component_communities(edges, *, src="src", dst="dst", weight=None, method="leiden", resolution=1.0, seed=0,
                          n_iterations=2, components=None, alone_edges=ALONE_EDGES, n_buckets=N_BUCKETS,
                          max_component_edges=MAX_COMPONENT_EDGES, driver_memory=None):
    """Communities per component of an edge DataFrame on Spark, one unit per task, exact and reproducible.

    Parameters
    ----------
    edges : pyspark.sql.DataFrame
        One row per edge (undirected; duplicate pairs add their weights; null ends are dropped). Node keys are
        integers, their order the nodes' rank, as in :func:`local_component_communities`.
    src, dst, weight, method, resolution, seed, n_iterations, alone_edges, n_buckets
        As in :func:`local_component_communities`.
    components : pyspark.sql.DataFrame or None, default=None
        ``node``, ``component`` from :func:`connected_components` (computed when None).
    max_component_edges : int, default=MAX_COMPONENT_EDGES
        A unit with more edge rows is solved on the driver (see the module docstring).
    driver_memory : int or None, default=None
        Bytes the driver may use for a giant unit (default: the memory available now, from psutil).

    Returns
    -------
    pyspark.sql.DataFrame
        ``node``, ``component``, ``community``: the rows :func:`local_component_communities` gives.

    Raises
    ------
    MissingInputError
        A column is missing.
    FraudkitError
        The node keys are not integers, or a giant unit does not fit the driver's memory (the message gives its
        size and the fix).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, IntegralType, LongType, StructField, StructType

    missing = [c for c in (src, dst) + ((weight,) if weight else ()) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"component_communities: the edges have no column(s) {', '.join(missing)}; "
                                f"columns: {', '.join(edges.columns)}")
    _check_integer_keys(*(edges.schema[c].dataType for c in (src, dst)), "component_communities",
                        integral=lambda t: isinstance(t, IntegralType))
    if components is None:
        components = connected_components(edges, src=src, dst=dst)
    w = F.col(weight).cast("double") if weight else F.lit(1.0)
    e = _with_units(edges.select(F.col(src).alias("src"), F.col(dst).alias("dst"), w.alias("weight"))
                    .where(F.col("src").isNotNull() & F.col("dst").isNotNull())
                    .join(components.select(F.col("node").alias("src"), "component"), "src"),
                    alone_edges=alone_edges, n_buckets=n_buckets)

    @F.pandas_udf(DoubleType())
    def fsum(weights: pd.Series) -> float:  # exactly rounded, so independent of the rows' order
        return math.fsum(weights.to_numpy())

    @F.pandas_udf(LongType())
    def rows(weights: pd.Series) -> int:  # with fsum in one aggregation (pandas UDFs do not mix with count)
        return len(weights)

    per_unit = e.groupBy("bucket", "alone").agg(rows("weight").alias("n"), fsum("weight").alias("w")).collect()
    total = math.fsum(r["w"] for r in per_unit)
    giant = [(r["bucket"], r["alone"], r["n"]) for r in per_unit if r["n"] > int(max_component_edges)]
    node_type = components.schema["node"].dataType
    schema = StructType([StructField(c, node_type) for c in _OUT])

    def run(pdf):
        unit = _unit_key(pdf["bucket"].iloc[0], pdf["alone"].iloc[0], pdf["component"].iloc[0]) if len(pdf) else None
        return solve_unit(pdf, unit=unit, method=method, resolution=resolution, total_weight=total, seed=seed,
                          n_iterations=n_iterations)

    return _apply_by_unit(e, run, schema, giant, driver_memory=driver_memory)


def propagation_by_component(W, y, *, spark, alpha=0.85, tol=1e-6, max_iter=100, alone_edges=ALONE_EDGES,
                             n_buckets=N_BUCKETS, max_component_edges=MAX_COMPONENT_EDGES,
                             driver_memory=None) -> pd.DataFrame:
    """Label propagation per connected component on Spark: the rows of
    :func:`fraudkit.identification.graph.propagation.propagate_by_component`, bit for bit.

    ``LabelPropagation(by_component=True).fit(..., propagator=functools.partial(propagation_by_component,
    spark=spark))`` is how the graph stage calls it. The matrix's upper triangle goes to Spark as ranked rows;
    :func:`connected_components` finds the components, those without a seed are dropped, and the rest are grouped
    into units as communities are (:func:`component_units`). Each task makes its unit's rows symmetric again and
    orders them by (component, node), as one machine does, so each row sums the same entries in the same order. A
    unit above ``max_component_edges`` rows is solved on the driver from ``W`` itself (only its node list comes
    back from Spark), as are the seeds without any entry (Spark never sees them).

    Parameters
    ----------
    W : scipy.sparse.csr_matrix of shape (n, n)
        Symmetric, non-negative, canonical (``LabelPropagation`` passes the symmetrised adjacency).
    y : ndarray of shape (n,)
        1 on seeds, -1 on negative seeds, else 0.
    spark : pyspark.sql.SparkSession
    alpha, tol, max_iter
        As in :class:`fraudkit.identification.graph.propagation.LabelPropagation`.
    alone_edges, n_buckets, max_component_edges, driver_memory
        Where the work runs (as in :func:`component_communities`; rows of the upper triangle), never what it gives.

    Returns
    -------
    pandas.DataFrame
        ``node``, ``score``, ``n_iter``, ``change``: the rows ``propagate_by_component`` gives, in another order.
    """
    import scipy.sparse as sp
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    y = np.asarray(y, dtype=float)
    seeds = np.flatnonzero(y != 0)
    kw = dict(alpha=alpha, tol=tol, max_iter=max_iter)
    if not len(seeds):
        return propagate_components(W, y, seeds, seeds, **kw)
    upper = sp.triu(W, format="coo")
    ranked = spark_frame(spark, pd.DataFrame({"src": upper.row.astype(np.int64), "dst": upper.col.astype(np.int64),
                                              "weight": upper.data}))
    del upper
    components = connected_components(ranked)
    with_seed = (components.join(spark_frame(spark, pd.DataFrame({"node": seeds.astype(np.int64)})), "node")
                 .select("component").distinct())
    e = _with_units(ranked.join(components.select(F.col("node").alias("src"), "component"), "src")
                    .join(with_seed, "component"), alone_edges=alone_edges, n_buckets=n_buckets)
    giant = [(r["bucket"], r["alone"], r["count"]) for r in e.groupBy("bucket", "alone").count().collect()
             if r["count"] > int(max_component_edges)]
    schema = StructType([StructField("node", LongType()), StructField("score", DoubleType()),
                         StructField("n_iter", LongType()), StructField("change", DoubleType())])
    seed_y = pd.Series(y[seeds], index=seeds)  # what each task needs of y: the seeds, not a row per account

    def run(pdf):
        return _propagate_unit(pdf, seed_y, **kw)

    def on_driver(rows):  # a giant unit: its nodes from Spark, its entries from W here
        ends = (rows.select(F.col("src").alias("node"), "component")
                .union(rows.select(F.col("dst").alias("node"), "component")).distinct().toPandas())
        return propagate_components(W, y, ends["node"].to_numpy(np.int64), ends["component"].to_numpy(np.int64),
                                    **kw)

    out = _apply_by_unit(e, run, schema, giant, driver_memory=driver_memory, on_driver=on_driver,
                         bytes_per_row=_PROPAGATION_BYTES_PER_EDGE).toPandas()
    lone = np.setdiff1d(seeds, out["node"].to_numpy(np.int64))  # seeds without any entry: components of their own
    return pd.concat([out, propagate_components(W, y, lone, lone, **kw)], ignore_index=True)


def spark_frame(spark, frame: pd.DataFrame, schema=None):
    """A Spark DataFrame holding ``frame``'s rows, materialised in Spark's block store.

    In a local session the rows go through a Parquet file that the task reads: ``createDataFrame`` of a pandas
    frame ships the rows inside one task description, which the same JVM deserialises object by object (the
    1.7 M edges of the 100 k-account world's R(A,B) view: ``java.lang.OutOfMemoryError`` in a 2g heap). A
    cluster's executors cannot read the driver's files, so there ``createDataFrame`` (Arrow) ships them.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    frame : pandas.DataFrame
        Columns of numbers or text (the kit's sessions read Parquet's nanosecond timestamps as integers).
    schema : pyspark.sql.types.StructType or None, default=None
        The columns' types (cast to them); None: from the frame.

    Returns
    -------
    pyspark.sql.DataFrame
        Cut from its source (``localCheckpoint``): the temporary file is gone when this returns.
    """
    from pyspark.sql import functions as F

    if not str(spark.sparkContext.master).startswith("local"):
        return spark.createDataFrame(frame, schema=schema).localCheckpoint(eager=True)
    with tempfile.TemporaryDirectory(prefix="fraudkit-frame-") as tmp:
        path = f"{tmp}/frame.parquet"
        frame.to_parquet(path, index=False)
        df = spark.read.parquet(path)
        if schema is not None:
            df = df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])
        return df.localCheckpoint(eager=True)


def component_units(components, n_edges, *, alone_edges=ALONE_EDGES, n_buckets=N_BUCKETS) -> pd.DataFrame:
    """The unit each component is solved in: ``alone`` or in its ``bucket``.

    A component with ``alone_edges`` edge rows or more is a unit of its own; the others share the unit of
    their bucket, :func:`component_bucket`. The Spark path computes the same in SQL.

    Parameters
    ----------
    components : array-like of int
        Component names (their smallest rank).
    n_edges : array-like of int
        Edge rows of each component.

    Returns
    -------
    pandas.DataFrame
        ``component``, ``bucket`` (int64), ``alone`` (bool).

    Examples
    --------
    >>> component_units([1, 7], [2, 1], alone_edges=2, n_buckets=4)["alone"].tolist()
    [True, False]
    """
    components = np.asarray(components, dtype=np.int64)
    bucket = np.mod(components, int(n_buckets))  # component_bucket, vectorised
    return pd.DataFrame({"component": components, "bucket": bucket,
                         "alone": np.asarray(n_edges) >= int(alone_edges)})


def component_bucket(component, n_buckets: int = N_BUCKETS) -> int:
    """The bucket of a component: its name (smallest rank, an integer) modulo ``n_buckets`` (Spark's ``pmod``).

    A rank, not an id's text: renaming the ids moves no component to another bucket.

    Examples
    --------
    >>> component_bucket(17, 16), component_bucket(np.int64(33), 16)
    (1, 1)
    """
    return int(component) % int(n_buckets)


def component_seed(seed: int, component) -> int:
    """The seed of one unit: a hash of the run's seed and the component's name (its smallest rank, an integer), or
    ``("bucket", b)`` for a bucket — never an id's text.

    Independent of how the units are split into tasks and of their order, so a partition is reproducible
    run to run and engine to engine.

    Examples
    --------
    >>> component_seed(0, 17) == component_seed(0, 17), component_seed(0, 17) == component_seed(1, 17)
    (True, False)
    """
    value = component.item() if isinstance(component, np.generic) else component
    digest = hashlib.sha256(f"{int(seed)}\0{value!r}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def solve_unit(edges: pd.DataFrame, *, unit=None, method="leiden", resolution=1.0, total_weight=None, seed=0,
               n_iterations=2) -> pd.DataFrame:
    """Communities of one unit (a component alone, or a bucket of them), built canonically.

    Parameters
    ----------
    edges : pandas.DataFrame
        ``src``, ``dst``, ``weight`` and ``component`` of every edge of the unit; the ends are integer ranks
        (their order is the vertex order; any keys in the same order build the same graph).
    unit : int or tuple
        What seeds the unit: the component's name (smallest rank) when it is alone, ``("bucket", b)`` for a bucket
        (:func:`component_seed` ``(seed, unit)``).
    method, resolution, seed, n_iterations
        As in :func:`communities_by_component`; ``resolution`` is the global ``gamma``.
    total_weight : float or None, default=None
        ``m``, the whole graph's edge weight (``None``: this unit's, as for a graph of one unit). The unit's
        Leiden runs at ``gamma * m_unit / m`` (the module docstring derives why).

    Returns
    -------
    pandas.DataFrame
        ``node``, ``component``, ``community`` (the smallest rank of each).
    """
    if edges.empty:
        return pd.DataFrame(columns=_OUT)
    n_rows = len(edges)
    code, nodes = pd.factorize(np.concatenate([edges["src"].to_numpy(), edges["dst"].to_numpy()]), sort=True)
    nodes = np.asarray(nodes)
    node_comp = np.empty(len(nodes), dtype=edges["component"].dtype)
    node_comp[code] = np.concatenate([edges["component"].to_numpy()] * 2)
    a, b = code[:n_rows], code[n_rows:]  # codes follow the sorted node ids
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    del code, a, b  # edge-sized arrays are dropped as soon as they are read: the unit may be the whole graph
    w = edges["weight"].to_numpy(dtype=float)
    m = math.fsum(w) if total_weight is None else float(total_weight)
    del edges  # a caller that kept no reference to the frame (as _local_coded) holds none of it from here on
    # edges sorted by pair; duplicate pairs summed in one order (by weight) whatever the rows' order
    pair = lo * len(nodes) + hi
    order = np.argsort(pair, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(pair[order])) + 1]
    if len(starts) < len(order):
        order = np.lexsort((w, pair))
    del pair
    lo, hi, w = lo[order][starts], hi[order][starts], np.add.reduceat(w[order], starts)
    del order, starts
    comp_code, _ = pd.factorize(node_comp, sort=False)
    size = np.bincount(comp_code)[comp_code]
    looped = np.isin(comp_code, comp_code[lo[lo == hi]])
    community = np.arange(len(nodes))  # a component of one node (self-loops only) is one community
    # a component of two nodes and one edge: one community when merging gains modularity (gamma * w < 2 m)
    two = (size == 2) & ~looped
    if two.any():
        at = two[lo]
        merge = resolution * w[at] < 2 * m
        community[hi[at][merge]] = lo[at][merge]
    rest = (size >= 2) & ~two
    if rest.any():
        keep = rest[lo]
        sub = np.flatnonzero(rest)
        at = np.full(len(nodes), -1, dtype=np.int64)
        at[sub] = np.arange(len(sub))
        graph = [at[lo[keep]], at[hi[keep]], w[keep]]  # handed to the solver (see _membership)
        del lo, hi, keep, at, w
        membership = _membership(len(sub), graph, method=method, resolution=resolution * graph[2].sum() / m,
                                 seed=component_seed(seed, unit), n_iterations=n_iterations)
        del graph
        first = np.full(membership.max() + 1, len(sub))
        np.minimum.at(first, membership, np.arange(len(sub)))  # the smallest node of each community
        community[sub] = sub[first[membership]]
    return pd.DataFrame({"node": nodes, "component": node_comp, "community": nodes[community]})


def partition_modularity(edges: pd.DataFrame, nodes, membership, *, resolution=1.0, weight="weight") -> float:
    """Global modularity of a partition at ``resolution``: ``sum_C w_in(C) / m - gamma * (K_C / (2 m))^2``.

    ``w_in(C)`` is the weight of the edges inside ``C`` (a self-loop once), ``K_C`` the sum of its strengths
    (a self-loop twice), ``m`` the total weight: igraph's ``Graph.modularity`` without building the graph.

    Examples
    --------
    >>> e = pd.DataFrame({"src": [1, 1, 2, 4, 4, 5, 3], "dst": [2, 3, 3, 5, 6, 6, 4], "weight": 1.0})
    >>> round(partition_modularity(e, [1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 1]), 6)
    0.357143
    """
    if not len(edges):
        return float("nan")
    index = pd.Index(nodes)
    a, b = index.get_indexer(edges["src"]), index.get_indexer(edges["dst"])
    if (a < 0).any() or (b < 0).any():
        raise FraudkitError("partition_modularity: an edge end is not among the partition's nodes")
    w = np.ones(len(edges)) if weight is None else edges[weight].to_numpy(float)
    return modularity(a, b, w, np.asarray(membership), resolution)


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


# --- private helpers ----------------------------------------------------------------------------


def _with_units(e, *, alone_edges, n_buckets):
    """``e`` (a Spark frame with ``component``) with each row's unit, ``bucket`` and ``alone``, checkpointed."""
    from pyspark.sql import functions as F

    units = e.groupBy("component").count().select(
        "component",
        F.pmod(F.col("component").cast("long"), F.lit(int(n_buckets))).alias("bucket"),
        F.when(F.col("count") >= int(alone_edges), F.col("component")).alias("alone"))
    return e.join(units, "component").localCheckpoint()


def _apply_by_unit(e, run, schema, giant, *, driver_memory, on_driver=None, bytes_per_row=_BYTES_PER_EDGE):
    """``run`` on each unit's rows of ``e``: ``applyInPandas`` tasks, the ``giant`` units ((bucket, alone, rows))
    on the driver after a memory check (``bytes_per_row``) that refuses with the figures and the fix:
    ``on_driver(rows)`` of the unit's Spark rows, by default ``run`` of them gathered."""
    from pyspark.sql import functions as F

    def where(bucket, alone):  # null-safe: ~where(...) must keep, not drop, the bucket's rows whose alone is null
        return (F.col("bucket") == F.lit(bucket)) & F.col("alone").eqNullSafe(F.lit(alone))

    small = e
    for bucket, alone, _ in giant:
        small = small.where(~where(bucket, alone))
    out = small.groupBy("bucket", "alone").applyInPandas(run, schema=schema)
    for bucket, alone, n in giant:
        need, have = n * int(bytes_per_row), _available(driver_memory)
        name = f"component {alone!r}" if alone is not None else f"bucket {bucket}"
        if need > have:
            raise FraudkitError(
                f"{name} has {n:,} edges: solving it on the driver needs about {need >> 20:,} MiB and "
                f"{have >> 20:,} MiB are available. Give the driver more memory (spark.driver.memory), prune hot "
                f"entities from the graph so it splits, or raise max_component_edges on executors with room")
        rows = e.where(where(bucket, alone))
        local = run(rows.toPandas()) if on_driver is None else on_driver(rows)
        out = out.unionByName(spark_frame(e.sparkSession, local, schema=schema))
    return out


def _propagate_unit(pdf, seed_y, *, alpha, tol, max_iter):
    """One unit's propagation on an executor: its upper-triangle rows (``src``, ``dst``, ``weight``, ``component``)
    made symmetric again, then :func:`propagate_components` on them as one machine runs it on ``W``."""
    import scipy.sparse as sp

    src, dst = pdf["src"].to_numpy(np.int64), pdf["dst"].to_numpy(np.int64)
    comp, w = pdf["component"].to_numpy(np.int64), pdf["weight"].to_numpy(float)
    node, first = np.unique(np.r_[src, dst], return_index=True)
    at = pd.Index(node)
    off = src != dst  # the lower triangle again (W is symmetric: the same weights)
    r, c = at.get_indexer(np.r_[src, dst[off]]), at.get_indexer(np.r_[dst, src[off]])
    M = sp.csr_matrix((np.r_[w, w[off]], (r, c)), shape=(len(node), len(node)))
    M.sum_duplicates()
    M.sort_indices()
    y = seed_y.reindex(node, fill_value=0.0).to_numpy(float)
    out = propagate_components(M, y, np.arange(len(node)), np.r_[comp, comp][first], alpha=alpha, tol=tol,
                               max_iter=max_iter)
    return out.assign(node=node[out["node"].to_numpy()])


def _edge_frame(edges, src, dst, weight, caller):
    """``src``, ``dst``, ``weight`` (float; 1 without a weight column) of the rows with both ends."""
    missing = [c for c in (src, dst) + ((weight,) if weight else ()) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"{caller}: the edges have no column(s) {', '.join(missing)}; "
                                f"columns: {', '.join(map(str, edges.columns))}")
    # the caller's arrays, not copies (read only here): the shared view of large is 17.9M edges
    e = pd.DataFrame({"src": edges[src].to_numpy(), "dst": edges[dst].to_numpy(),
                      "weight": edges[weight].to_numpy(dtype=float) if weight else np.ones(len(edges))}, copy=False)
    w = e["weight"].to_numpy()
    if np.isnan(w).any() or (w < 0).any():
        raise ValueError(f"{caller}: weights must be finite and non-negative")
    ends = e["src"].notna().to_numpy() & e["dst"].notna().to_numpy()
    return e if ends.all() else e[ends].reset_index(drop=True)


def _local_coded(a, b, w, nodes, *, method, resolution, seed, n_iterations, alone_edges, n_buckets):
    """:func:`local_component_communities` on the edges ``(a[i], b[i])`` weighted ``w``, ``a`` and ``b`` codes of
    the sorted node ids ``nodes``: ``node``, ``component``, ``community`` as codes, sorted by ``node``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components as cc

    _, labels = cc(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes))), directed=False)
    first = np.full(labels.max() + 1, len(nodes))
    np.minimum.at(first, labels, np.arange(len(nodes)))  # nodes are sorted: the first is the smallest
    comp = first[labels]  # the code of each node's component (its smallest node)
    roots = np.flatnonzero(comp == np.arange(len(nodes)))  # one code per component
    units = component_units(nodes[roots], np.bincount(comp[a], minlength=len(nodes))[roots],
                            alone_edges=alone_edges, n_buckets=n_buckets)
    # an integer per unit: the component's code when alone, else the number of nodes plus the bucket
    unit_of = np.zeros(len(nodes), dtype=np.int64)
    unit_of[roots] = np.where(units["alone"], roots, len(nodes) + units["bucket"].to_numpy())
    # the units are solved on the sorted codes of the node ids: the same order, so the same graphs and results
    key = unit_of[comp[a]]
    order = np.argsort(key, kind="stable")
    if len(order) < 2 ** 31:  # held while the units are solved: 32-bit positions, half the memory
        order = order.astype(np.int32)
    key = key[order]
    cuts = np.r_[0, np.flatnonzero(np.diff(key)) + 1, len(key)]
    bounds = list(zip(key[cuts[:-1]], cuts[:-1], cuts[1:]))
    del key, cuts
    total = math.fsum(math.fsum(w[order[i:j]]) for _, i, j in bounds)
    out = []
    for k, i, j in bounds:  # one unit's edges at a time (the giant unit of large: 17.9M edges)
        rows = order[i:j]
        src = a[rows]
        unit = pd.DataFrame({"src": src, "dst": b[rows], "weight": w[rows], "component": comp[src]}, copy=False)
        del rows, src
        # the frame is solve_unit's argument alone (CPython hands the popped value over to the callee), so that
        # while networkit solves the giant unit its edge-sized columns are not held here
        units = [unit]
        del unit
        out.append(solve_unit(units.pop(), unit=nodes[k] if k < len(nodes) else ("bucket", int(k - len(nodes))),
                              method=method, resolution=resolution, total_weight=total, seed=seed,
                              n_iterations=n_iterations))
    return pd.concat(out, ignore_index=True).sort_values("node", kind="stable", ignore_index=True)


def _check_integer_keys(src_type, dst_type, caller, integral=lambda t: np.issubdtype(t, np.integer)):
    """Refuse node keys that are not integers: their order is the nodes' rank (see the module docstring)."""
    bad = [str(t) for t in (src_type, dst_type) if not integral(t)]
    if bad:
        raise FraudkitError(f"{caller}: node keys must be integers (their order is the rank that names components, "
                            f"buckets and seeds), got {', '.join(bad)}; pass any ids to communities_by_component, "
                            "which ranks them by first appearance")


def _membership(n, graph, *, method, resolution, seed, n_iterations):
    """Community of each of ``n`` vertices of the graph ``[s, d, w]`` of distinct edges ``(s, d)`` weighted ``w``,
    by ``method`` (``leiden`` on :data:`~fraudkit.identification.graph.leiden.NETWORKIT_EDGES` edges or more:
    networkit's, the arrays handed over to it while it solves: :func:`~fraudkit.identification.graph.leiden.
    networkit_membership`)."""
    if method == "leiden" and use_networkit(len(graph[0]), graph[0], graph[1], threshold=leiden.NETWORKIT_EDGES):
        return networkit_membership(n, graph, resolution=resolution, seed=seed, n_iterations=n_iterations,
                                    fallback=lambda: _igraph_membership(n, *graph, method=method,
                                                                        resolution=resolution, seed=seed,
                                                                        n_iterations=n_iterations))
    return _igraph_membership(n, *graph, method=method, resolution=resolution, seed=seed, n_iterations=n_iterations)


def _igraph_membership(n, s, d, w, *, method, resolution, seed, n_iterations):
    """:func:`_membership` by igraph (``leiden``, ``louvain``) or leidenalg."""
    import igraph as ig

    # pairs of Python ints a chunk at a time: igraph converts them faster than numpy rows, in little memory
    chunk = 1 << 18
    pairs = itertools.chain.from_iterable(zip(s[i:i + chunk].tolist(), d[i:i + chunk].tolist())
                                          for i in range(0, len(s), chunk))
    g = ig.Graph(n=int(n), edges=pairs, directed=False)
    if method == "leidenalg":
        import leidenalg

        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights=w.tolist(),
                                        resolution_parameter=float(resolution), seed=int(seed),
                                        n_iterations=n_iterations)
        return np.asarray(part.membership)
    with igraph_seeded(seed):
        if method == "leiden":
            cl = g.community_leiden(objective_function="modularity", weights=w, resolution=float(resolution),
                                    n_iterations=n_iterations)
        else:
            cl = g.community_multilevel(weights=w, resolution=float(resolution))
    return np.asarray(cl.membership)


def _unit_key(bucket, alone, component):
    """The seed key of a unit: its component when it is alone (``alone`` not null), else ``("bucket", b)``."""
    return ("bucket", int(bucket)) if alone is None or pd.isna(alone) else component


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
