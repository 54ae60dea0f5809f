"""Stage 3 graphs: the heterogeneous platform graph and account-account projections.

Two views of the same data (seeds 001/004 section 2.1, seed 003 stage 3):

* :class:`HeteroGraph` — typed nodes (account, device, ip, ip24, phone,
  address, binding, note, product, merchant) and typed, timestamped edges
  (``uses_device``, ``uses_ip``, ``in_subnet``, ``has_phone``, ``ships_to``,
  ``receiver_phone``, ``bound_to``, ``acted_on``, ``authored``, ``bought``,
  ``sold_by``), for multi-hop sub-graph sampling and strong-entity mining.
* Homogeneous account-account projections — "people who used the same medium"
  (:func:`shared_entity_projection`) and "people who acted alike"
  (:func:`coaction_projection`) — for community detection and propagation.

Hot entities never go quadratic
-------------------------------
A campus IP with 500 accounts, a viral note with 50k likers or a flash-sale
item with 20k buyers would produce ``d(d-1)/2`` pairs. Two defences:

1. **Down-weighting.** An entity shared by ``d`` accounts contributes
   ``1/log(1+d)`` (``"inverse_log_degree"``, Adamic–Adar style) or ``1/d``
   (``"inverse_degree"``) to each pair it ties, so a shared family device
   (d=3, w=0.72) outweighs a campus IP (d=500, w=0.16).
2. **Capping.** For entities with more than ``max_degree`` distinct accounts,
   events are sorted by time and each event is paired only with the next
   ``k_neighbors`` events of *other* accounts that fall within ``hot_window``
   of it. Pair count is ``O(n_events * k_neighbors)``, never ``O(d^2)``.
   Without a time column a hot entity cannot be windowed; it is left out of
   the projection and reported in ``result.attrs["skipped_hot_entities"]``.

Pairs are generated with numpy index arithmetic and aggregated with a
pandas groupby on an int64 pair code; there is no Python loop over rows,
entities or nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import MissingInputError

__all__ = [
    "NODE_TYPES",
    "EDGE_TYPES",
    "HeteroGraph",
    "build_hetero_graph",
    "shared_entity_projection",
    "coaction_projection",
    "edges_to_sparse",
    "ip24",
]

NODE_TYPES = ("account", "device", "ip", "ip24", "phone", "address", "binding", "note", "product", "merchant")
"""Node types of the heterogeneous graph."""

EDGE_TYPES = ("uses_device", "uses_ip", "in_subnet", "has_phone", "ships_to", "receiver_phone", "bound_to",
              "acted_on", "authored", "bought", "sold_by")
"""Edge types of the heterogeneous graph (``src`` is the account except ``in_subnet`` ip→ip24, ``sold_by``
product→merchant)."""

_WEIGHTS = ("inverse_log_degree", "inverse_degree", "count")
_ACTION_CODES = ("view", "like", "collect", "comment", "share", "follow")


@dataclass(frozen=True)
class HeteroGraph:
    """A typed, timestamped platform graph with integer node indices.

    Parameters
    ----------
    nodes : pandas.DataFrame
        Columns ``node`` (int, ``0..n-1``), ``type`` (one of :data:`NODE_TYPES`) and ``key`` (the entity
        key as it appears in the data; a binding's key is ``"provider:binding_id"``).
    edges : pandas.DataFrame
        Columns ``src``, ``dst`` (node indices), ``type`` (one of :data:`EDGE_TYPES`), ``action``
        (interaction action for ``acted_on``, else empty), ``ts`` (first time seen), ``ts_last`` and
        ``weight`` (number of events). One row per distinct ``(src, dst, type, action)``.
    params : dict
        How it was built (``as_of``, ``window``, tables used).
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    params: dict = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def node_index(self, type: str, keys) -> np.ndarray:
        """Node indices of ``keys`` of one node type; ``-1`` for keys not in the graph."""
        sub = self.nodes[self.nodes["type"] == type]
        idx = pd.Index(sub["key"].to_numpy()).get_indexer(pd.Index(np.asarray(keys)))
        return np.where(idx >= 0, sub["node"].to_numpy()[np.maximum(idx, 0)], -1)

    def to_sparse(self, *, weight: str | None = "weight", symmetric: bool = True):
        """The graph as a ``scipy.sparse.csr_matrix`` of shape (n_nodes, n_nodes); parallel edges summed."""
        w = None if weight is None else self.edges[weight].to_numpy(float)
        return edges_to_sparse(self.edges["src"].to_numpy(), self.edges["dst"].to_numpy(), w,
                               n=self.n_nodes, symmetric=symmetric)

    def to_igraph(self):
        """The graph as an undirected ``igraph.Graph`` with vertex attributes ``type``, ``key`` and edge
        attributes ``type``, ``weight``."""
        import igraph as ig

        g = ig.Graph(n=self.n_nodes, edges=np.c_[self.edges["src"].to_numpy(), self.edges["dst"].to_numpy()],
                     directed=False)
        g.vs["type"] = self.nodes["type"].astype(str).tolist()
        g.vs["key"] = self.nodes["key"].astype(str).tolist()
        g.es["type"] = self.edges["type"].astype(str).tolist()
        g.es["weight"] = self.edges["weight"].to_numpy(float).tolist()
        return g

    def neighbourhood(self, nodes, hops: int = 1) -> np.ndarray:
        """Sorted node indices within ``hops`` of ``nodes`` (the nodes included), by sparse BFS."""
        adj = self.to_sparse(weight=None)
        mask = np.zeros(self.n_nodes, dtype=bool)
        mask[np.asarray(nodes, dtype=np.int64)] = True
        frontier = mask.copy()
        for _ in range(int(hops)):
            reached = (adj.T @ frontier.astype(np.float32)) > 0
            frontier = reached & ~mask
            if not frontier.any():
                break
            mask |= frontier
        return np.flatnonzero(mask)


def build_hetero_graph(data, *, as_of=None, window=None, edge_types=None) -> HeteroGraph:
    """Build the heterogeneous graph from the contract tables present in ``data``.

    Parameters
    ----------
    data : fraudkit.io.Dataset or dict of str to DataFrame
        Contract tables; missing optional tables add no edges.
    as_of : timestamp-like, optional
        Keep only events at or before this time (point-in-time).
    window : timedelta-like, optional
        With ``as_of`` (or the latest event time), keep only events in ``(as_of - window, as_of]``.
    edge_types : iterable of str, optional
        Build only these edge types (default all :data:`EDGE_TYPES`); e.g. the shared-media types for
        strong-entity mining, which skips the large ``acted_on`` part.

    Returns
    -------
    HeteroGraph

    Examples
    --------
    >>> import pandas as pd
    >>> logins = pd.DataFrame({"login_id": [1, 2], "account_id": ["a", "b"], "device_id": ["d", "d"],
    ...                        "ip": ["10.0.0.1", "10.0.0.2"], "ts": pd.to_datetime(["2024-01-01"] * 2)})
    >>> g = build_hetero_graph({"logins": logins})
    >>> sorted(g.nodes["type"].unique())
    ['account', 'device', 'ip', 'ip24']
    """
    tables = {}
    for name, cols in _GRAPH_COLUMNS.items():
        t = _read(data, name, cols)
        if t is not None:
            tables[name] = t
    as_of_ts = None if as_of is None else pd.Timestamp(as_of)
    if window is not None and as_of_ts is None:
        times = [t["ts"].max() for t in tables.values() if "ts" in t.columns and len(t)]
        as_of_ts = max(times) if times else None
    start = None if window is None or as_of_ts is None else as_of_ts - pd.Timedelta(window)

    parts = []  # (src_type, src_keys, dst_type, dst_keys, edge_type, action, ts) with keys as pandas Series

    wanted = set(EDGE_TYPES if edge_types is None else edge_types)
    unknown = wanted - set(EDGE_TYPES)
    if unknown:
        raise ValueError(f"unknown edge type(s) {sorted(unknown)}; choose from {EDGE_TYPES}")
    nat = np.datetime64("NaT", "ns")

    def add(st, sk, dt, dk, et, ts, action=None):
        if et not in wanted:
            return
        sk, dk = pd.Series(sk).reset_index(drop=True), pd.Series(dk).reset_index(drop=True)
        ts = (_ns(ts) if ts is not None else np.full(len(sk), nat, "M8[ns]"))
        keep = dk.notna().to_numpy() & sk.notna().to_numpy()
        if as_of_ts is not None:
            keep &= ~(ts > as_of_ts.to_datetime64())
        if start is not None:
            keep &= ~(ts <= start.to_datetime64())
        act = (np.zeros(len(sk), np.int8) if action is None
               else pd.Categorical(np.asarray(action), categories=list(_ACTION_CODES)).codes.astype(np.int8) + 1)
        parts.append((st, sk[keep], dt, dk[keep], et, act[keep], ts[keep]))

    for name in ("logins", "interactions", "orders", "coupon_claims"):
        t = tables.get(name)
        if t is None:
            continue
        add("account", t["account_id"], "device", t["device_id"], "uses_device", t["ts"])
        add("account", t["account_id"], "ip", t["ip"], "uses_ip", t["ts"])
        if "in_subnet" in wanted:  # (ip24 of 38M event IPs is not free: only when the edge type is built)
            add("ip", t["ip"], "ip24", ip24(t["ip"]), "in_subnet", t["ts"])
    if "accounts" in tables:
        a = tables["accounts"]
        add("account", a["account_id"], "phone", a["phone"], "has_phone", a["registered_at"])
    if "bindings" in tables:
        b = tables["bindings"]
        add("account", b["account_id"], "binding", b["provider"].astype(str) + ":" + b["binding_id"].astype(str),
            "bound_to", b["bound_at"])
    if "interactions" in tables and "acted_on" in wanted:
        t = tables["interactions"]
        follow = (t["action"] == "follow").to_numpy()
        for sel, dtype in ((~follow, "note"), (follow, "account")):
            s = t[sel]
            add("account", s["account_id"], dtype, s["target_id"], "acted_on", s["ts"], action=s["action"])
    if "notes" in tables:
        n = tables["notes"]
        add("account", n["author_id"], "note", n["note_id"], "authored", n["created_at"])
    if "orders" in tables:
        o = tables["orders"]
        add("account", o["account_id"], "address", o["address"], "ships_to", o["ts"])
        add("account", o["account_id"], "phone", o["receiver_phone"], "receiver_phone", o["ts"])
        add("account", o["account_id"], "product", o["product_id"], "bought", o["ts"])
    if "products" in tables:
        p = tables["products"]
        add("product", p["product_id"], "merchant", p["merchant_id"], "sold_by", None)

    # one factorisation per node type over every table that mentions it: each part is factorised on its own
    # and only the (small) per-part uniques are factorised together, so the 38M ip strings of the large
    # scenario are hashed once and never concatenated; first-appearance order is kept
    keys_by_type = {t: [] for t in NODE_TYPES}
    for st, sk, dt, dk, *_ in parts:
        keys_by_type[st].append(sk)
        keys_by_type[dt].append(dk)
    node_frames, codes_by_type = [], {}
    offset = 0
    for t in NODE_TYPES:
        if not keys_by_type[t]:
            continue
        local = [pd.factorize(k, sort=False) for k in keys_by_type[t]]
        glob, u = pd.factorize(pd.concat([pd.Series(np.asarray(lu, dtype=object)) if lu.dtype == object
                                          else pd.Series(lu) for _, lu in local], ignore_index=True), sort=False)
        bounds = np.cumsum([0] + [len(lu) for _, lu in local])
        codes_by_type[t] = [glob[bounds[i] + lc].astype(np.int64) + offset for i, (lc, _) in enumerate(local)]
        node_frames.append(pd.DataFrame({"node": np.arange(offset, offset + len(u)), "type": t,
                                         "key": np.asarray(u)}))
        offset += len(u)
    nodes = (pd.concat(node_frames, ignore_index=True) if node_frames
             else pd.DataFrame({"node": np.array([], np.int64), "type": [], "key": []}))
    nodes["type"] = pd.Categorical(nodes["type"], categories=list(NODE_TYPES))

    used = {t: 0 for t in NODE_TYPES}
    n_act = len(_ACTION_CODES) + 1
    collapsed = []  # per part: distinct edge keys with first / last time and event count
    for st, sk, dt, dk, et, act, ts in parts:
        src = codes_by_type[st][used[st]]
        used[st] += 1
        dst = codes_by_type[dt][used[dt]]
        used[dt] += 1
        if not len(src):
            continue
        key = ((src * offset + dst) * len(EDGE_TYPES) + EDGE_TYPES.index(et)) * n_act + act.astype(np.int64)
        collapsed.append(_collapse(key, ts.astype("M8[ns]").view(np.int64)))
    if collapsed:
        # the same edge can come from several tables (a device in logins and in orders): collapse again
        key = np.concatenate([c[0] for c in collapsed])
        first = np.concatenate([c[1] for c in collapsed])
        last = np.concatenate([c[2] for c in collapsed])
        cnt = np.concatenate([c[3] for c in collapsed])
        del collapsed
        k, first, last, cnt = _collapse(key, first, last=last, weight=cnt)
        a = k % n_act
        k //= n_act
        ty = k % len(EDGE_TYPES)
        k //= len(EDGE_TYPES)
        edges = pd.DataFrame({"src": k // max(offset, 1), "dst": k % max(offset, 1),
                              "type": pd.Categorical.from_codes(ty, categories=list(EDGE_TYPES)),
                              "action": pd.Categorical.from_codes(a, categories=[""] + list(_ACTION_CODES)),
                              "ts": first.view("M8[ns]"), "ts_last": last.view("M8[ns]"),
                              "weight": cnt.astype(float)})
    else:
        edges = pd.DataFrame({"src": np.array([], np.int64), "dst": np.array([], np.int64),
                              "type": pd.Categorical([], categories=list(EDGE_TYPES)),
                              "action": pd.Categorical([], categories=[""] + list(_ACTION_CODES)),
                              "ts": pd.to_datetime([]), "ts_last": pd.to_datetime([]),
                              "weight": np.array([], float)})
    params = {"as_of": None if as_of_ts is None else str(as_of_ts), "window": None if window is None else str(window),
              "tables": sorted(tables), "edge_types": sorted(wanted)}
    return HeteroGraph(nodes=nodes, edges=edges, params=params)


def shared_entity_projection(frame, *, key="account_id", entity="device_id", time=None, window=None,
                             max_degree=200, weight="inverse_log_degree", k_neighbors=20, hot_window="1h",
                             min_shared=1) -> pd.DataFrame:
    """Account-account edges from sharing a medium (device, IP, phone, address, binding).

    Two accounts are tied by every entity both used; the tie's weight is the sum over shared entities of
    the entity's weight ``w(d)`` where ``d`` is its number of distinct accounts.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per use (a login, an order, ...). Rows whose ``entity`` is null tie nobody.
    key, entity : str
        Account column and medium column.
    time : str, optional
        Event-time column. Needed for ``window`` and for pairing hot entities.
    window : timedelta-like, optional
        If set, two accounts share an entity only if they used it within ``window`` of each other.
    max_degree : int, default=200
        Entities with more distinct accounts are *hot*: each event pairs only with the next
        ``k_neighbors`` events within ``window or hot_window`` (see the module docstring).
    weight : {"inverse_log_degree", "inverse_degree", "count"}, default="inverse_log_degree"
        Per-entity weight ``1/log(1+d)``, ``1/d`` or ``1``.
    k_neighbors : int, default=20
        Time-nearest neighbours per event on hot entities.
    hot_window : timedelta-like, default="1h"
        Pairing window on hot entities when ``window`` is not set.
    min_shared : int, default=1
        Keep pairs sharing at least this many entities.

    Returns
    -------
    pandas.DataFrame
        Columns ``src``, ``dst`` (account keys, ``src < dst`` by first appearance), ``weight``,
        ``n_shared``. ``attrs`` records the parameters and ``skipped_hot_entities``.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": ["a", "b", "c", "a"], "device_id": ["d1", "d1", "d1", "d2"]})
    >>> shared_entity_projection(f)[["src", "dst", "n_shared"]].values.tolist()
    [['a', 'b', 1], ['a', 'c', 1], ['b', 'c', 1]]
    """
    _require(frame, [key, entity] + ([time] if time else []), "shared_entity_projection")
    if weight not in _WEIGHTS:
        raise ValueError(f"weight must be one of {_WEIGHTS}, got {weight!r}")
    if window is not None and time is None:
        raise ValueError("window needs a time column; pass time='ts' (or the table's event-time column)")
    f = frame[[key, entity] + ([time] if time else [])]
    f = f[f[entity].notna() & f[key].notna()]
    acc_code, acc_keys = pd.factorize(f[key], sort=False)
    ent_code, _ = pd.factorize(f[entity], sort=False)
    t = None if time is None else _seconds(f[time])
    return _project(acc_code, acc_keys, ent_code, t, window=window, max_degree=max_degree, weight=weight,
                    k_neighbors=k_neighbors, hot_window=hot_window, min_count=min_shared, count_name="n_shared",
                    params={"key": key, "entity": entity, "time": time, "window": _str(window),
                            "max_degree": max_degree, "weight": weight, "k_neighbors": k_neighbors,
                            "hot_window": _str(hot_window), "min_shared": min_shared})


def coaction_projection(interactions, *, window="10min", actions=("like", "collect", "comment", "follow"),
                        max_degree=500, k_neighbors=10, popularity_weight=True, min_coactions=1,
                        key="account_id", target="target_id", time="ts") -> pd.DataFrame:
    """Account-account edges from acting on the same target within ``window`` of each other.

    A target acted on by ``d`` distinct accounts weighs ``1/log(1+d)`` per co-action when
    ``popularity_weight`` (co-liking a viral note says little; co-liking an obscure one says a lot).
    Targets with more than ``max_degree`` actors pair each event with at most ``k_neighbors`` later
    events inside ``window``. A follow's target (an author's account) and a note are distinct targets
    even when their keys coincide.

    Parameters
    ----------
    interactions : pandas.DataFrame
        The ``interactions`` contract table (``account_id``, ``action``, ``target_id``, ``ts``).
    window : timedelta-like, default="10min"
    actions : tuple of str
        Actions that count; ``view`` and ``share`` are left out by default.
    max_degree, k_neighbors : int
    popularity_weight : bool, default=True
    min_coactions : int, default=1
        Keep pairs that co-acted on at least this many distinct targets.

    Returns
    -------
    pandas.DataFrame
        Columns ``src``, ``dst``, ``weight``, ``n_coactions``.

    Examples
    --------
    >>> import pandas as pd
    >>> i = pd.DataFrame({"account_id": ["a", "b", "c"], "action": "like", "target_id": [7, 7, 7],
    ...                   "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-02 09:00"])})
    >>> coaction_projection(i)[["src", "dst", "n_coactions"]].values.tolist()
    [['a', 'b', 1]]
    """
    _require(interactions, [key, "action", target, time], "coaction_projection")
    f = interactions[interactions["action"].isin(list(actions))]
    f = f[f[target].notna()]
    ent_code = f.groupby([f["action"].eq("follow"), f[target]], sort=False, observed=True).ngroup().to_numpy()
    acc_code, acc_keys = pd.factorize(f[key], sort=False)
    return _project(acc_code, acc_keys, ent_code, _seconds(f[time]), window=window, max_degree=max_degree,
                    weight="inverse_log_degree" if popularity_weight else "count", k_neighbors=k_neighbors,
                    hot_window=window, min_count=min_coactions, count_name="n_coactions",
                    params={"window": _str(window), "actions": list(actions), "max_degree": max_degree,
                            "k_neighbors": k_neighbors, "popularity_weight": popularity_weight,
                            "min_coactions": min_coactions})


def edges_to_sparse(src, dst, weight=None, *, n=None, symmetric=True):
    """A ``scipy.sparse.csr_matrix`` from integer edge arrays; duplicates summed, symmetrised if asked.

    Examples
    --------
    >>> edges_to_sparse([0], [1], [2.0], n=3).toarray()[1].tolist()
    [2.0, 0.0, 0.0]
    """
    import scipy.sparse as sp

    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    w = np.ones(len(src)) if weight is None else np.asarray(weight, dtype=float)
    n = int(max(src.max(initial=-1), dst.max(initial=-1)) + 1) if n is None else int(n)
    if symmetric:
        src, dst, w = np.r_[src, dst], np.r_[dst, src], np.r_[w, w]
    m = sp.coo_matrix((w, (src, dst)), shape=(n, n)).tocsr()
    m.sum_duplicates()
    return m


def ip24(ips) -> pd.Series:
    """The /24 subnet (``a.b.c``) of IPv4 strings; null stays null.

    Examples
    --------
    >>> ip24(["10.1.2.3", None]).tolist()
    ['10.1.2', None]
    """
    s = pd.Series(ips, dtype=object).reset_index(drop=True)
    code, uniq = pd.factorize(s, sort=False)
    sub = pd.Series(np.asarray(uniq, dtype=object)).str.rsplit(".", n=1).str[0].to_numpy(dtype=object)
    out = np.full(len(s), None, dtype=object)
    out[code >= 0] = sub[code[code >= 0]]
    return pd.Series(out, dtype=object)


# --- private helpers ----------------------------------------------------------

_GRAPH_COLUMNS = {
    "accounts": ["account_id", "registered_at", "phone"],
    "bindings": ["account_id", "provider", "binding_id", "bound_at"],
    "logins": ["account_id", "device_id", "ip", "ts"],
    "interactions": ["account_id", "device_id", "ip", "action", "target_id", "ts"],
    "notes": ["note_id", "author_id", "created_at"],
    "orders": ["account_id", "device_id", "ip", "product_id", "address", "receiver_phone", "ts"],
    "coupon_claims": ["account_id", "device_id", "ip", "ts"],
    "products": ["product_id", "merchant_id"],
}


def _read(data, name, columns):
    """A table from a Dataset or a dict, restricted to ``columns``; None when absent."""
    if isinstance(data, dict):
        t = data.get(name)
        if t is None:
            return None
        _require(t, columns, name)
        return t[columns]
    if not data.has(name):
        return None
    return data.to_pandas(name, columns=columns)


def _require(frame, columns, where):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingInputError(f"{where}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}. "
                                f"Fix: pass a frame with those columns (see fraudkit.contract).")


def _ns(s) -> np.ndarray:
    """datetime64[ns] array of a time column, without re-parsing columns that already are datetimes."""
    s = pd.Series(s)
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s)
    return s.to_numpy("datetime64[ns]")


