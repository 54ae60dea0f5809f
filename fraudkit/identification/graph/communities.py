"""Modularity community detection, comparison, profiling and screening (stage 3).

Seeds 001/004 section 2.2: build a weighted account-account graph (R(A,B) for
co-purchases, shared media, co-actions), find communities by modularity
(Louvain / Leiden: move nodes to the neighbouring community with the largest
modularity gain until no gain is left), then *profile* every community and
*screen* the profiles for the ones that look like crowdsourced scalpers or
engagement crowds rather than honest crowds.

The heavy lifting is igraph's C implementations (``community_leiden``,
``community_multilevel``) or leidenalg; networkx is never on this path.
Comparison measures (NMI, ARI) come from cdlib's evaluation module.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudkit.capability.r_ab import normalize_address
from fraudkit.data.dataset import read_table
from fraudkit.errors import MissingInputError
from fraudkit.identification.base import BaseScorer, check_is_fitted, inclusive_threshold
from fraudkit.identification.graph import leiden
from fraudkit.identification.graph.leiden import modularity, networkit_membership, use_networkit
from fraudkit.randomness import igraph_seeded

__all__ = [
    "Partition",
    "detect_communities",
    "compare_partitions",
    "stability",
    "profile_communities",
    "CommunityEvidence",
    "community_evidence",
    "CommunityScreener",
    "PROFILE_FEATURES",
    "SCREEN_WEIGHTS",
    "captured_targets",
    "capture_scores",
    "CaptureScorer",
    "relabel_by_size",
]

_METHODS = ("leiden", "louvain", "leidenalg")


@dataclass(frozen=True)
class Partition:
    """A partition of graph nodes into communities.

    Parameters
    ----------
    nodes : ndarray of shape (n_nodes,)
        Node keys (account ids).
    membership : ndarray of shape (n_nodes,), dtype int
        Community id of each node, ``0..n_communities-1``, largest community first.
    method : str
    params : dict
        Resolution, seed, weight column, number of edges.
    modularity : float
        Weighted modularity at ``params["resolution"]``.
    n_communities : int
    """

    nodes: np.ndarray
    membership: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    modularity: float = float("nan")
    n_communities: int = 0

    def to_frame(self, key: str = "account_id") -> pd.DataFrame:
        """One row per node: ``key``, ``community``, ``community_size``."""
        sizes = np.bincount(self.membership, minlength=self.n_communities)
        return pd.DataFrame({key: self.nodes, "community": self.membership,
                             "community_size": sizes[self.membership]})

    def sizes(self) -> np.ndarray:
        """Community sizes, indexed by community id."""
        return np.bincount(self.membership, minlength=self.n_communities)


def detect_communities(edges, *, method="leiden", resolution=1.0, seed=0, weight="weight", nodes=None,
                       src="src", dst="dst", n_iterations=2) -> Partition:
    """Modularity communities of a weighted edge list, through igraph / leidenalg.

    Parameters
    ----------
    edges : pandas.DataFrame
        Columns ``src``, ``dst`` and (optionally) ``weight``; parallel edges are summed, self-loops kept.
    method : {"leiden", "louvain", "leidenalg"}, default="leiden"
        ``leiden``: igraph's ``community_leiden`` with the modularity objective, or on a graph of
        :data:`~fraudkit.identification.graph.leiden.NETWORKIT_EDGES` edges or more (no self-loop) networkit's
        ``ParallelLeiden`` (``params["solver"]`` says which);
        ``louvain``: igraph's ``community_multilevel``; ``leidenalg``: ``leidenalg.find_partition`` with
        ``RBConfigurationVertexPartition``.
    resolution : float, default=1.0
        Modularity resolution; higher gives smaller communities.
    seed : int, default=0
        Seeds igraph's random number generator (restored afterwards) or leidenalg's ``seed``.
    weight : str or None, default="weight"
        Edge weight column; None for unweighted.
    nodes : array-like, optional
        Extra node keys to include (as singletons when isolated).
    src, dst : str
    n_iterations : int, default=2
        Leiden iterations (igraph and leidenalg default); negative means until the partition stops changing.

    Returns
    -------
    Partition

    Examples
    --------
    >>> import pandas as pd
    >>> e = pd.DataFrame({"src": [1, 1, 2, 4, 4, 5, 3], "dst": [2, 3, 3, 5, 6, 6, 4], "weight": 1.0})
    >>> p = detect_communities(e, seed=0)
    >>> p.n_communities, sorted(p.to_frame().groupby("community")["account_id"].apply(list).tolist())
    (2, [[1, 2, 3], [4, 5, 6]])
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    coded = list(_coded(edges, src, dst, weight, nodes))  # [code, uniq, w]
    m = len(edges)
    if method == "leiden" and m >= (leiden.NETWORKIT_EDGES or np.inf):
        # the coded edges are handed over (emptied unless an edge is a self-loop): nothing edge-sized is held here
        # while networkit solves
        part = _networkit_partition(coded, m, weight, resolution=resolution, seed=seed, n_iterations=n_iterations)
        if part is not None:
            return part
    code, uniq, w = coded
    del coded
    s, d = code[:m], code[m:2 * m]
    g = _igraph(len(uniq), s, d)
    del code, s, d
    # igraph reads the weights from the array as from a list of them (no 18M-float list on large)
    wl = None if w is None else (w.tolist() if method == "leidenalg" else w)
    if method == "leidenalg":
        import leidenalg

        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights=wl,
                                        resolution_parameter=float(resolution), seed=int(seed),
                                        n_iterations=n_iterations)
        membership = np.asarray(part.membership)
    elif method == "leiden":
        membership = _igraph_leiden(g, wl, resolution=resolution, seed=seed, n_iterations=n_iterations)
    else:
        with igraph_seeded(seed):
            membership = np.asarray(g.community_multilevel(weights=wl, resolution=float(resolution)).membership)
    membership = relabel_by_size(membership)
    q = g.modularity(membership.tolist(), weights=wl, resolution=float(resolution)) if m else float("nan")
    return Partition(nodes=np.asarray(uniq), membership=membership, method=method,
                     params={"resolution": float(resolution), "seed": seed, "weight": weight, "n_edges": m,
                             "n_iterations": n_iterations,
                             "solver": "leidenalg" if method == "leidenalg" else "igraph"},
                     modularity=float(q), n_communities=int(membership.max(initial=-1) + 1))


