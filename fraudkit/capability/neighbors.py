"""Neighbour aggregation features: what a node's neighbourhood looks like, as columns.

Tree models on a node's own features plus aggregates of its neighbours'
features are the strongest family in GADBench (Tang et al., NeurIPS 2023:
"RF-Graph", "XGBGraph"), and they run in seconds on a CPU. Three pure
functions build the columns:

- :func:`aggregate_neighbors` — mean / std / max / min / sum of neighbour
  features over 1 and 2 hops (sparse matrix products, no Python loops);
- :func:`structural_features` — label-free graph position: degree, core
  number, PageRank, clustering, mean neighbour degree;
- :func:`neighbor_label_features` — counts and shares of *known* fraud among
  neighbours, leave-one-out so a node never sees its own label.

All return DataFrames with named columns, one row per node in matrix order.
"""

from __future__ import annotations

__all__ = ["aggregate_neighbors", "structural_features", "neighbor_label_features", "STATS"]

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fraudkit.data.numeric import round_significant

STATS = ("mean", "std", "max", "min", "sum")
_CHUNK_CELLS = 20_000_000  # cap on (edges x features) gathered at once for max/min (~160 MB)


def aggregate_neighbors(adj, x, *, hops: int = 2, stats=("mean", "std", "max"), feature_names=None,
                        weighted: bool = False) -> pd.DataFrame:
    """Aggregate neighbours' features over ``hops`` hops.

    Hop 1 applies each statistic to the features of a node's neighbours.
    Hop ``k > 1`` applies it to the neighbours' hop ``k-1`` *means*, so hop 2's
    mean is the two-step random-walk average ``P @ P @ x`` (``P`` the
    row-normalised adjacency) and hop 2's max is the largest neighbourhood mean
    among the neighbours. Nodes without neighbours get 0 for every statistic.

    Parameters
    ----------
    adj : scipy.sparse matrix of shape (n, n)
        Adjacency; the diagonal is ignored (a node is not its own neighbour).
    x : array-like of shape (n, d)
        Node features.
    hops : int, default=2
    stats : sequence of {"mean", "std", "max", "min", "sum"}, default=("mean", "std", "max")
    feature_names : sequence of str, optional
        Names of the ``d`` features (default ``f0, f1, ...``).
    weighted : bool, default=False
        Use edge weights in mean/std/sum; max and min ignore weights.

    Returns
    -------
    DataFrame of shape (n, hops * len(stats) * d)
        Columns ``hop{k}_{stat}_{feature}``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]]))
    >>> aggregate_neighbors(a, np.array([[0.0], [2.0], [4.0]]), hops=1, stats=("mean", "max"),
    ...                     feature_names=["x"]).to_dict("list")
    {'hop1_mean_x': [3.0, 0.0, 0.0], 'hop1_max_x': [4.0, 0.0, 0.0]}
    """
    a = _clean_adjacency(adj, weighted=weighted)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != a.shape[0]:
        raise ValueError(f"x must have shape ({a.shape[0]}, d), got {x.shape}")
    if hops < 1:
        raise ValueError(f"hops must be >= 1, got {hops}")
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistic(s) {unknown}; choose from {STATS}")
    names = [f"f{j}" for j in range(x.shape[1])] if feature_names is None else [str(f) for f in feature_names]
    if len(names) != x.shape[1]:
        raise ValueError(f"{len(names)} feature names for {x.shape[1]} features")
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    p = sp.diags(inv) @ a
    cols, blocks = [], []
    cur = x
    for k in range(1, hops + 1):
        mean = p @ cur
        for s in stats:
            if s == "mean":
                v = mean
            elif s == "sum":
                v = a @ cur
            elif s == "std":
                v = np.sqrt(np.maximum(p @ (cur * cur) - mean * mean, 0.0))
            else:
                v = _row_extreme(a, cur, np.maximum if s == "max" else np.minimum)
            blocks.append(v)
            cols += [f"hop{k}_{s}_{f}" for f in names]
        cur = mean
    return pd.DataFrame(round_significant(np.hstack(blocks)), columns=cols)  # sums in any order agree