def _seconds(s) -> np.ndarray:
    return pd.to_datetime(pd.Series(s)).to_numpy("datetime64[s]").astype(np.int64)


def _str(x):
    return None if x is None else str(x)


def _entity_weight(d, weight):
    if weight == "inverse_log_degree":
        return 1.0 / np.log1p(d)
    if weight == "inverse_degree":
        return 1.0 / d
    return np.ones_like(d, dtype=float)


def _collapse(key, first, *, last=None, weight=None):
    """Distinct ``key`` (sorted) with min ``first``, max ``last`` (NaT ignored by min) and summed ``weight``.

    Times are int64 nanoseconds with NaT as the int64 minimum; ``weight`` defaults to one per row.
    """
    nat = np.iinfo(np.int64).min
    last = first if last is None else last
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    t_min = first[order]
    t_min = np.where(t_min == nat, np.iinfo(np.int64).max, t_min)
    lo = np.minimum.reduceat(t_min, starts)
    lo = np.where(lo == np.iinfo(np.int64).max, nat, lo)
    hi = np.maximum.reduceat(last[order], starts)
    w = (np.diff(np.r_[starts, len(key)]) if weight is None
         else np.add.reduceat(np.asarray(weight)[order], starts))
    return key[starts], lo, hi, w.astype(np.int64)