def _coded(edges, src, dst, weight, nodes):
    """:func:`detect_communities`' edges as integer codes: ``code`` (``src`` codes, then ``dst``'s, then
    ``nodes``'), the distinct keys ``uniq`` in order of first appearance and the weights ``w`` (None: unweighted),
    checked."""
    missing = [c for c in (src, dst) + ((weight,) if weight else ()) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"detect_communities: edges lack column(s) {missing}; got {list(edges.columns)}. "
                                "Fix: pass an edge DataFrame with src, dst and weight (e.g. from a projection).")
    parts = [edges[src].to_numpy(), edges[dst].to_numpy()] + ([np.asarray(nodes)] if nodes is not None else [])
    if len({p.dtype for p in parts}) > 1:  # mixed key types: pandas finds the common one, as a concat would
        parts = [pd.concat([pd.Series(p) for p in parts], ignore_index=True)]
    code, uniq = pd.factorize(np.concatenate(parts) if len(parts) > 1 else parts[0], sort=False)
    del parts
    w = None if weight is None else edges[weight].to_numpy(float)
    if w is not None and (np.isnan(w).any() or (w < 0).any()):
        raise ValueError("detect_communities: weights must be finite and non-negative")
    return code, uniq, w


def _networkit_partition(coded, m, weight, *, resolution, seed, n_iterations) -> Partition | None:
    """:func:`detect_communities`' ``leiden`` on a large graph of ``m`` edges coded by :func:`_coded` (the list
    ``[code, uniq, w]``, emptied when taken): parallel edges summed (in the edges' order), then networkit's
    ``ParallelLeiden`` (:mod:`fraudkit.identification.graph.leiden`); igraph on the summed graph when fewer
    distinct edges than the threshold remain, or when the child process fails. None, ``coded`` left as it was,
    when an edge is a self-loop (igraph's path takes the graph). Only the summed graph is kept, and it is handed
    to the child: nothing edge-sized of this function's is held while the child solves."""
    code = coded[0]
    if (code[:m] == code[m:2 * m]).any():
        return None
    code, uniq, w = coded
    coded.clear()
    n = len(uniq)
    s, d = code[:m], code[m:2 * m]
    lo, hi = np.minimum(s, d).astype(np.int64), np.maximum(s, d).astype(np.int64)
    del code, s, d
    pair, inverse = np.unique(lo * n + hi, return_inverse=True)
    del lo, hi
    total = np.bincount(inverse.ravel(), weights=np.ones(m) if w is None else w, minlength=len(pair))
    del inverse, w
    graph = [pair // n, pair % n, total]
    del pair, total

    def by_igraph():
        a, b, total = graph
        return _igraph_leiden(_igraph(n, a, b), total, resolution=resolution, seed=seed, n_iterations=n_iterations)

    solver = "networkit" if use_networkit(len(graph[2]), graph[0], graph[1], threshold=leiden.NETWORKIT_EDGES) \
        else "igraph"
    if solver == "networkit":
        membership = networkit_membership(n, graph, resolution=resolution, seed=seed, n_iterations=n_iterations,
                                          fallback=by_igraph)
    else:
        membership = by_igraph()
    membership = relabel_by_size(membership)
    a, b, total = graph
    return Partition(nodes=np.asarray(uniq), membership=membership, method="leiden",
                     params={"resolution": float(resolution), "seed": seed, "weight": weight, "n_edges": m,
                             "n_iterations": n_iterations, "solver": solver},
                     modularity=modularity(a, b, total, membership, resolution),
                     n_communities=int(membership.max(initial=-1) + 1))


def compare_partitions(a: Partition, b: Partition) -> dict:
    """NMI and ARI between two partitions (cdlib evaluation), over the union of their nodes.

    A node missing from one partition is a singleton there.

    Examples
    --------
    >>> import numpy as np
    >>> p = Partition(np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1]), "x", n_communities=2)
    >>> compare_partitions(p, p)
    {'nmi': 1.0, 'ari': 1.0}
    """
    from cdlib import NodeClustering, evaluation

    keys = pd.Index(pd.unique(np.concatenate([a.nodes, b.nodes])))

    def clustering(p):
        mem = np.full(len(keys), -1, dtype=np.int64)
        mem[keys.get_indexer(p.nodes)] = p.membership
        lone = mem < 0
        mem[lone] = p.n_communities + np.arange(lone.sum())
        order = np.argsort(mem, kind="stable")
        splits = np.flatnonzero(np.diff(mem[order])) + 1
        return NodeClustering([c.tolist() for c in np.split(order, splits)], None, p.method)

    ca, cb = clustering(a), clustering(b)
    return {"nmi": float(evaluation.normalized_mutual_information(ca, cb).score),
            "ari": float(evaluation.adjusted_rand_index(ca, cb).score)}


def stability(edges, seeds=range(5), **kwargs) -> pd.DataFrame:
    """How much communities move across seeds: NMI and ARI of every pair of seeded runs.

    Parameters
    ----------
    edges : pandas.DataFrame
    seeds : iterable of int, default=range(5)
    **kwargs
        Passed to :func:`detect_communities` (method, resolution, weight...).

    Returns
    -------
    pandas.DataFrame
        Columns ``seed_a``, ``seed_b``, ``nmi``, ``ari``, ``n_communities_a``, ``n_communities_b``;
        ``attrs["mean_nmi"]``, ``attrs["mean_ari"]``.

    Examples
    --------
    >>> import pandas as pd
    >>> e = pd.DataFrame({"src": [1, 1, 2, 4, 4, 5, 3], "dst": [2, 3, 3, 5, 6, 6, 4], "weight": 1.0})
    >>> round(stability(e, seeds=[0, 1]).attrs["mean_nmi"], 3)
    1.0
    """
    seeds = list(seeds)
    parts = {s: detect_communities(edges, seed=s, **kwargs) for s in seeds}
    rows = []
    for i, sa in enumerate(seeds):
        for sb in seeds[i + 1:]:
            c = compare_partitions(parts[sa], parts[sb])
            rows.append({"seed_a": sa, "seed_b": sb, **c, "n_communities_a": parts[sa].n_communities,
                         "n_communities_b": parts[sb].n_communities})
    out = pd.DataFrame(rows, columns=["seed_a", "seed_b", "nmi", "ari", "n_communities_a", "n_communities_b"])
    out.attrs["mean_nmi"] = float(out["nmi"].mean()) if len(out) else 1.0
    out.attrs["mean_ari"] = float(out["ari"].mean()) if len(out) else 1.0
    return out


PROFILE_FEATURES = ("density", "repeat_tie_share", "new_account_share", "device_sharing", "address_sharing", "time_concentration",
                    "discounted_share", "known_bad_share")
"""Profile columns the screener reads (all in [0, 1])."""

SCREEN_WEIGHTS = {"density": 0.2, "repeat_tie_share": 0.5, "new_account_share": 0.4, "device_sharing": 0.6,
                  "address_sharing": 0.0, "time_concentration": 0.2, "discounted_share": 0.1, "known_bad_share": 0.8}
"""Evidence weights of the unsupervised community risk score: the risk one feature alone carries at full
strength (see :class:`CommunityScreener`). ``address_sharing`` weighs 0 by default: campus and residential
parcel stations make honest communities share addresses at scale (campus communities of ``ecommerce-promo``
screened at 0.47 FPR with it); forwarding to consolidation points is tested properly, against delivery delays,
by :func:`fraudkit.capability.r_ab.consolidation_scores`."""


@dataclass(frozen=True)
class CommunityEvidence:
    """What :func:`profile_communities` reads of the data, reduced once per run instead of once per view.

    Built by :func:`community_evidence`; one row per distinct pair or per account, so a view's profiles cost
    what its members have, not a pass over every event of the world.

    Parameters
    ----------
    devices : pandas.DataFrame
        Distinct ``account_id, x`` (device ids) of interactions, orders and logins.
    hours : pandas.DataFrame
        ``account_id, hour, n``: events (interactions, orders, logins) per account and clock hour.
    last_ts : pandas.Series
        Latest event per account (index ``account_id``).
    receivers : pandas.DataFrame or None
        Distinct ``account_id, x``: normalised shipping addresses and ``phone:<receiver_phone>`` of orders.
    orders : pandas.DataFrame or None
        ``account_id, n_orders, n_discounted`` (orders on a discounted product or in a promotion).
    accounts : pandas.DataFrame or None
        ``account_id, registered_at``.
    missing : tuple of str
        Tables the data lacks.
    """

    devices: pd.DataFrame
    hours: pd.DataFrame
    last_ts: pd.Series
    receivers: pd.DataFrame | None
    orders: pd.DataFrame | None
    accounts: pd.DataFrame | None
    missing: tuple = ()


def community_evidence(data, *, addresses=None) -> CommunityEvidence:
    """Reduce ``data`` once to the per-account evidence :func:`profile_communities` needs for every view.

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
        A Dataset is reduced in DuckDB (per-account hour counts, distinct (account, device) and
        (account, address / receiver phone) pairs, per-account order counts): the events never reach pandas.
    addresses : pandas.Series, optional
        Normalised shipping addresses (:func:`fraudkit.capability.r_ab.normalize_address`) indexed by the raw
        address text, from a caller that normalised them already; addresses it lacks are normalised here.

    Returns
    -------
    CommunityEvidence

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"account_id": [1, 1, 2], "ts": pd.to_datetime(["2024-01-01 10:05", "2024-01-01 10:50",
    ...                    "2024-01-02 00:00"]), "device_id": ["d", "d", None]})
    >>> e = community_evidence({"interactions": ev})
    >>> e.hours["n"].tolist(), e.devices.values.tolist(), e.missing
    ([2, 1], [[1, 'd']], ('orders', 'logins', 'accounts'))
    """
    if not isinstance(data, dict) and hasattr(data, "sql"):
        return _community_evidence_sql(data, addresses)
    missing, acc_parts, ts_parts, dev_parts = [], [], [], []
    for name in ("interactions", "orders", "logins"):
        t = read_table(data, name, ["account_id", "ts", "device_id"], required=True)
        if t is None:
            missing.append(name)
            continue
        acc_parts.append(t["account_id"].to_numpy())
        ts_parts.append(pd.to_datetime(t["ts"], cache=False).to_numpy("datetime64[ns]"))
        ok = t["device_id"].notna().to_numpy()
        dev_parts.append(pd.DataFrame({"account_id": t["account_id"].to_numpy()[ok], "x": t["device_id"].to_numpy()[ok]}))
    if acc_parts:
        acc, ts = np.concatenate(acc_parts), np.concatenate(ts_parts)
        hour = ts.astype("datetime64[h]").astype(np.int64)
        hours = pd.DataFrame({"account_id": acc, "hour": hour}).value_counts(sort=False).rename("n").reset_index()
        last_ts = pd.Series(ts).groupby(acc).max()
        devices = pd.concat(dev_parts, ignore_index=True).drop_duplicates(ignore_index=True)
    else:
        hours = pd.DataFrame({"account_id": [], "hour": np.zeros(0, np.int64), "n": np.zeros(0, np.int64)})
        last_ts, devices = pd.Series(dtype="datetime64[ns]"), pd.DataFrame({"account_id": [], "x": []})
    orders = read_table(data, "orders", ["account_id", "product_id", "address", "receiver_phone", "promotion_id"],
                        required=True)
    receivers = per_order = None
    if orders is not None:
        address = _normalised_addresses(orders["address"], addresses)
        receivers = pd.concat([
            pd.DataFrame({"account_id": orders["account_id"].to_numpy(), "x": address.to_numpy()}),
            pd.DataFrame({"account_id": orders["account_id"].to_numpy(),
                          "x": ("phone:" + orders["receiver_phone"].astype(str)).to_numpy()})], ignore_index=True)
        receivers = receivers.dropna(subset=["x"]).drop_duplicates(ignore_index=True)
        disc = orders["promotion_id"].notna().to_numpy()
        products = read_table(data, "products", ["product_id", "discount"], required=True)
        if products is not None:
            dmap = pd.Series(products["discount"].to_numpy(float), index=products["product_id"].to_numpy())
            disc = disc | (dmap.reindex(orders["product_id"].to_numpy()).fillna(0).to_numpy() > 0)
        per_order = (pd.DataFrame({"account_id": orders["account_id"].to_numpy(), "d": disc.astype(np.int64)})
                     .groupby("account_id")["d"].agg(n_orders="size", n_discounted="sum").reset_index())
    accounts = read_table(data, "accounts", ["account_id", "registered_at"], required=True)
    if accounts is None:
        missing.append("accounts")
    return CommunityEvidence(devices=devices, hours=hours, last_ts=last_ts, receivers=receivers, orders=per_order,
                             accounts=accounts, missing=tuple(missing))


def _community_evidence_sql(ds, addresses=None) -> CommunityEvidence:
    """:func:`community_evidence` of a Dataset, reduced in DuckDB: the same tables, order aside."""
    missing, parts = [], []
    sql = ds.engine.to_pandas  # the rows as Arrow to pandas: through ibis, large's 12.5M hours took 5.3 s, not 3.4 s
    for name in ("interactions", "orders", "logins"):
        if not ds.has(name):
            missing.append(name)
            continue
        lack = [c for c in ("account_id", "ts", "device_id") if c not in ds.table(name).columns]
        if lack:
            raise MissingInputError(f"{name}: missing column(s) {', '.join(lack)}. Fix: pass a table with those "
                                    "columns (see fraudkit.data.contract).")
        parts.append(f"SELECT account_id, ts, device_id FROM {ds.view(name)}")
    if parts:
        ev = " UNION ALL ".join(parts)
        # the clock hour as datetime64[h] counts it: whole hours since the epoch
        hours = sql(f"SELECT account_id, CAST(epoch_us(ts) // 3600000000 AS BIGINT) AS hour, count(*) AS n "
                       f"FROM ({ev}) GROUP BY ALL")
        last = sql(f"SELECT account_id, max(ts) AS ts FROM ({ev}) GROUP BY ALL")
        last_ts = pd.Series(last["ts"].to_numpy("datetime64[ns]"), index=last["account_id"].to_numpy())
        devices = sql(f"SELECT DISTINCT account_id, device_id AS x FROM ({ev}) WHERE device_id IS NOT NULL")
    else:
        hours = pd.DataFrame({"account_id": [], "hour": np.zeros(0, np.int64), "n": np.zeros(0, np.int64)})
        last_ts, devices = pd.Series(dtype="datetime64[ns]"), pd.DataFrame({"account_id": [], "x": []})
    receivers = per_order = None
    if ds.has("orders"):
        o = ds.view("orders")
        lack = [c for c in ("account_id", "product_id", "address", "receiver_phone", "promotion_id")
                if c not in ds.table("orders").columns]
        if lack:
            raise MissingInputError(f"orders: missing column(s) {', '.join(lack)}. Fix: pass a table with those "
                                    "columns (see fraudkit.data.contract).")
        adr = sql(f"SELECT DISTINCT account_id, address FROM {o}")
        address = _normalised_addresses(adr["address"], addresses)
        ph = sql(f"SELECT DISTINCT account_id, receiver_phone FROM {o}")
        receivers = pd.concat([
            pd.DataFrame({"account_id": adr["account_id"].to_numpy(), "x": address.to_numpy()}),
            pd.DataFrame({"account_id": ph["account_id"].to_numpy(),
                          "x": ("phone:" + ph["receiver_phone"].astype(str)).to_numpy()})], ignore_index=True)
        receivers = receivers.dropna(subset=["x"]).drop_duplicates(ignore_index=True)
        disc = "promotion_id IS NOT NULL"
        join = ""
        if ds.has("products") and {"product_id", "discount"} <= set(ds.table("products").columns):
            disc += " OR coalesce(CAST(p.discount AS DOUBLE), 0) > 0"
            join = f" LEFT JOIN (SELECT product_id, discount FROM {ds.view('products')}) p USING (product_id)"
        per_order = sql(f"SELECT account_id, count(*) AS n_orders, "
                           f"CAST(sum(CASE WHEN {disc} THEN 1 ELSE 0 END) AS BIGINT) AS n_discounted "
                           f"FROM {o}{join} GROUP BY ALL")
    accounts = read_table(ds, "accounts", ["account_id", "registered_at"], required=True)
    if accounts is None:
        missing.append("accounts")
    return CommunityEvidence(devices=devices, hours=hours, last_ts=last_ts, receivers=receivers, orders=per_order,
                             accounts=accounts, missing=tuple(missing))


def profile_communities(partition: Partition, data, *, known_bad=None, edges=None, min_size=3,
                        new_account_days=30, as_of=None, tie_count=None, min_sharing_group=5,
                        evidence=None) -> pd.DataFrame:
    """Describe each community of accounts (size >= ``min_size``) by the signals the seeds screen on.

    Parameters
    ----------
    partition : Partition
        Over account keys.
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
        Contract tables; each missing table leaves its columns at 0 (and ``attrs["missing"]`` says so).
    known_bad : array-like, optional
        Account keys from the seed pool or lists (never the labels table).
    edges : pandas.DataFrame, optional
        The edges the partition was found on (``src``, ``dst``), for ``density`` and ``repeat_tie_share``.
    tie_count : str, optional
        Column of ``edges`` counting what ties a pair (``n_shared``, ``n_coactions``, ``k``);
        ``repeat_tie_share`` is the share of internal edges with a count of 2 or more: a crowd co-acts
        again and again, honest fans of one viral note co-like once.
    min_size : int, default=3
    new_account_days : int, default=30
    as_of : timestamp-like, optional
        Reference time for account age; default the latest event in the data.
    min_sharing_group : int, default=5
        A device or address counts as shared when at least this many members used it: families of two
        to four share a tablet and a home address, farms and forwarding scalpers share at scale.
    evidence : CommunityEvidence, optional
        :func:`community_evidence` of ``data``, computed once by a caller that profiles several partitions
        of the same data (``data`` is then not read); default computed here.

    Returns
    -------
    pandas.DataFrame
        One row per community: ``community``, ``size``, ``n_internal_edges``, ``density``,
        ``repeat_tie_share``, ``mean_account_age_days``, ``new_account_share``, ``device_sharing`` (share of members that
        used a device at least ``min_sharing_group`` members used), ``address_sharing`` (same for
        normalised shipping addresses and receiver phones), ``time_concentration`` (share of members' actions and orders in their busiest
        hour), ``discounted_share`` (share of orders on discounted or promotion items), ``known_bad_share``,
        ``n_events``.
    """

    mem = partition.to_frame()
    mem = mem[mem["community_size"] >= min_size][["account_id", "community"]]
    prof = mem.groupby("community").size().rename("size").to_frame()
    missing = []
    # density
    if edges is not None and len(edges):
        cm = pd.Series(mem["community"].to_numpy(), index=mem["account_id"].to_numpy())
        cs, cd = cm.reindex(edges["src"].to_numpy()).to_numpy(), cm.reindex(edges["dst"].to_numpy()).to_numpy()
        inside = ~np.isnan(cs) & (cs == cd)
        ie = pd.Series(1, index=cs[inside].astype(np.int64)).groupby(level=0).size()
        prof["n_internal_edges"] = ie.reindex(prof.index, fill_value=0)
        if tie_count is not None:
            rep = pd.Series((edges[tie_count].to_numpy()[inside] >= 2).astype(float),
                            index=cs[inside].astype(np.int64)).groupby(level=0).mean()
            prof["repeat_tie_share"] = rep.reindex(prof.index, fill_value=0.0)
        else:
            prof["repeat_tie_share"] = 0.0
        n = prof["size"].astype(float)
        prof["density"] = (prof["n_internal_edges"] / (n * (n - 1) / 2)).clip(upper=1.0)
    else:
        prof["n_internal_edges"] = 0
        prof["density"] = 0.0
        prof["repeat_tie_share"] = 0.0
    ev = community_evidence(data) if evidence is None else evidence
    missing += [m for m in ev.missing if m != "accounts"]
    member_index = pd.Index(mem["account_id"].to_numpy())
    community_of = mem["community"].to_numpy()

    def members_rows(frame):
        """``frame``'s rows of members, with their community (positional lookup, no merge)."""
        pos = member_index.get_indexer(frame["account_id"])
        keep = pos >= 0
        return frame[keep].assign(community=community_of[pos[keep]])

    last = ev.last_ts[ev.last_ts.index.isin(member_index)]
    ref = pd.Timestamp(as_of) if as_of is not None else (last.max() if len(last) else None)
    acc = ev.accounts
    if acc is not None and ref is not None:
        a = acc.merge(mem, on="account_id", how="inner")
        age = (ref - pd.to_datetime(a["registered_at"], cache=False)).dt.total_seconds() / 86400
        a = a.assign(age=age, new=(age < new_account_days).astype(float))
        g = a.groupby("community")
        prof["mean_account_age_days"] = g["age"].mean()
        prof["new_account_share"] = g["new"].mean()
    else:
        if acc is None:
            missing.append("accounts")
        prof["mean_account_age_days"] = np.nan
        prof["new_account_share"] = 0.0
    prof["device_sharing"] = _sharing(members_rows(ev.devices), prof, min_sharing_group)
    if ev.receivers is not None:
        prof["address_sharing"] = _sharing(members_rows(ev.receivers), prof, min_sharing_group)
        o = members_rows(ev.orders).groupby("community")[["n_discounted", "n_orders"]].sum()
        prof["discounted_share"] = o["n_discounted"] / o["n_orders"]
    else:
        prof["address_sharing"] = 0.0
        prof["discounted_share"] = 0.0
    h = members_rows(ev.hours)
    if len(h):
        per_hour = h.groupby(["community", "hour"])["n"].sum()
        by_comm = per_hour.groupby(level=0)
        top, tot = by_comm.max(), by_comm.sum()
        prof["time_concentration"] = top / tot
        prof["n_events"] = tot
    else:
        prof["time_concentration"] = 0.0
        prof["n_events"] = 0
    if known_bad is not None:
        bad = mem["account_id"].isin(pd.Index(np.asarray(known_bad))).astype(float)
        prof["known_bad_share"] = bad.groupby(mem["community"].to_numpy()).mean()
    else:
        prof["known_bad_share"] = 0.0
    for c in PROFILE_FEATURES + ("n_events",):
        prof[c] = prof[c].fillna(0.0)
    prof = prof.reset_index()
    cols = ["community", "size", "n_internal_edges", "density", "repeat_tie_share", "mean_account_age_days", "new_account_share",
            "device_sharing", "address_sharing", "time_concentration", "discounted_share", "known_bad_share",
            "n_events"]
    prof = prof[cols]
    prof.attrs["missing"] = missing
    return prof


class CommunityScreener(BaseScorer):
    """Rank communities by risk from their profiles.

    Unsupervised (no ``y``): a noisy-OR of independent pieces of evidence,
    ``score = gate(size) * (1 - prod_f (1 - w_f * x_f))`` over :data:`PROFILE_FEATURES` (each a share in
    [0, 1]) with the evidence weights :data:`SCREEN_WEIGHTS`, and ``gate = min(1, log(size) /
    log(full_size))`` so that a pair is never as risky as a crowd. One strong signal is enough to be
    suspicious, two make it near certain — a weighted mean would dilute a device farm's perfect device
    sharing with its unremarkable discount share. Known-bad members, shared devices and shared addresses
    weigh most (seeds: device farms share hardware; crowdsourced scalpers forward goods to a few
    addresses), then repeated ties (a crowd co-acts on target after target, honest fans of one viral note
    once) and new accounts. Density, time concentration and discounts weigh little: every projected
    clique is dense, and honest flash-sale crowds are time-concentrated and discounted too.

    Supervised (``y`` given, from labelled communities of a *training* dataset): a logistic regression
    on the same features plus ``log(size)``; the score is its probability.

    Parameters
    ----------
    weights : dict, optional
        Overrides :data:`SCREEN_WEIGHTS`.
    full_size : int, default=8
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=0.5
        Communities scoring above it are flagged (the graph stage's ``screen_threshold``).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per community
        (``entity_ids_`` are the ``community`` ids); ``reasons_`` names its two strongest features.
    model_ : sklearn LogisticRegression or None
        The supervised classifier, when ``fit`` was given ``y``.

    Examples
    --------
    >>> import pandas as pd
    >>> prof = pd.DataFrame({"community": [0, 1], "size": [12, 12], "density": [0.9, 0.1], "repeat_tie_share": [1, 0],
    ...     "new_account_share": [1.0, 0.0], "device_sharing": [1.0, 0.0], "address_sharing": [1.0, 0.0],
    ...     "time_concentration": [0.8, 0.2], "discounted_share": [1.0, 0.5], "known_bad_share": [0.0, 0.0]})
    >>> CommunityScreener().fit(prof).labels_.tolist()
    [1, 0]
    """

    entity_type = "community"
    stage = "graph"

    def __init__(self, *, weights=None, full_size=8, contamination=None, threshold=0.5):
        super().__init__(contamination=contamination, threshold=threshold)
        self.weights = weights
        self.full_size = full_size

    def fit(self, profiles: pd.DataFrame, y=None):
        """Score ``profiles``; learn a classifier first when ``y`` (1 = fraud community) is given.

        Parameters
        ----------
        profiles : pandas.DataFrame
            From :func:`profile_communities`.
        y : array-like of shape (n_communities,), optional
            1 for a fraud community, 0 otherwise (a *training* dataset's).

        Returns
        -------
        self
        """
        X = self._features(profiles)
        if y is not None:
            from sklearn.linear_model import LogisticRegression

            y = np.asarray(y, dtype=int)
            if len(np.unique(y)) < 2:
                raise ValueError("CommunityScreener.fit: y needs both classes (fraud and clean communities)")
            self.model_ = LogisticRegression(max_iter=1000, class_weight="balanced").fit(X, y)
        else:
            self.model_ = None
        self._set_scores(profiles["community"].to_numpy(), self._score(profiles, X),
                         reasons=self._reasons(profiles))
        return self

    def decision_function(self, profiles: pd.DataFrame) -> np.ndarray:
        """Risk of new communities (e.g. next period's) with what ``fit`` learned."""
        check_is_fitted(self, ("decision_scores_", "model_"))
        return self._score(profiles, self._features(profiles))

    def _features(self, profiles):
        missing = [c for c in PROFILE_FEATURES + ("size",) if c not in profiles.columns]
        if missing:
            raise MissingInputError(f"CommunityScreener: profiles lack {missing}; build them with profile_communities()")
        X = profiles[list(PROFILE_FEATURES)].to_numpy(float)
        return np.c_[X, np.log(profiles["size"].to_numpy(float).clip(min=1))]

    def _score(self, profiles, X):
        if getattr(self, "model_", None) is not None:
            return self.model_.predict_proba(X)[:, 1]
        w = {**SCREEN_WEIGHTS, **(self.weights or {})}
        wv = np.array([w[f] for f in PROFILE_FEATURES])
        base = 1.0 - np.prod(1.0 - np.clip(X[:, :-1], 0, 1) * wv, axis=1)
        gate = np.minimum(1.0, np.log(profiles["size"].to_numpy(float).clip(min=1)) / np.log(self.full_size))
        return base * gate

    def _reasons(self, profiles):
        X = profiles[list(PROFILE_FEATURES)].to_numpy(float)
        top = np.argsort(-X, axis=1)[:, :2]
        names = np.array(PROFILE_FEATURES)
        return [f"{names[a]}={X[i, a]:.2f}, {names[b]}={X[i, b]:.2f}" for i, (a, b) in enumerate(top)]


def captured_targets(partition: Partition, events, *, key="account_id", target="target", stratum=None,
                     alpha=0.01, min_members=3) -> pd.DataFrame:
    """Targets a community engages far beyond its share of the platform's engagement (binomial test).

    Seed 003, stage 3: "cheating users interact with notes/authors that normal users do not like, and in
    batches". For every community ``C`` and target ``t`` engaged by ``k >= min_members`` members, with
    ``d`` distinct engagers in all, the null is that each engager of ``t`` is a member with probability
    ``pi`` = the community's share of all (account, target) engagements — within ``t``'s stratum
    (e.g. the note's topic category) when ``stratum`` is given, so that a community of cooking fans
    dominating cooking notes is *expected*. ``p = P(Binomial(d, pi) >= k)``. A target is *captured* when
    ``p < alpha / n_tests`` (Bonferroni over every (community, target) tested): a paid crowd of 40 makes
    up 17 of a note's 20 engagers; honest taste communities dominate notes only as far as their appetite
    for the topic predicts.

    Parameters
    ----------
    partition : Partition
        Communities of accounts (e.g. of the co-engagement projection).
    events : pandas.DataFrame
        One row per engagement: ``key``, ``target`` and optionally ``stratum``; duplicates count once.
    key, target : str
    stratum : str, optional
        Column grouping targets whose audiences are comparable (note category; ``"follow"`` for authors).
    alpha : float, default=0.01
        Family-wise error rate.
    min_members : int, default=3
        Only (community, target) cells with at least this many member engagers are tested.

    Returns
    -------
    pandas.DataFrame
        ``community``, ``target``, ``k``, ``d``, ``pi``, ``log10_p``, ``captured``, one row per tested cell;
        ``attrs``: ``n_tests``, ``log10_threshold``, ``alpha``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> p = Partition(np.array(["a", "b", "c", "x", "y", "z"]), np.array([0, 0, 0, 1, 1, 1]), "x", n_communities=2)
    >>> ev = pd.DataFrame({"account_id": list("abc") * 2 + ["x", "y"] * 50,
    ...                    "target": [1, 1, 1, 2, 2, 2] + list(range(3, 103)) * 1})
    >>> captured_targets(p, ev, min_members=3)[["community", "target", "k", "d"]].values.tolist()
    [[0, 1, 3, 3], [0, 2, 3, 3]]
    """
    from scipy.stats import binom

    cols = [key, target] + ([stratum] if stratum else [])
    missing = [c for c in cols if c not in events.columns]
    if missing:
        raise MissingInputError(f"captured_targets: events lack column(s) {missing}; got {list(events.columns)}")
    ev = events[cols].dropna(subset=[key, target]).drop_duplicates([key, target])
    tcode, _ = pd.factorize(ev[target], sort=False)
    scode = (np.zeros(len(ev), np.int64) if stratum is None
             else pd.factorize(ev[stratum].fillna("__none__"), sort=False)[0].astype(np.int64))
    d = np.bincount(tcode, minlength=int(tcode.max(initial=-1)) + 1)
    node_comm = pd.Series(partition.membership, index=pd.Index(partition.nodes))
    comm = node_comm.reindex(ev[key].to_numpy()).to_numpy()
    inside = ~np.isnan(comm)
    comm_i, t_i, s_i = comm[inside].astype(np.int64), tcode[inside], scode[inside]
    n_s = np.bincount(scode, minlength=int(scode.max(initial=-1)) + 1).astype(float)
    cs = pd.Series(1, index=pd.MultiIndex.from_arrays([comm_i, s_i])).groupby(level=[0, 1]).size()
    cells = pd.DataFrame({"community": comm_i, "t": t_i, "s": s_i}).groupby(["community", "t", "s"]).size()
    cells = cells[cells >= min_members].rename("k").reset_index()
    if not len(cells):
        out = pd.DataFrame({"community": np.array([], np.int64), "target": ev[target].to_numpy()[:0],
                            "k": np.array([], np.int64), "d": np.array([], np.int64), "pi": np.array([], float),
                            "log10_p": np.array([], float), "captured": np.array([], bool)})
        out.attrs.update({"n_tests": 0, "log10_threshold": np.nan, "alpha": alpha})
        return out
    pi = cs.reindex(pd.MultiIndex.from_arrays([cells["community"], cells["s"]])).to_numpy(float) / n_s[cells["s"]]
    k, dd = cells["k"].to_numpy(), d[cells["t"].to_numpy()]
    log10_p = binom.logsf(k - 1, dd, np.clip(pi, 1e-12, 1.0)) / np.log(10)
    thr = float(np.log10(alpha / len(cells)))
    first_row = np.unique(tcode, return_index=True)[1]
    out = pd.DataFrame({"community": cells["community"].to_numpy(np.int64),
                        "target": ev[target].to_numpy()[first_row[cells["t"].to_numpy()]],
                        "k": k.astype(np.int64), "d": dd.astype(np.int64), "pi": pi, "log10_p": log10_p,
                        "captured": log10_p < thr})
    out.attrs.update({"n_tests": int(len(cells)), "log10_threshold": thr, "alpha": alpha})
    return out.sort_values(["community", "log10_p"], kind="stable").reset_index(drop=True)


def capture_scores(partition: Partition, events, captured: pd.DataFrame, *, key="account_id", target="target",
                   min_targets=2) -> pd.DataFrame:
    """Per-account co-engagement evidence from :func:`captured_targets`.

    An account is *confirmed* when it engaged at least ``min_targets`` distinct targets its community
    captured ("a buyer never buys just one action"; a worker serves several). Two views of the same
    evidence, the account's score being the larger:

    ``capture_share * min(1, n_captured / min_targets)``
        ``capture_share`` is the share of the account's community that is confirmed: a crowd that forms
        its own community is confirmed almost to the last member, an honest taste community of hundreds
        only in the few heavy users who happen to hit two captured targets.
    ``coordination``
        Per captured target, the share of *all* its engagers that are confirmed accounts (``d`` of
        :func:`captured_targets` is the denominator); per account, the ``min_targets``-th largest such
        share over the captured targets it engaged. A paid crowd of real people is often absorbed into
        the taste community its workers belong to, where it is a small minority (``capture_share``
        ~0.1), yet the notes it was paid to engage are engaged almost only by its confirmed workers
        (0.8-1.0). A heavy honest user who follows two popular authors its taste community captured
        shares those authors with many unconfirmed fans (0.1-0.4).

    A score above 0.5 therefore means "confirmed, and either most of its community or most of the
    engagers of at least ``min_targets`` of its captured targets are confirmed too".

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``community``, ``n_captured``, ``capture_share``, ``coordination``, ``score``, for
        accounts of the partition (0 when nothing was captured).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> p = Partition(np.array(list("abcdxyz")), np.zeros(7, dtype=np.int64), "x", n_communities=1)
    >>> cap = pd.DataFrame({"community": [0, 0], "target": [1, 2], "d": [3, 3], "captured": [True, True]})
    >>> ev = pd.DataFrame({"account_id": list("abc") * 2 + list("xyz"), "target": [1] * 3 + [2] * 3 + [3] * 3})
    >>> s = capture_scores(p, ev, cap)
    >>> s[["account_id", "capture_share", "coordination", "score"]].round(3).values.tolist()[:2]
    [['a', 0.429, 1.0, 1.0], ['b', 0.429, 1.0, 1.0]]
    """
    return CaptureScorer(key=key, target=target, min_targets=min_targets).fit(
        partition, events, captured=captured).table_


class CaptureScorer(BaseScorer):
    """The capture test as a detector: accounts confirmed on targets their community captured.

    ``fit`` runs :func:`captured_targets` (unless its table is passed as ``captured``) and scores every
    account of the partition as :func:`capture_scores` describes; that function is the one-call
    wrapper of this class.

    Parameters
    ----------
    key, target : str, default="account_id", "target"
        Columns of the events.
    stratum : str or None, default=None
        Passed to :func:`captured_targets`.
    alpha : float, default=0.01
        Family-wise error rate of :func:`captured_targets`.
    min_members : int, default=3
        Passed to :func:`captured_targets`.
    min_targets : int, default=2
        Captured targets an account must have engaged to be confirmed.
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=inclusive_threshold(0.5)
        Flags scores of 0.5 and above (the graph stage's ``evidence_threshold``), stored as the largest
        float below 0.5 (see :func:`fraudkit.identification.base.inclusive_threshold`).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per account of the
        partition, in the partition's order.
    captured_ : pandas.DataFrame
        The (community, target) tests (:func:`captured_targets`).
    table_ : pandas.DataFrame
        What :func:`capture_scores` returns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> p = Partition(np.array(["a", "b", "c", "x", "y", "z"]), np.array([0, 0, 0, 1, 1, 1]), "x", n_communities=2)
    >>> ev = pd.DataFrame({"account_id": list("abc") * 2 + ["x", "y"] * 50,
    ...                    "target": [1, 1, 1, 2, 2, 2] + list(range(3, 103))})
    >>> est = CaptureScorer().fit(p, ev)
    >>> est.labels_.tolist(), est.reasons_[0]
    ([1, 1, 1, 0, 0, 0], 'engaged 2 targets its community captured; 1.00 of its community confirmed, coordination 1.00')
    """

    stage = "graph"

    def __init__(self, *, key="account_id", target="target", stratum=None, alpha=0.01, min_members=3,
                 min_targets=2, contamination=None, threshold=inclusive_threshold(0.5)):
        super().__init__(contamination=contamination, threshold=threshold)
        self.key = key
        self.target = target
        self.stratum = stratum
        self.alpha = alpha
        self.min_members = min_members
        self.min_targets = min_targets

    def fit(self, partition: Partition, events, *, captured=None):
        """Test the partition's communities for captured targets and score their accounts.

        Parameters
        ----------
        partition : Partition
            Communities of accounts.
        events : pandas.DataFrame
            One row per engagement: ``key``, ``target`` (and ``stratum``).
        captured : pandas.DataFrame, optional
            A :func:`captured_targets` table of the same partition and events, to reuse.

        Returns
        -------
        self
        """
        if captured is None:
            captured = captured_targets(partition, events, key=self.key, target=self.target, stratum=self.stratum,
                                        alpha=self.alpha, min_members=self.min_members)
        table = _capture_table(partition, events, captured, key=self.key, target=self.target,
                               min_targets=self.min_targets)
        self.captured_ = captured
        self.table_ = table
        reasons = np.full(len(table), "", dtype=object)
        hit = table["score"].to_numpy() > 0
        t = table[hit]
        reasons[hit] = ("engaged " + t["n_captured"].astype(str) + " targets its community captured; "
                        + t["capture_share"].map("{:.2f}".format) + " of its community confirmed, coordination "
                        + pd.Series(np.asarray(t["coordination"], dtype=float), index=t.index).map("{:.2f}".format)
                        ).to_numpy(dtype=object)
        return self._set_scores(table[self.key].to_numpy(), table["score"].to_numpy(float), reasons)


def relabel_by_size(membership):
    """Community ids ``0..k-1`` by decreasing size, ties by the first node in ``membership``'s order.

    The canonical labels of every partition the kit makes (:func:`detect_communities`,
    :func:`fraudkit.identification.graph.spark_components.communities_by_component`): both list the nodes in
    order of first appearance in the edges, so a tie is broken by that rank, never by how the ids are spelled,
    and equal partitions have equal ids.

    Parameters
    ----------
    membership : array-like of int
        The community of each node, in node order, with any labels.

    Returns
    -------
    numpy.ndarray
        int64 labels: 0 is the largest community.

    Examples
    --------
    >>> relabel_by_size([7, 3, 3, 9, 9]).tolist()
    [2, 0, 0, 1, 1]
    """
    membership = np.asarray(membership)
    if not len(membership):
        return np.asarray(membership, dtype=np.int64)
    _, inv, counts = np.unique(membership, return_inverse=True, return_counts=True)
    first = np.full(len(counts), len(membership))
    np.minimum.at(first, inv, np.arange(len(membership)))
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inv].astype(np.int64)