def structural_features(adj, *, include=("degree", "core", "pagerank", "clustering", "neighbor_degree"),
                        damping: float = 0.85) -> pd.DataFrame:
    """Label-free position of each node in the graph.

    Parameters
    ----------
    adj : scipy.sparse matrix of shape (n, n)
        Undirected adjacency (made symmetric, weights and diagonal ignored).
    include : sequence of str
        Any of ``degree`` (log1p of the neighbour count), ``core`` (k-core
        number), ``pagerank`` (log of n x PageRank), ``clustering`` (local
        clustering coefficient, 0 below degree 2), ``neighbor_degree`` (mean
        log1p degree of the neighbours).
    damping : float, default=0.85
        PageRank damping factor.

    Returns
    -------
    DataFrame of shape (n, len(include))

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]]))
    >>> structural_features(a, include=("core", "clustering"))["core"].tolist()
    [2.0, 2.0, 2.0, 1.0]
    """
    import igraph as ig

    a = _clean_adjacency(adj, weighted=False)
    a = a.maximum(a.T).tocsr()
    n = a.shape[0]
    deg = np.diff(a.indptr).astype(np.float64)
    out = {}
    need_graph = any(s in include for s in ("core", "pagerank", "clustering"))
    if need_graph:
        upper = sp.triu(a, k=1).tocoo()
        g = ig.Graph(n=n, edges=np.column_stack([upper.row, upper.col]).tolist(), directed=False)
    for name in include:
        if name == "degree":
            out[name] = np.log1p(deg)
        elif name == "core":
            out[name] = np.asarray(g.coreness(), dtype=np.float64)
        elif name == "pagerank":
            out[name] = np.log(np.asarray(g.pagerank(damping=damping)) * n)
        elif name == "clustering":
            out[name] = np.nan_to_num(np.asarray(g.transitivity_local_undirected(mode="zero"), dtype=float))
        elif name == "neighbor_degree":
            inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
            out[name] = inv * (a @ np.log1p(deg))
        else:
            raise ValueError(f"unknown structural feature {name!r}")
    # rounded: PageRank of nodes the graph cannot tell apart differs by ~1e-12 and follows the node index,
    # which a tree model would split on (issue 16); rounding keeps such ties exact
    return pd.DataFrame({k: round_significant(v) for k, v in out.items()}, columns=list(include))


def neighbor_label_features(adj, labels, known, *, hops: int = 2, prior: float | None = None) -> pd.DataFrame:
    """Known fraud among a node's neighbours, never counting the node's own label.

    Only labels where ``known`` is True are used (pass the training mask).
    Hop 1 counts neighbours; hop 2 counts walks of length two with the walks
    that return to the node itself removed, so a training node's own label
    never reaches its own features (leave-one-out by construction).

    Parameters
    ----------
    adj : scipy.sparse matrix of shape (n, n)
    labels : array-like of shape (n,)
        1 fraud, 0 honest; other values are ignored where ``known`` is False.
    known : array-like of bool, shape (n,)
        Whose labels may be used (the training nodes).
    hops : {1, 2}, default=2
    prior : float, optional
        Smoothing prior for the shares (default: the fraud rate among known nodes).

    Returns
    -------
    DataFrame
        ``hop{k}_fraud`` (count of known fraud), ``hop{k}_known`` (count of
        known nodes), ``hop{k}_fraud_share`` (smoothed share ``(fraud + prior) / (known + 1)``).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]]))
    >>> f = neighbor_label_features(a, [1, 1, 0], [True, True, True], hops=1, prior=0.0)
    >>> f["hop1_fraud"].tolist(), f["hop1_known"].tolist()
    ([1.0, 1.0, 1.0], [2.0, 1.0, 1.0])
    """
    a = _clean_adjacency(adj, weighted=False)
    known = np.asarray(known, dtype=bool)
    y = np.asarray(labels)
    if known.shape != (a.shape[0],) or y.shape != (a.shape[0],):
        raise ValueError(f"labels and known must have shape ({a.shape[0]},)")
    if hops not in (1, 2):
        raise ValueError(f"hops must be 1 or 2, got {hops}")
    pos = (known & (y == 1)).astype(np.float64)
    kn = known.astype(np.float64)
    if prior is None:
        prior = float(pos.sum() / max(kn.sum(), 1.0))
    deg = np.diff(a.indptr).astype(np.float64)
    out = {}
    f1, k1 = a @ pos, a @ kn
    out["hop1_fraud"], out["hop1_known"] = f1, k1
    out["hop1_fraud_share"] = (f1 + prior) / (k1 + 1.0)
    if hops == 2:
        # a @ a has deg(i) closed walks i -> j -> i on its diagonal: remove the node's own label
        f2, k2 = a @ f1 - deg * pos, a @ k1 - deg * kn
        out["hop2_fraud"], out["hop2_known"] = f2, k2
        out["hop2_fraud_share"] = (f2 + prior) / (k2 + 1.0)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- private helpers


def _clean_adjacency(adj, *, weighted: bool) -> sp.csr_matrix:
    if not sp.issparse(adj):
        adj = sp.csr_matrix(np.asarray(adj))
    a = sp.csr_matrix(adj, dtype=np.float64, copy=True)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    a.setdiag(0)
    a.eliminate_zeros()
    a.sum_duplicates()
    if not weighted:
        a.data[:] = 1.0
    elif (a.data < 0).any():
        raise ValueError("adjacency weights must be non-negative")
    return a


def _row_extreme(a: sp.csr_matrix, x: np.ndarray, ufunc) -> np.ndarray:
    """Row-wise max/min of ``x[neighbours]`` via ``reduceat`` over the CSR index pointer."""
    n, d = x.shape
    out = np.zeros((n, d))
    rows = np.flatnonzero(np.diff(a.indptr) > 0)
    if len(rows) == 0:
        return out
    starts = a.indptr[rows]
    step = max(1, _CHUNK_CELLS // max(a.nnz, 1))
    for j0 in range(0, d, step):
        gathered = x[a.indices, j0:j0 + step]
        out[rows, j0:j0 + step] = ufunc.reduceat(gathered, starts, axis=0)
    return out
