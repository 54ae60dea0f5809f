"""Weak-label propagation, personalised PageRank, sub-graph sampling, strong entities, the seed pool.

Seed 000/003 stage 3 ("graph label propagation from seed users") and seeds
001/004 section 2.1 (multi-hop sub-graph sampling, strong-entity mining,
weak-label propagation, a risk seed pool updated every run).

The core (:func:`label_propagation`, :func:`personalized_pagerank`) works on any
``scipy.sparse`` adjacency matrix and integer seed indices, so real-data
benchmarks can call it directly; the platform layer (:func:`sample_subgraph`,
:func:`strong_entities`, :class:`SeedPool`) reads a :class:`fraudkit.capability.graphs.HeteroGraph`.
Seeds come from earlier runs or high-precision rules, never from the labels table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudkit.capability.graphs import HeteroGraph, parallel_matvec, row_parts
from fraudkit.data.atomic import write_parquet
from fraudkit.errors import ConvergenceWarning, MissingInputError
from fraudkit.identification.base import BaseScorer

__all__ = [
    "label_propagation",
    "personalized_pagerank",
    "LabelPropagation",
    "PersonalizedPageRank",
    "propagate_by_block",
    "propagate_by_component",
    "propagate_components",
    "sample_subgraph",
    "strong_entities",
    "SeedPool",
    "SEED_POOL_COLUMNS",
]


def label_propagation(adj, seeds, *, alpha=0.85, max_iter=100, tol=1e-6, negative_seeds=None) -> np.ndarray:
    """Weak-label propagation (Zhou et al., 2004) from seed nodes (one call of :class:`LabelPropagation`).

    Iterates ``F <- alpha * S @ F + (1 - alpha) * Y`` with the degree-normalised adjacency
    ``S = D^-1/2 W D^-1/2`` (``W`` symmetrised), ``Y = 1`` on ``seeds`` and ``-1`` on
    ``negative_seeds``, until the largest change is below ``tol``. Normalising by degree keeps hubs
    (a campus IP, a viral note) from passing full risk to everyone they touch.

    Parameters
    ----------
    adj : scipy.sparse matrix of shape (n, n)
        Non-negative weights.
    seeds : array-like of int
        Indices of known-risky nodes.
    alpha : float, default=0.85
        Share of the score that comes from neighbours (0 < alpha < 1).
    max_iter : int, default=100
    tol : float, default=1e-6
    negative_seeds : array-like of int, optional
        Indices of known-clean nodes; they push scores down.

    Returns
    -------
    ndarray of shape (n,)
        Propagated score; 0 for nodes not connected to any seed, in ``[-1, 1]``.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached before convergence.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> adj = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 3], [1, 2, 4])), shape=(5, 5))
    >>> f = label_propagation(adj, [0])
    >>> bool(f[1] > f[2] > 0), float(f[3])
    (True, 0.0)
    """
    return LabelPropagation(alpha=alpha, max_iter=max_iter, tol=tol).fit(
        adj, seeds, negative_seeds=negative_seeds).decision_scores_


def personalized_pagerank(adj, seeds, *, alpha=0.85, max_iter=200, tol=1e-8, seed_weights=None) -> np.ndarray:
    """Personalised PageRank: stationary distribution of a walk that restarts at ``seeds``.

    One call of :class:`PersonalizedPageRank`.

    ``p <- alpha * P^T p + (1 - alpha) * v`` with ``P = D^-1 W`` row-stochastic and ``v`` the restart
    distribution over seeds; dangling nodes restart. The result sums to 1.

    Parameters
    ----------
    adj : scipy.sparse matrix of shape (n, n)
    seeds : array-like of int
    alpha : float, default=0.85
        Probability of following an edge rather than restarting.
    max_iter : int, default=200
    tol : float, default=1e-8
        On the L1 change.
    seed_weights : array-like of float, optional
        Restart weight of each seed (e.g. seed-pool scores).

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> adj = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 2])), shape=(4, 4))
    >>> p = personalized_pagerank(adj, [0])
    >>> round(float(p.sum()), 6), bool(p[1] > p[2] > p[3])
    (1.0, True)
    """
    return PersonalizedPageRank(alpha=alpha, max_iter=max_iter, tol=tol).fit(
        adj, seeds, seed_weights=seed_weights).decision_scores_


class LabelPropagation(BaseScorer):
    """Weak-label propagation (Zhou et al., 2004) from seed nodes over a weighted graph.

    Iterates ``F <- alpha * S @ F + (1 - alpha) * Y`` with the degree-normalised adjacency
    ``S = D^-1/2 W D^-1/2`` (``W`` symmetrised), ``Y = 1`` on the seeds and ``-1`` on the negative
    seeds, until the largest change is below ``tol``. Normalising by degree keeps hubs (a campus IP, a
    viral note) from passing full risk to everyone they touch. :func:`label_propagation` is its
    one-call wrapper.

    No score crosses a connected component, so with ``by_component=True`` each component iterates until its
    own largest change is below ``tol`` (:func:`propagate_by_component`), and components without a seed are not
    iterated (their score is 0, as the global iteration gives).
    :func:`fraudkit.identification.graph.spark_components.propagation_by_component` computes the same on Spark, one
    task per component or bucket of them, with the same scores bit for bit (``fit(..., propagator=)``). The global
    stop (``by_component=False``) runs every component until the slowest converges: the two differ by less than
    what ``tol`` leaves of the fixed point.

    Parameters
    ----------
    alpha : float, default=0.85
        Share of the score that comes from neighbours (0 < alpha < 1).
    max_iter : int, default=100
    tol : float, default=1e-6
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=0.25
        Nodes whose propagated score is above it are flagged (the graph stage's ``lp_threshold``).
    by_component : bool, default=False
        Converge component by component (see above).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per node: the
        propagated score in ``[-1, 1]`` (0 where no seed reaches); ``reasons_`` says ``"seed"`` or how
        far propagation carried the risk.
    n_iter_ : int
        Iterations run (by component: those of the slowest component).

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached before convergence.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> adj = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 3], [1, 2, 4])), shape=(5, 5))
    >>> est = LabelPropagation().fit(adj, [0])
    >>> est.labels_.tolist(), est.reasons_[:2].tolist()
    ([1, 1, 0, 0, 0], ['seed', 'propagated score 0.32 from 1 seed(s)'])
    """

    stage = "graph"

    def __init__(self, *, alpha=0.85, max_iter=100, tol=1e-6, contamination=None, threshold=0.25,
                 by_component=False):
        super().__init__(contamination=contamination, threshold=threshold)
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.by_component = by_component

    def fit(self, adj, seeds, *, negative_seeds=None, nodes=None, propagator=None):
        """Propagate from ``seeds`` over ``adj``.

        Parameters
        ----------
        adj : scipy.sparse matrix of shape (n, n)
            Non-negative weights.
        seeds : array-like of int
            Indices of known-risky nodes.
        negative_seeds : array-like of int, optional
            Indices of known-clean nodes; they push scores down.
        nodes : array-like of shape (n,), optional
            Keys of the nodes (``entity_ids_``); default ``0..n-1``.
        propagator : callable or None, default=None
            With ``by_component=True``: what propagates the seeded components, called as
            ``propagator(W, y, alpha=, tol=, max_iter=)`` and returning :func:`propagate_by_component`'s rows (the
            graph stage passes ``spark_components.propagation_by_component`` with its Spark session); default
            :func:`propagate_by_component`.

        Returns
        -------
        self
        """
        alpha, max_iter, tol = self.alpha, self.max_iter, self.tol
        _check_alpha(alpha)
        if propagator is not None and not self.by_component:
            raise ValueError("LabelPropagation.fit(propagator=...) needs by_component=True: the global iteration "
                             "runs on one machine")
        if self.by_component:
            W, n = _checked(adj)
        else:
            S, n = _normalised(adj, "sym")
        y = np.zeros(n)
        pos = _indices(seeds, n)
        y[pos] = 1.0
        if negative_seeds is not None:
            y[_indices(negative_seeds, n)] = -1.0
        if self.by_component:
            rows = (propagator or propagate_by_component)(_symmetrised(W), y, alpha=alpha, tol=tol,
                                                          max_iter=max_iter)
            f, it, delta = _assembled(n, rows, tol)
        else:
            f, it, delta = propagate_by_block(S, y, None, alpha=alpha, tol=tol, max_iter=max_iter, normalised=True)
        if not delta < tol:
            warnings.warn(f"label_propagation stopped at max_iter={max_iter} (last change {delta:.2e} > "
                          f"tol={tol}); raise max_iter or lower alpha", ConvergenceWarning, stacklevel=2)
        self.n_iter_ = it
        self._set_scores(_node_keys(nodes, n), f)
        self.reasons_ = _propagation_reasons(f, y > 0, self.labels_ == 1,
                                             "propagated score {:.2f} from " + f"{len(np.unique(pos))} seed(s)")
        return self


class PersonalizedPageRank(BaseScorer):
    """Personalised PageRank: stationary distribution of a walk that restarts at the seeds.

    ``p <- alpha * P^T p + (1 - alpha) * v`` with ``P = D^-1 W`` row-stochastic (``W`` symmetrised)
    and ``v`` the restart distribution over seeds; dangling nodes restart. The result sums to 1.
    :func:`personalized_pagerank` is its one-call wrapper.

    Parameters
    ----------
    alpha : float, default=0.85
        Probability of following an edge rather than restarting.
    max_iter : int, default=200
    tol : float, default=1e-8
        On the L1 change.
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float or None, default=None
        None: ``1 / n``, the mass every node would get from a uniform walk; nodes the seeds' walk
        visits more often than that are flagged.

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per node
        (the stationary probability); ``reasons_`` says ``"seed"`` or how many times the uniform mass
        the walk gives the node.
    n_iter_ : int
        Iterations run.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached before convergence.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> adj = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 2])), shape=(4, 4))
    >>> est = PersonalizedPageRank().fit(adj, [0])
    >>> est.threshold_, est.labels_.tolist(), est.reasons_[1]
    (0.25, [1, 1, 0, 0], "1.8x the uniform walk's visits from the seeds")
    """

    stage = "graph"

    def __init__(self, *, alpha=0.85, max_iter=200, tol=1e-8, contamination=None, threshold=None):
        super().__init__(contamination=contamination, threshold=threshold)
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, adj, seeds, *, seed_weights=None, nodes=None):
        """Run the walk restarting at ``seeds`` over ``adj``.

        Parameters
        ----------
        adj : scipy.sparse matrix of shape (n, n)
            Non-negative weights.
        seeds : array-like of int
            Indices of the restart nodes.
        seed_weights : array-like of float, optional
            Restart weight of each seed (e.g. seed-pool scores).
        nodes : array-like of shape (n,), optional
            Keys of the nodes (``entity_ids_``); default ``0..n-1``.

        Returns
        -------
        self
        """
        alpha, max_iter, tol = self.alpha, self.max_iter, self.tol
        P, n = _normalised(adj, "row")
        _check_alpha(alpha)
        idx = _indices(seeds, n)
        v = np.zeros(n)
        w = np.ones(len(idx)) if seed_weights is None else np.asarray(seed_weights, dtype=float)
        np.add.at(v, idx, w)
        if v.sum() <= 0:
            raise ValueError("personalized_pagerank needs at least one seed with positive weight")
        v /= v.sum()
        dangling = np.asarray(P.sum(axis=1)).ravel() == 0
        PT = P.T.tocsr()
        p = v.copy()
        delta, it = np.inf, 0
        for it in range(int(max_iter)):
            nxt = alpha * (PT @ p + p[dangling].sum() * v) + (1 - alpha) * v
            delta = np.abs(nxt - p).sum()
            p = nxt
            if delta < tol:
                break
        else:
            warnings.warn(f"personalized_pagerank stopped at max_iter={max_iter} (last L1 change {delta:.2e})",
                          ConvergenceWarning, stacklevel=2)
        self.n_iter_ = it + 1 if max_iter else 0
        self._n_nodes = n
        self._set_scores(_node_keys(nodes, n), p)
        self.reasons_ = _propagation_reasons(p * n, v > 0, self.labels_ == 1,
                                             "{:.1f}x the uniform walk's visits from the seeds")
        return self

    def _default_threshold(self) -> float:
        return 1.0 / max(self._n_nodes, 1)


def sample_subgraph(graph, seeds, *, hops=2, max_nodes=10_000, max_degree=500):
    """Multi-hop sub-graph around seed nodes of a :class:`~fraudkit.capability.graphs.HeteroGraph`.

    Breadth-first, ``hops`` steps; hubs with more than ``max_degree`` neighbours are included but not
    expanded (a campus IP must not pull in the campus). When a hop would exceed ``max_nodes`` the
    candidates most strongly tied to the current sample (summed edge weight) are kept.

    Parameters
    ----------
    graph : HeteroGraph
    seeds : array-like of int
        Node indices (use ``graph.node_index("account", keys)``).
    hops : int, default=2
    max_nodes : int, default=10000
    max_degree : int, default=500

    Returns
    -------
    HeteroGraph
        Nodes re-indexed ``0..m-1`` with extra columns ``orig_node`` and ``hop``; edges among them.

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.capability.graphs import build_hetero_graph
    >>> logins = pd.DataFrame({"account_id": ["a", "b", "c"], "device_id": ["d1", "d1", "d2"],
    ...                        "ip": ["1.1.1.1", "2.2.2.2", "3.3.3.3"], "ts": pd.Timestamp("2024-01-01")})
    >>> g = build_hetero_graph({"logins": logins})
    >>> sub = sample_subgraph(g, g.node_index("account", ["a"]), hops=2)
    >>> sorted(sub.nodes.loc[sub.nodes["type"] == "account", "key"])
    ['a', 'b']
    """

    adj = graph.to_sparse(weight="weight")
    n = adj.shape[0]
    deg = np.diff(adj.indptr)
    hop = np.full(n, -1, dtype=np.int64)
    start = _indices(seeds, n)
    hop[start] = 0
    frontier = np.zeros(n, dtype=bool)
    frontier[start] = True
    for h in range(1, int(hops) + 1):
        expand = frontier & (deg <= max_degree)
        expand[start] = frontier[start]  # seeds always expand
        reach = adj.T @ expand.astype(float)
        cand = np.flatnonzero((reach > 0) & (hop < 0))
        room = max_nodes - int((hop >= 0).sum())
        if room <= 0 or not len(cand):
            break
        if len(cand) > room:
            cand = cand[np.argsort(-reach[cand], kind="stable")[:room]]
        hop[cand] = h
        frontier = np.zeros(n, dtype=bool)
        frontier[cand] = True
    keep = np.flatnonzero(hop >= 0)
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    nodes = graph.nodes.iloc[keep].copy()
    nodes["orig_node"] = nodes["node"].to_numpy()
    nodes["node"] = np.arange(len(keep))
    nodes["hop"] = hop[keep]
    e = graph.edges
    inside = (remap[e["src"].to_numpy()] >= 0) & (remap[e["dst"].to_numpy()] >= 0)
    edges = e[inside].copy()
    edges["src"] = remap[edges["src"].to_numpy()]
    edges["dst"] = remap[edges["dst"].to_numpy()]
    return HeteroGraph(nodes=nodes.reset_index(drop=True), edges=edges.reset_index(drop=True),
                       params={**graph.params, "sampled_hops": hops, "max_nodes": max_nodes, "n_seeds": len(start)})


def strong_entities(graph, risky_accounts, *, min_accounts=3, entity_types=("device", "address", "ip", "phone")):
    """Entities (devices, addresses, IPs, phones) shared by many risky accounts.

    Parameters
    ----------
    graph : HeteroGraph
    risky_accounts : array-like
        Account keys (seed pool, flagged accounts).
    min_accounts : int, default=3
        Keep entities used by at least this many risky accounts.
    entity_types : tuple of str

    Returns
    -------
    pandas.DataFrame
        ``entity_type``, ``entity_id``, ``node``, ``n_accounts``, ``n_risky``, ``risky_share``, sorted by
        ``n_risky`` then ``risky_share``, descending.

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.capability.graphs import build_hetero_graph
    >>> logins = pd.DataFrame({"account_id": list("abcd"), "device_id": ["d1"] * 3 + ["d2"],
    ...                        "ip": "1.1.1.1", "ts": pd.Timestamp("2024-01-01")})
    >>> s = strong_entities(build_hetero_graph({"logins": logins}), ["a", "b", "c"], entity_types=("device",))
    >>> s[["entity_id", "n_accounts", "n_risky"]].values.tolist()
    [['d1', 3, 3]]
    """
    nodes = graph.nodes
    acct = nodes["type"].to_numpy() == "account"
    risky_nodes = graph.node_index("account", risky_accounts)
    risky = np.zeros(len(nodes), dtype=bool)
    risky[risky_nodes[risky_nodes >= 0]] = True
    e = graph.edges
    src, dst = e["src"].to_numpy(), e["dst"].to_numpy()
    ntype = nodes["type"].astype(str).to_numpy()
    ok = acct[src] & np.isin(ntype[dst], list(entity_types))
    pairs = pd.DataFrame({"node": dst[ok], "acc": src[ok]}).drop_duplicates()
    pairs["risky"] = risky[pairs["acc"].to_numpy()]
    agg = pairs.groupby("node").agg(n_accounts=("acc", "size"), n_risky=("risky", "sum"))
    agg = agg[agg["n_risky"] >= min_accounts].reset_index()
    agg["risky_share"] = agg["n_risky"] / agg["n_accounts"]
    agg["entity_type"] = ntype[agg["node"].to_numpy()]
    agg["entity_id"] = nodes["key"].to_numpy()[agg["node"].to_numpy()]
    agg = agg.sort_values(["n_risky", "risky_share", "node"], ascending=[False, False, True])
    return agg[["entity_type", "entity_id", "node", "n_accounts", "n_risky", "risky_share"]].reset_index(drop=True)


SEED_POOL_COLUMNS = ("entity_type", "entity_id", "source", "score", "first_seen", "last_seen", "n_runs",
                     "first_run", "last_run")
"""Columns of a persisted seed pool."""


@dataclass(frozen=True)
class SeedPool:
    """The risk seed pool: accounts and entities known to be risky, carried from run to run.

    Each run adds what it found (:meth:`update`) and saves the pool (:meth:`save`, atomic). Entity ids are
    stored as text. The pool is fed by high-precision flags and earlier runs' findings, never by the
    labels table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns :data:`SEED_POOL_COLUMNS`, one row per ``(entity_type, entity_id)``.

    Examples
    --------
    >>> import pandas as pd
    >>> pool = SeedPool.empty().update(pd.DataFrame({"entity_type": "account", "entity_id": ["a", "b"],
    ...                                              "source": "rules", "score": [0.9, 0.8]}), run_id="r1")
    >>> pool.update(pd.DataFrame({"entity_type": ["account"], "entity_id": ["a"], "source": ["graph"],
    ...                           "score": [0.95]}), run_id="r2").table[["entity_id", "n_runs", "score"]].values.tolist()
    [['a', 2, 0.95], ['b', 1, 0.8]]
    """

    table: pd.DataFrame = field(default_factory=lambda: SeedPool._empty_table())

    @staticmethod
    def _empty_table():
        return pd.DataFrame({"entity_type": pd.Series(dtype=object), "entity_id": pd.Series(dtype=object),
                             "source": pd.Series(dtype=object), "score": pd.Series(dtype=float),
                             "first_seen": pd.Series(dtype="datetime64[ns]"),
                             "last_seen": pd.Series(dtype="datetime64[ns]"), "n_runs": pd.Series(dtype=np.int64),
                             "first_run": pd.Series(dtype=object), "last_run": pd.Series(dtype=object)})

    @classmethod
    def empty(cls) -> "SeedPool":
        """A pool with no seeds."""
        return cls(cls._empty_table())

    @classmethod
    def load(cls, path) -> "SeedPool":
        """Read a pool saved with :meth:`save`; a missing file gives an empty pool."""
        from pathlib import Path

        path = Path(path)
        if not path.exists():
            return cls.empty()
        t = pd.read_parquet(path)
        missing = [c for c in SEED_POOL_COLUMNS if c not in t.columns]
        if missing:

            raise MissingInputError(f"{path}: not a seed pool, missing column(s) {missing}")
        return cls(t[list(SEED_POOL_COLUMNS)])

    def save(self, path):
        """Write the pool to Parquet atomically."""

        return write_parquet(self.table, path)

    def update(self, new_seeds: pd.DataFrame, run_id: str, *, seen_at=None) -> "SeedPool":
        """A new pool with ``new_seeds`` merged in (the pool itself is not changed).

        ``new_seeds`` has ``entity_type``, ``entity_id``, ``source``, ``score``. A seed already in the pool
        keeps its ``first_seen``/``first_run``, gets the max score, the latest source, ``n_runs + 1``.
        """
        need = ["entity_type", "entity_id", "source", "score"]
        missing = [c for c in need if c not in new_seeds.columns]
        if missing:

            raise MissingInputError(f"SeedPool.update: new seeds lack column(s) {missing}; need {need}")
        now = pd.Timestamp.now().floor("s") if seen_at is None else pd.Timestamp(seen_at)
        new = new_seeds[need].copy()
        new["entity_id"] = new["entity_id"].astype(str)
        new = new.sort_values("score", ascending=False).drop_duplicates(["entity_type", "entity_id"])
        new = new.assign(first_seen=now, last_seen=now, n_runs=1, first_run=str(run_id), last_run=str(run_id))
        old = self.table
        both = new[list(SEED_POOL_COLUMNS)] if not len(old) else pd.concat([old, new[list(SEED_POOL_COLUMNS)]],
                                                                            ignore_index=True)
        g = both.groupby(["entity_type", "entity_id"], sort=True)
        merged = g.agg(source=("source", "last"), score=("score", "max"), first_seen=("first_seen", "min"),
                       last_seen=("last_seen", "max"), n_runs=("n_runs", "sum"), first_run=("first_run", "first"),
                       last_run=("last_run", "last")).reset_index()
        merged["n_runs"] = merged["n_runs"].astype(np.int64)
        return SeedPool(merged[list(SEED_POOL_COLUMNS)])

    def keys(self, entity_type: str = "account") -> np.ndarray:
        """Entity ids (as text) of one type."""
        t = self.table
        return t.loc[t["entity_type"] == entity_type, "entity_id"].to_numpy()

    def __len__(self) -> int:
        return len(self.table)


def propagate_by_block(W, y, block, *, alpha=0.85, tol=1e-6, max_iter=100, normalised=False):
    """Iterate ``F <- alpha * S @ F + (1 - alpha) * Y``, each block of nodes until its own change is below ``tol``.

    The loop of :class:`LabelPropagation`. A *block* is a set of nodes no edge leaves (a connected component, or
    several); its rows are contiguous and its nodes keep their relative order, so each row's sum runs over the
    same entries in the same order as in the block's graph alone: a block's scores are the same bit for bit
    whatever other blocks share the matrix, which is what lets Spark tasks and one machine agree.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix of shape (n, n)
        Symmetric, non-negative, canonical (sorted indices); or ``S`` itself when ``normalised``.
    y : ndarray of shape (n,)
        1 on seeds, -1 on negative seeds, else 0.
    block : array-like of shape (n,) or None
        Non-decreasing block labels; ``None``: one block (the global stop).
    alpha, tol, max_iter
        As in :class:`LabelPropagation`.
    normalised : bool, default=False
        ``W`` is already ``D^-1/2 W D^-1/2``.

    Returns
    -------
    (ndarray, int, float)
        The scores, the iterations of the slowest block, and the largest last change of a block that did not
        converge (0.0 when all did).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> W = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 1, 2, 3], [1, 0, 3, 2])), shape=(4, 4))
    >>> f, it, delta = propagate_by_block(W, np.array([1.0, 0, 0, 0]), [0, 0, 1, 1])
    >>> bool(f[1] > 0), f[2:].tolist(), delta
    (True, [0.0, 0.0], 0.0)
    """
    S, n = (W, W.shape[0]) if normalised else _normalised(W, "sym")
    y = np.asarray(y, dtype=float)
    block = np.zeros(n, dtype=np.int64) if block is None else np.asarray(block)
    if len(block) != n or len(y) != n:
        raise ValueError(f"propagate_by_block: {n} nodes, {len(y)} seed values, {len(block)} block labels")
    if n and (np.diff(block) < 0).any():
        raise ValueError("propagate_by_block: block labels must be non-decreasing (each block's rows together)")
    starts = np.r_[0, np.flatnonzero(np.diff(block) != 0) + 1] if n else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, n])
    f = (1 - alpha) * y
    active = np.ones(len(starts), dtype=bool)
    change = np.full(len(starts), np.inf)
    iters = np.zeros(len(starts), dtype=np.int64)
    # the rows multiplied: those of the blocks ``mult`` (every block at first; re-cut to the iterating blocks when
    # the finished ones hold a quarter of the entries multiplied), their matrix in row parts multiplied on threads
    mult, rows, parts, mult_nnz = np.arange(len(starts)), None, row_parts(S), S.nnz
    for it in range(int(max_iter) if n else 0):
        at = np.r_[0, np.cumsum(lengths[mult])[:-1]]  # where each multiplied block begins among the rows
        now = f if rows is None else f[rows]
        nxt = alpha * parallel_matvec(parts, f) + (1 - alpha) * (y if rows is None else y[rows])
        live = active[mult]
        change[mult[live]] = np.maximum.reduceat(np.abs(nxt - now), at)[live]
        if live.all():
            f = nxt if rows is None else _put(f, rows, nxt)
        else:  # a finished block keeps its scores
            keep = np.repeat(live, lengths[mult])
            f = np.where(keep, nxt, f) if rows is None else _put(f, rows[keep], nxt[keep])
        iters[active] = it + 1
        active &= ~(change < tol)
        if not active.any():
            break
        ends = np.r_[starts[1:], n]
        nnz = int((S.indptr[ends[active]] - S.indptr[starts[active]]).sum())
        if nnz < 0.75 * mult_nnz:
            mult = np.flatnonzero(active)
            rows = np.flatnonzero(np.repeat(active, lengths))
            parts, mult_nnz = row_parts(S[rows]), nnz
    late = change[change >= tol]
    return f, int(iters.max(initial=0)), float(late.max()) if len(late) else 0.0


def propagate_by_component(W, y, *, alpha=0.85, tol=1e-6, max_iter=100) -> pd.DataFrame:
    """Propagation over the connected components that hold a seed, each until its own change is below ``tol``.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix of shape (n, n)
        Symmetric, non-negative, canonical.
    y : ndarray of shape (n,)
        1 on seeds, -1 on negative seeds, else 0.
    alpha, tol, max_iter
        As in :class:`LabelPropagation`.

    Returns
    -------
    pandas.DataFrame
        ``node``, ``score`` of every node of a seeded component (every other node scores 0), and ``n_iter`` and
        ``change`` (the last change of a block that did not converge, else 0) of the block it was solved in.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> W = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 1, 2, 3], [1, 0, 3, 2])), shape=(5, 5))
    >>> rows = propagate_by_component(W, np.array([1.0, 0, 0, 0, 1.0]))
    >>> rows["node"].tolist(), bool(rows["score"].iloc[1] > 0)
    ([0, 1, 4], True)
    """
    from scipy.sparse.csgraph import connected_components

    y = np.asarray(y, dtype=float)
    seeds = np.flatnonzero(y != 0)
    if not len(seeds):
        return propagate_components(W, y, seeds, seeds, alpha=alpha, tol=tol, max_iter=max_iter)
    _, label = connected_components(W, directed=False)
    nodes = np.flatnonzero(np.isin(label, np.unique(label[seeds])))
    return propagate_components(W, y, nodes, label[nodes], alpha=alpha, tol=tol, max_iter=max_iter)


def propagate_components(W, y, nodes, component, *, alpha=0.85, tol=1e-6, max_iter=100) -> pd.DataFrame:
    """:func:`propagate_by_block` on the sub-matrix of ``nodes`` (whole components), ordered by (component, node).

    Each row keeps its entries in their order in ``W``, so the scores of a component do not depend on which other
    components share the call: on Spark, tasks call this on their units and get the one-machine scores.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix of shape (n, n)
        Symmetric, non-negative, canonical.
    y : ndarray of shape (n,)
    nodes : array-like of int
        Every node of the components to solve.
    component : array-like
        Each node's component (any labels: only which nodes share one matters).
    alpha, tol, max_iter
        As in :class:`LabelPropagation`.

    Returns
    -------
    pandas.DataFrame
        As :func:`propagate_by_component`.
    """
    order = np.lexsort((np.asarray(nodes), np.asarray(component)))
    nodes = np.asarray(nodes, dtype=np.int64)[order]
    component = np.asarray(component)[order]
    sub = W[nodes][:, nodes]
    sub.sort_indices()
    # a principal sub-matrix of a symmetric matrix is symmetric: normalised without checking that by a transpose
    S, _ = _normalised(sub, "sym", symmetric=True)
    f, it, delta = propagate_by_block(S, np.asarray(y, dtype=float)[nodes], component, alpha=alpha, tol=tol,
                                      max_iter=max_iter, normalised=True)
    return pd.DataFrame({"node": nodes, "score": f, "n_iter": np.full(len(nodes), it, dtype=np.int64),
                         "change": np.full(len(nodes), delta)})


# --- private helpers ----------------------------------------------------------


def _put(f, rows, values):
    f[rows] = values
    return f


def _assembled(n, rows, tol):
    """The scores of all ``n`` nodes from a propagator's rows, the iterations of the slowest block and the largest
    change left at or above ``tol``."""
    f = np.zeros(n)
    f[rows["node"].to_numpy(np.int64)] = rows["score"].to_numpy(float)
    late = rows["change"].to_numpy(float)
    late = late[~(late < tol)]
    return f, int(rows["n_iter"].max()) if len(rows) else 0, float(late.max()) if len(late) else 0.0


def _checked(adj):
    """``adj`` as a float CSR matrix, after the checks every propagation makes."""
    import scipy.sparse as sp

    if not sp.issparse(adj):
        raise TypeError(f"adj must be a scipy.sparse matrix, got {type(adj).__name__}")
    if adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adj must be square, got shape {adj.shape}")
    W = sp.csr_matrix(adj, dtype=float)
    if W.nnz and W.data.min() < 0:
        raise ValueError("adj weights must be non-negative")
    return W, W.shape[0]


def _normalised(adj, how, *, symmetric=False):
    """``D^-1/2 W D^-1/2`` (``how="sym"``) or ``D^-1 W`` (``"row"``) of the checked, symmetrised ``adj``;
    ``symmetric``: ``adj`` is known to be symmetric (only its explicit zeros are dropped)."""
    import scipy.sparse as sp

    W = _checked(adj)[0]
    W = _zeros_dropped(W) if symmetric else _symmetrised(W)
    deg = np.asarray(W.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, 1.0 / np.sqrt(deg) if how == "sym" else 1.0 / deg, 0.0)
    if how == "sym":
        # D W D by scaling W's entries in place of two sparse products: the same values in the same order
        # (so the same sums in S @ f), without two passes over 90M entries on the large scenario
        W.sort_indices()
        S = sp.csr_matrix(((np.repeat(inv, np.diff(W.indptr)) * W.data) * inv[W.indices], W.indices, W.indptr),
                          shape=W.shape)
        return S, W.shape[0]
    return (sp.diags(inv) @ W).tocsr(), W.shape[0]


def _symmetrised(W):
    """``((W + W.T) * 0.5).tocsr()`` of a CSR matrix, without the sum when ``W`` is already symmetric.

    A symmetric matrix in canonical form (sorted indices, no duplicates) equals its transpose array for
    array; then ``(w + w) * 0.5`` is ``w`` exactly and the sum would only drop explicit zeros, which is all
    that is done (on a copy). The graph stage's combined adjacency is symmetric by construction: on the
    ``large`` scenario this saves a sum and a copy of 70M entries.
    """
    if W.has_canonical_format and W.nnz and np.isfinite(W.data).all() and W.data.max() < 2.0 ** 1000:
        T = W.T.tocsr()
        if (np.array_equal(W.indptr, T.indptr) and np.array_equal(W.indices, T.indices)
                and np.array_equal(W.data, T.data)):
            del T
            return _zeros_dropped(W)
        del T
    return ((W + W.T) * 0.5).tocsr()


def _zeros_dropped(W):
    """``W`` without explicit zeros (a copy when it has any)."""
    if W.nnz and (W.data == 0).any():
        W = W.copy()
        W.eliminate_zeros()
    return W


def _check_alpha(alpha):
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _node_keys(nodes, n):
    if nodes is None:
        return np.arange(n)
    keys = np.asarray(nodes)
    if keys.shape != (n,):
        raise ValueError(f"nodes has shape {keys.shape}; expected one key per row of adj ({n},)")
    return keys


def _propagation_reasons(values, is_seed, flagged, template):
    """``"seed"`` for seeds, ``template`` formatted with ``values`` for other flagged nodes, else ``""``."""
    out = np.full(len(values), "", dtype=object)
    show = np.flatnonzero(flagged & ~is_seed)
    out[show] = [template.format(v) for v in values[show]]  # formatting only, flagged nodes
    out[is_seed] = "seed"
    return out


def _indices(idx, n):
    idx = np.asarray(idx, dtype=np.int64).ravel()
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"seed indices must be in [0, {n}); got min {idx.min()}, max {idx.max()}")
    return idx