# --- private helpers ----------------------------------------------------------


def _capture_table(partition, events, captured, *, key, target, min_targets):
    """The :func:`capture_scores` table (see there)."""
    mem = partition.to_frame(key)
    cap = captured.loc[captured["captured"], ["community", "target"]
                       + (["d"] if "d" in captured.columns else [])]
    if len(cap):
        ev = events[[key, target]].dropna().drop_duplicates()
        ev = ev.merge(mem[[key, "community"]], on=key).merge(cap, left_on=["community", target],
                                                            right_on=["community", "target"], suffixes=("", "_c"))
        n_cap = ev.groupby(key).size()
    else:
        ev = None
        n_cap = pd.Series(dtype=np.int64)
    mem["n_captured"] = n_cap.reindex(mem[key].to_numpy()).fillna(0).astype(np.int64).to_numpy()
    confirmed = (mem["n_captured"] >= min_targets).astype(float)
    mem["capture_share"] = confirmed.groupby(mem["community"]).transform("mean").to_numpy()
    mem["coordination"] = _coordination(ev, n_cap, key, min_targets).reindex(mem[key].to_numpy()) \
        .fillna(0.0).to_numpy() if ev is not None and "d" in cap.columns else 0.0
    share_score = mem["capture_share"] * np.minimum(1.0, mem["n_captured"] / float(min_targets))
    mem["score"] = np.maximum(share_score.to_numpy(), mem["coordination"].to_numpy(float))
    return mem[[key, "community", "n_captured", "capture_share", "coordination", "score"]]