def _pair_offsets(counts):
    """For each row i with counts[i] partners, the positions (row, k) with k = 1..counts[i]."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - np.repeat(starts, counts) + 1
    return rows, k


def _project(acc, acc_keys, ent, t, *, window, max_degree, weight, k_neighbors, hot_window, min_count,
             count_name, params, chunk_pairs=20_000_000):
    acc = np.asarray(acc, dtype=np.int64)
    ent = np.asarray(ent, dtype=np.int64)
    if not len(acc):  # nothing shared (e.g. the entity column is all null)
        out = pd.DataFrame({"src": acc_keys[:0], "dst": acc_keys[:0], "weight": np.array([], float),
                            count_name: np.array([], np.int64)})
        out.attrs.update(params)
        out.attrs.update({"skipped_hot_entities": 0, "n_hot_entities": 0})
        return out
    n_ent = int(ent.max(initial=-1) + 1)
    # degree = distinct accounts per entity
    pair_code = np.unique(ent * max(len(acc_keys), 1) + acc)
    deg = np.bincount(pair_code // max(len(acc_keys), 1), minlength=n_ent)
    hot = deg > max_degree
    skipped = 0
    if t is None:
        skipped = int(hot.sum())
        keep = ~hot[ent]
        acc, ent = acc[keep], ent[keep]
        # one row per (entity, account); time irrelevant
        code = np.unique(ent * max(len(acc_keys), 1) + acc)
        ent, acc = code // max(len(acc_keys), 1), code % max(len(acc_keys), 1)
        t = np.zeros(len(ent), dtype=np.int64)
        win = np.full(n_ent, np.iinfo(np.int64).max // 4)
    else:
        t = np.asarray(t, dtype=np.int64)
        big = np.iinfo(np.int64).max // 4
        base = big if window is None else int(pd.Timedelta(window).total_seconds())
        hw = int(pd.Timedelta(window if window is not None else hot_window).total_seconds())
        win = np.where(hot, hw, base)
        order = np.lexsort((acc, t, ent))
        ent, t, acc = ent[order], t[order], acc[order]
        if window is None:
            # small entities: only the first use per account matters
            small_dup = ~hot[ent] & ~_first_per_group(ent, acc)
            keep = ~small_dup
            ent, t, acc = ent[keep], t[keep], acc[keep]
        # collapse consecutive events of one account on one entity (a burst counts once)
        keep = np.r_[True, (ent[1:] != ent[:-1]) | (acc[1:] != acc[:-1])]
        ent, t, acc = ent[keep], t[keep], acc[keep]
    w_ent = _entity_weight(deg.astype(float), weight)
    n_acc = max(len(acc_keys), 1)
    partials = []
    for i, j in _time_pairs(ent, t, win[ent], hot[ent], k_neighbors, chunk_pairs=chunk_pairs):
        a, b = acc[i], acc[j]
        ok = a != b
        a, b, e = np.minimum(a, b)[ok], np.maximum(a, b)[ok], ent[i][ok]
        # each (entity, pair) counts once
        partials.append(pd.DataFrame({"p": a * n_acc + b, "e": e}).drop_duplicates())
    if partials:
        allp = pd.concat(partials, ignore_index=True).drop_duplicates()
        allp["w"] = w_ent[allp["e"].to_numpy()]
        agg = allp.groupby("p", sort=True).agg(weight=("w", "sum"), n=("e", "size"))
        agg = agg[agg["n"] >= min_count]
        p = agg.index.to_numpy(np.int64)
        out = pd.DataFrame({"src": acc_keys[p // n_acc], "dst": acc_keys[p % n_acc],
                            "weight": agg["weight"].to_numpy(float), count_name: agg["n"].to_numpy(np.int64)})
    else:
        out = pd.DataFrame({"src": acc_keys[:0], "dst": acc_keys[:0], "weight": np.array([], float),
                            count_name: np.array([], np.int64)})
    out = out.reset_index(drop=True)
    out.attrs.update(params)
    out.attrs["skipped_hot_entities"] = skipped
    out.attrs["n_hot_entities"] = int(hot.sum())
    return out


def _time_pairs(ent, t, row_window, row_hot, k_neighbors, *, chunk_pairs=20_000_000):
    """Yield chunks ``(i, j)`` of row pairs ``i < j`` of the same entity with ``t[j] - t[i] <= row_window[i]``.

    Rows must be sorted by ``(ent, t)``. On hot rows only the next ``k_neighbors`` partners are kept
    (time-nearest first). Chunks hold at most about ``chunk_pairs`` pairs, so memory stays bounded.
    """
    if not len(ent):
        return
    t0 = int(t.min())
    tt = t - t0
    span = int(tt.max()) + 1
    w = np.minimum(np.asarray(row_window, dtype=np.int64), span)
    stride = span + int(w.max(initial=0)) + 1
    comp = ent.astype(np.int64) * stride + tt
    end = np.searchsorted(comp, comp + w, side="right")
    counts = end - np.arange(len(comp)) - 1
    counts = np.where(row_hot, np.minimum(counts, k_neighbors), counts)
    csum = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = csum[lo - 1] if lo else 0
        hi = int(np.searchsorted(csum, base + chunk_pairs, side="right"))
        hi = min(max(hi, lo + 1), len(counts))
        rows, k = _pair_offsets(counts[lo:hi])
        i = rows + lo
        yield i, i + k
        lo = hi


def _first_per_group(ent, acc):
    """Mask of the first row of each (ent, acc) in an array sorted by (ent, t)."""
    code = ent * (int(acc.max(initial=0)) + 1) + acc
    _, first_idx = np.unique(code, return_index=True)
    m = np.zeros(len(code), dtype=bool)
    m[first_idx] = True
    return m