def _igraph(n, s, d, chunk=1 << 18):
    """An undirected igraph graph of ``n`` vertices and the edges ``(s[i], d[i])`` in order.

    igraph converts an edge list element by element; pairs of Python ints, made a chunk at a time, convert
    about a third faster than rows of a numpy array, and the chunks keep the lists small (two lists of 18M
    ints would be 1.3 GB on the large scenario's shared view).
    """
    import igraph as ig

    pairs = itertools.chain.from_iterable(zip(s[i:i + chunk].tolist(), d[i:i + chunk].tolist())
                                          for i in range(0, len(s), chunk))
    return ig.Graph(n=int(n), edges=pairs, directed=False)


def _igraph_leiden(g, weights, *, resolution, seed, n_iterations) -> np.ndarray:
    """igraph's Leiden with the modularity objective on ``g``, seeded: the membership of each vertex."""
    with igraph_seeded(seed):
        return np.asarray(g.community_leiden(objective_function="modularity", weights=weights,
                                             resolution=float(resolution), n_iterations=n_iterations).membership)


def _normalised_addresses(raw, known=None) -> pd.Series:
    """``normalize_address(raw)["address"]``, null where ``raw`` is null, looking up ``known`` (normalised
    addresses indexed by raw text) first: normalisation is per distinct text, so a lookup gives the same
    string (the large scenario's 457k distinct addresses took 12 s to normalise)."""
    notna = raw.notna().to_numpy()
    if known is None or not len(raw):
        return normalize_address(raw)["address"].where(notna)
    text = pd.Series(raw, dtype=object).astype(str)
    pos = known.index.get_indexer(text)
    out = known.to_numpy()[np.maximum(pos, 0)].astype(object)
    miss = pos < 0
    if miss.any():
        out[miss] = normalize_address(text[miss].to_numpy())["address"].to_numpy()
    return pd.Series(out).where(notna)


def _sharing(frame, prof, min_group):
    """Share of each community's members that used an ``x`` at least ``min_group`` members used."""
    f = frame.dropna(subset=["x"]).drop_duplicates(["community", "account_id", "x"])
    if not len(f):
        return pd.Series(0.0, index=prof.index)
    # members per (community, x): the size of each row's group, counted on one int64 code (a two-key groupby
    # transform was a third of the profiles' time)
    x_code, _ = pd.factorize(f["x"], sort=False)
    key = f["community"].to_numpy(np.int64) * (int(x_code.max()) + 1) + x_code
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    n_users = counts[inverse.ravel()]
    sharers = f[n_users >= min_group].drop_duplicates(["community", "account_id"])
    return (sharers.groupby("community").size() / prof["size"]).reindex(prof.index).fillna(0.0)


def _coordination(ev, n_cap, key, min_targets):
    """Per account: the ``min_targets``-th largest confirmed share of the engagers of its captured targets."""
    if not len(ev):
        return pd.Series(dtype=float)
    conf = n_cap.reindex(ev[key].to_numpy()).to_numpy() >= min_targets
    t = ev["target"].to_numpy()
    per_t = pd.DataFrame({"t": t, "conf": conf, "d": ev["d"].to_numpy(float)}).groupby("t", sort=False) \
        .agg(nconf=("conf", "sum"), d=("d", "first"))
    share = (per_t["nconf"] / per_t["d"].clip(lower=1)).clip(upper=1.0)
    a = pd.DataFrame({key: ev[key].to_numpy(), "share": share.reindex(t).to_numpy()})
    a = a.sort_values([key, "share"], ascending=[True, False], kind="stable")
    rank = a.groupby(key, sort=False).cumcount().to_numpy()
    kth = a[rank == min_targets - 1]
    return pd.Series(kth["share"].to_numpy(), index=kth[key].to_numpy())
