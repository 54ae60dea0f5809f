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

Which entities are hot is best decided from the data (:func:`entity_usage`, :func:`hot_entities`): an
entity is hot when its number of accounts lies beyond Tukey's far-out fence of its type's degree
distribution, and *steady* (carrier-NAT-like: many accounts whose first uses spread over many hours and
days, never a burst) when it is also used the way shared infrastructure is. A steady entity is evidence
of nothing and is dropped from the projection (``drop=``); another hot entity is paired by time only
(``hot=``). Both functions return a table that says, entity by entity, what was decided and why.

Pairs are generated with numpy index arithmetic and aggregated by sorting
one int64 ``(pair, entity)`` code; there is no Python loop over rows,
entities or nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudkit.capability.ipranges import ip24, ip24_sql
from fraudkit.data.contract import TABLES
from fraudkit.data.dataset import canonical_sort_keys, read_table, sort_canonical
from fraudkit.data.sqlsource import distinct_days, distinct_hours, open_source
from fraudkit.errors import MissingInputError

__all__ = [
    "NODE_TYPES",
    "EDGE_TYPES",
    "HeteroGraph",
    "build_hetero_graph",
    "shared_entity_projection",
    "EntityEvents",
    "entity_events",
    "project_entity_events",
    "shared_entity_events",
    "entity_usage",
    "hot_entities",
    "hot_entities_of",
    "degree_threshold",
    "HOT_COLUMNS",
    "coaction_projection",
    "edges_to_sparse",
    "row_parts",
    "parallel_matvec",
    "usable_cores",
    "thread_map",
    "parts_for",
    "value_runs",
    "MATVEC_PART_NNZ",
    "group_sum",
    "sort_order",
    "unique_int",
    "time_pairs",
    "require_columns",
    "to_seconds",
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
        keys = np.asarray(keys)
        if not len(sub):  # no node of this type (e.g. a data set without devices or IPs)
            return np.full(len(keys), -1, dtype=np.int64)
        idx = pd.Index(sub["key"].to_numpy()).get_indexer(pd.Index(keys))
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


def build_hetero_graph(data, *, as_of=None, window=None, edge_types=None, around=None) -> HeteroGraph:
    """Build the heterogeneous graph from the contract tables present in ``data``.

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
        Contract tables; missing optional tables add no edges.
    as_of : timestamp-like, optional
        Keep only events at or before this time (point-in-time).
    window : timedelta-like, optional
        With ``as_of`` (or the latest event time), keep only events in ``(as_of - window, as_of]``.
    edge_types : iterable of str, optional
        Build only these edge types (default all :data:`EDGE_TYPES`); e.g. the shared-media types for
        strong-entity mining, which skips the large ``acted_on`` part.
    around : array-like of account keys, optional
        Keep only what these accounts touched: each edge from an account whose other end (device, IP,
        address, ...) at least one of them used, so every account that shares a medium with them is kept.
        Strong-entity mining and explanations of flagged accounts need nothing else. Only for edge types
        whose source is an account (not ``in_subnet``, ``sold_by``).

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
    wanted = set(EDGE_TYPES if edge_types is None else edge_types)
    unknown = wanted - set(EDGE_TYPES)
    if unknown:
        raise ValueError(f"unknown edge type(s) {sorted(unknown)}; choose from {EDGE_TYPES}")
    if around is not None and wanted & {"in_subnet", "sold_by"}:
        raise ValueError("around= keeps edges from accounts only; leave out in_subnet and sold_by "
                         "(pass edge_types=...)")
    if not isinstance(data, dict):
        # a Dataset: each edge type is aggregated to distinct edges in DuckDB (38M events -> 8M edges)
        parts, table_names, as_of_ts = _sql_parts(data, wanted, as_of, window, around)
        return _assemble(parts, wanted, as_of_ts, window, table_names)
    around_keys = None if around is None else pd.Index(pd.unique(np.asarray(around)))
    tables = {}
    for name, cols in _GRAPH_COLUMNS.items():
        t = read_table(data, name, cols, required=True)
        if t is not None:
            tables[name] = t
    as_of_ts = None if as_of is None else pd.Timestamp(as_of)
    if window is not None and as_of_ts is None:
        times = [t["ts"].max() for t in tables.values() if "ts" in t.columns and len(t)]
        as_of_ts = max(times) if times else None
    start = None if window is None or as_of_ts is None else as_of_ts - pd.Timedelta(window)

    # (src_type, src_keys, dst_type, dst_keys, edge_type, action, first, last, count): keys as pandas Series,
    # times int64 ns (NaT = int64 min), count None for one event per row
    parts = []
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
        t_ns = ts[keep].astype("M8[ns]").view(np.int64)
        parts.append((st, sk[keep], dt, dk[keep], et, act[keep], t_ns, t_ns, None))

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

    if around_keys is not None:
        # media of each node type that one of the accounts used, in any table; then every edge to them
        used = {}
        for st, sk, dt, dk, *_ in parts:
            used.setdefault(dt, []).append(dk[sk.isin(around_keys).to_numpy()])
        used = {t: pd.Index(pd.unique(pd.concat(v, ignore_index=True))) for t, v in used.items()}
        kept = []
        for st, sk, dt, dk, et, act, first, last, cnt in parts:
            m = dk.isin(used[dt]).to_numpy()
            kept.append((st, sk[m].reset_index(drop=True), dt, dk[m].reset_index(drop=True), et, act[m], first[m],
                         last[m], None if cnt is None else cnt[m]))
        parts = kept
    return _assemble(parts, wanted, as_of_ts, window, sorted(tables))


def _assemble(parts, wanted, as_of_ts, window, table_names):
    """Factorise node keys per type and collapse edge parts into a :class:`HeteroGraph`."""
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
    for st, sk, dt, dk, et, act, first, last, cnt in parts:
        src = codes_by_type[st][used[st]]
        used[st] += 1
        dst = codes_by_type[dt][used[dt]]
        used[dt] += 1
        if not len(src):
            continue
        key = ((src * offset + dst) * len(EDGE_TYPES) + EDGE_TYPES.index(et)) * n_act + act.astype(np.int64)
        collapsed.append(_collapse(key, first, last=last, weight=cnt))
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
              "tables": sorted(table_names), "edge_types": sorted(wanted)}
    return HeteroGraph(nodes=nodes, edges=edges, params=params)


def shared_entity_projection(frame, *, key="account_id", entity="device_id", time=None, window=None,
                             max_degree=200, weight="inverse_log_degree", k_neighbors=20, hot_window="1h",
                             min_shared=1, hot=None, drop=None) -> pd.DataFrame:
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
    hot : array-like of entity keys, optional
        More hot entities, decided elsewhere (e.g. :func:`hot_entities`); the ``max_degree`` cap still
        applies. Keys are matched as text.
    drop : array-like of entity keys, optional
        Entities that tie nobody (e.g. steady, carrier-NAT-like IPs from :func:`hot_entities`), as text.

    Returns
    -------
    pandas.DataFrame
        Columns ``src``, ``dst`` (account keys, ``src < dst`` by first appearance), ``weight``,
        ``n_shared``. ``attrs`` records the parameters, ``skipped_hot_entities``, ``n_hot_entities`` and
        ``n_dropped_entities``.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": ["a", "b", "c", "a"], "device_id": ["d1", "d1", "d1", "d2"]})
    >>> shared_entity_projection(f)[["src", "dst", "n_shared"]].values.tolist()
    [['a', 'b', 1], ['a', 'c', 1], ['b', 'c', 1]]
    """
    require_columns(frame, [key, entity] + ([time] if time else []), "shared_entity_projection")
    if weight not in _WEIGHTS:
        raise ValueError(f"weight must be one of {_WEIGHTS}, got {weight!r}")
    if window is not None and time is None:
        raise ValueError("window needs a time column; pass time='ts' (or the table's event-time column)")
    # the rows with both keys, column by column, never a copy of the frame (the large world's association
    # network projects 38M usage rows: each copy of them was 0.9 GB)
    keep = (frame[entity].notna() & frame[key].notna()).to_numpy()
    n_dropped = 0
    if drop is not None and len(drop):
        code, uniq = pd.factorize(frame[entity], sort=False)
        gone = np.asarray(_as_text(uniq).isin(_as_text(drop)), dtype=bool)
        seen = np.zeros(len(uniq), dtype=bool)
        seen[code[keep]] = True
        n_dropped = int((gone & seen).sum())
        keep &= ~np.where(code >= 0, gone[np.maximum(code, 0)], False)
        del code, seen

    def column(name):
        return frame[name] if keep.all() else frame[name][keep]

    acc_code, acc_keys = pd.factorize(column(key), sort=False)
    ent_code, ent_keys = pd.factorize(column(entity), sort=False)
    hot_mask = None if hot is None else _as_text(ent_keys).isin(_as_text(hot))
    t = None if time is None else to_seconds(column(time))
    out = _project(acc_code, acc_keys, ent_code, t, window=window, max_degree=max_degree, weight=weight,
                   k_neighbors=k_neighbors, hot_window=hot_window, min_count=min_shared, count_name="n_shared",
                   params={"key": key, "entity": entity, "time": time, "window": _str(window),
                           "max_degree": max_degree, "weight": weight, "k_neighbors": k_neighbors,
                           "hot_window": _str(hot_window), "min_shared": min_shared,
                           "hot": f"more than {max_degree} accounts" + (" or given" if hot is not None else "")},
                   hot_mask=hot_mask)
    out.attrs["n_dropped_entities"] = n_dropped
    return out


@dataclass(frozen=True)
class EntityEvents:
    """Uses of a medium reduced to what :func:`shared_entity_projection` reads, as integer codes.

    ``account`` and ``entity`` number the accounts and media by first appearance in the rows with both set;
    ``seconds`` is each use's time in whole seconds. Only the first use of each run of one account on one
    entity in ``(entity, seconds, account)`` order is kept (the projection counts a burst once), so the rows
    are far fewer than the uses: the large scenario's 38M device uses shrink to a few million.

    Attributes
    ----------
    account_keys : numpy.ndarray
        Account key of each account code, in first-appearance order (every account, not only those kept).
    account, entity, seconds : numpy.ndarray of int64
        One entry per kept use.
    """

    account_keys: np.ndarray
    account: np.ndarray
    entity: np.ndarray
    seconds: np.ndarray


def entity_events(frame, *, key="account_id", entity="device_id", time="ts") -> EntityEvents:
    """The :class:`EntityEvents` of one use per row of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per use; rows whose ``key`` or ``entity`` is null are left out, as the projection leaves them.
    key, entity, time : str

    Returns
    -------
    EntityEvents

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": [7, 7, 8], "device_id": ["d", "d", "d"],
    ...                   "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:09"])})
    >>> entity_events(f).account.tolist()
    [0, 1]
    """
    require_columns(frame, [key, entity, time], "entity_events")
    keep = (frame[entity].notna() & frame[key].notna()).to_numpy()
    acc, acc_keys = pd.factorize(frame[key][keep], sort=False)
    ent, _ = pd.factorize(frame[entity][keep], sort=False)
    t = to_seconds(frame[time][keep])
    acc, ent = acc.astype(np.int64), ent.astype(np.int64)
    order = sort_order(ent, t, acc)
    acc, ent, t = acc[order], ent[order], t[order]
    first = np.r_[True, (ent[1:] != ent[:-1]) | (acc[1:] != acc[:-1])] if len(acc) else np.zeros(0, bool)
    return EntityEvents(np.asarray(acc_keys), acc[first], ent[first], t[first])


def project_entity_events(events, *, window=None, max_degree=200, weight="inverse_log_degree", k_neighbors=20,
                          hot_window="1h", min_shared=1) -> pd.DataFrame:
    """:func:`shared_entity_projection` of uses given as :class:`EntityEvents`, e.g. reduced in SQL.

    The same edges, orientation, row order and weights, to the last bit, as the projection of the rows the
    events were made from (:func:`entity_events`); the parameters are those of the projection.

    Returns
    -------
    pandas.DataFrame
        ``src, dst, weight, n_shared``, as :func:`shared_entity_projection`.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": [7, 8, 9], "device_id": ["d", "d", "d"],
    ...                   "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-03 00:00"])})
    >>> project_entity_events(entity_events(f), window="1D")[["src", "dst"]].values.tolist()
    [[7, 8]]
    """
    if weight not in _WEIGHTS:
        raise ValueError(f"weight must be one of {_WEIGHTS}, got {weight!r}")
    return _project(events.account, events.account_keys, events.entity, events.seconds, window=window,
                    max_degree=max_degree, weight=weight, k_neighbors=k_neighbors, hot_window=hot_window,
                    min_count=min_shared, count_name="n_shared",
                    params={"key": "account", "entity": "entity", "time": "seconds", "window": _str(window),
                            "max_degree": max_degree, "weight": weight, "k_neighbors": k_neighbors,
                            "hot_window": _str(hot_window), "min_shared": min_shared,
                            "hot": f"more than {max_degree} accounts"})


def shared_entity_events(data, *, entity="device_id", tables=("logins", "interactions", "orders", "coupon_claims"),
                         key="account_id", time="ts", max_degree=200, hot=None, drop=None) -> pd.DataFrame:
    """The few events that decide :func:`shared_entity_projection` (``window=None``), computed in DuckDB.

    Without a window, an entity used by at most ``max_degree`` accounts ties all of them whatever the
    times, so one row per ``(account, entity)`` (its first use) is enough; a hot entity is paired by time,
    so its distinct ``(account, entity, time)`` events are kept. Rows come grouped by account in the order
    of each account's first row in ``tables`` (table order, then time order), so ``shared_entity_projection``
    of the result gives the same edges, orientation and row order as ``shared_entity_projection`` of all
    events concatenated (weights equal up to float rounding): on the ``large`` scenario 38M device events
    shrink to 1.6M rows and only their account column passes through pandas.

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
    entity : str
        Medium column, read from every table of ``tables`` that has it (tables or columns that are absent
        are skipped).
    tables : tuple of str
    key, time : str
    max_degree : int, default=200
        As in :func:`shared_entity_projection`; must be the value passed there.
    hot, drop : array-like of entity keys, optional
        As in :func:`shared_entity_projection` (``hot`` adds to the ``max_degree`` rule; ``drop`` leaves
        those entities out); must be the values passed there.

    Returns
    -------
    pandas.DataFrame
        Columns ``key``, ``entity``, ``time``.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": ["a", "a", "b"], "device_id": ["d", "d", "d"],
    ...                   "ts": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03"])})
    >>> shared_entity_events({"logins": f}).values.tolist()[0][:2]
    ['a', 'd']
    """

    first_use = _first_use_order(data, tables, key, entity)
    with open_source(data) as src:
        selects = []
        for name in tables:
            if not src.has(name) or {key, entity, time} & set(src.missing_columns.get(name, ())):
                continue
            selects.append((getattr(src.t, name), (src.engine.columns(getattr(src.t, name))[entity],)))
        if not selects:
            return pd.DataFrame({key: [], entity: [], time: pd.to_datetime([])})
        same_type = len({r[0] if r else None for _, r in selects} - {None}) <= 1
        ent = entity if same_type else f"CAST({entity} AS VARCHAR)"
        ev = " UNION ALL ".join(f"SELECT {key} AS k, {ent} AS e, CAST({time} AS TIMESTAMP) AS t FROM {v} "
                                f"WHERE {key} IS NOT NULL AND {entity} IS NOT NULL" for v, _ in selects)
        md = int(max_degree)
        given = {}
        for name, keys in (("hot", hot), ("drop", drop)):
            if keys is not None:
                given[name] = src.register(f"{name}_keys", pd.DataFrame({"e": pd.Series(np.asarray(keys, dtype=object))
                                                                         .astype(str).to_numpy(dtype=object)}))
        hot_sql = f"SELECT e FROM first_use GROUP BY e HAVING count(*) > {md}"
        if "hot" in given:
            hot_sql += f" UNION SELECT DISTINCT e FROM first_use WHERE CAST(e AS VARCHAR) IN (SELECT e FROM {given['hot']})"
        keep = ("" if "drop" not in given
                else f"WHERE CAST(e AS VARCHAR) NOT IN (SELECT e FROM {given['drop']})")
        sql = f"""
            WITH ev AS (SELECT * FROM ({ev}) {keep}),
            first_use AS (SELECT k, e, min(t) AS t FROM ev GROUP BY k, e),
            hot AS ({hot_sql})
            SELECT k, e, t FROM first_use WHERE e NOT IN (SELECT e FROM hot)
            UNION ALL
            SELECT DISTINCT k, e, t FROM ev WHERE e IN (SELECT e FROM hot)
            ORDER BY e, t, k"""
        out = src.df(sql)
        for name in given.values():
            src.unregister(name)
    out.columns = [key, entity, time]
    rank = pd.Index(first_use).get_indexer(out[key])
    return out.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)


HOT_COLUMNS = ("entity_type", "entity_id", "n_accounts", "n_events", "n_days", "n_hours", "peak_hour_share",
               "linked_share", "degree_threshold", "hot", "steady", "action", "reason")
"""Columns of :func:`hot_entities` (the ``hot_entities`` artifact of a run)."""


def entity_usage(data, *, entity="ip", tables=("logins",), key="account_id", time="ts",
                 link="device_id") -> pd.DataFrame:
    """How each shared entity is used: accounts, events, active days and hours, burstiness, relatedness (DuckDB).

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
        Contract tables (a frame may carry an extra column to use as ``entity``).
    entity : str
        Medium column, read from every table of ``tables`` that has it.
    tables : tuple of str
    key, time : str
    link : str or None, default="device_id"
        A second medium that relates accounts (read from the same tables): ``linked_share`` is the share of
        the entity's accounts that share one with another of its accounts (a ring on one IP also shares
        devices; strangers behind one carrier NAT IP do not). None, or tables without it: NaN.

    Returns
    -------
    pandas.DataFrame
        One row per entity used by two or more accounts, sorted by entity: ``entity_id``, ``n_accounts``
        (distinct accounts), ``n_events``, ``n_days`` (distinct calendar days), ``n_hours`` (distinct hours of
        the day, 0-23) and ``peak_hour_share`` (the largest share of its accounts whose first use falls in
        one clock hour: near 1 for a ring switching accounts in a burst, small for a carrier NAT IP whose
        users arrive all day) and ``linked_share``. ``attrs["n_entities"]`` counts every entity, shared or not.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": ["a", "b", "c", "a"], "ip": ["1.1.1.1"] * 3 + ["2.2.2.2"],
    ...                   "ts": pd.to_datetime(["2024-01-01 08:00", "2024-01-01 08:10", "2024-01-02 20:00",
    ...                                         "2024-01-01 09:00"])})
    >>> entity_usage({"logins": f}, link=None)[["entity_id", "n_accounts", "n_days", "n_hours",
    ...                                         "peak_hour_share"]].values.tolist()
    [['1.1.1.1', 3, 2, 2, 0.6666666666666666]]
    """
    return _memoised(data, ("entity_usage", entity, tuple(tables), key, time, link),
                     lambda: _entity_usage(data, entity=entity, tables=tables, key=key, time=time, link=link))


def _memoised(data, memo_key, compute) -> pd.DataFrame:
    """``compute()``, kept in the memo of ``data`` (a Dataset: the list weights and the graph stage of one run,
    the closed loop's windows, ask the same questions) under ``memo_key``; a copy either way."""
    memo = getattr(data, "memo", None)
    if memo is not None and memo_key in memo:
        return memo[memo_key].copy()
    out = compute()
    if memo is not None:
        memo[memo_key] = out.copy()
    return out


def _entity_usage(data, *, entity, tables, key, time, link, above=None) -> pd.DataFrame:
    """:func:`entity_usage`; with ``above`` (a function of the shared entities' account counts giving a degree
    threshold), only the entities with more accounts than it get a row, and ``attrs["degrees"]`` holds every
    shared entity's account count (see :func:`hot_entities_of`)."""
    cols = ["entity_id", "n_accounts", "n_events", "n_days", "n_hours", "peak_hour_share", "linked_share"]
    with open_source(data) as src:
        selects, linked, types = [], link is not None, []
        for name in tables:
            if not src.has(name):
                continue
            have = src.engine.columns(getattr(src.t, name))
            if {key, entity, time} <= set(have):
                selects.append(getattr(src.t, name))
                linked &= link in have
                types.append((have[entity], have.get(link)))
        if not selects:
            out = pd.DataFrame({c: pd.Series(dtype=object if c == "entity_id" else float) for c in cols})
            out.attrs.update({"n_entities": 0})
            if above is not None:
                out.attrs["degrees"] = np.zeros(0, dtype=np.int64)
            return out
        # entities and link media keep their own type where every table has the same one (38M device ids
        # grouped as integers, not as text); the entity is reported, and ordered, as text either way
        e_expr = entity if _one_exact_type(t for t, _ in types) else f"CAST({entity} AS VARCHAR)"
        d_expr = ("CAST(NULL AS VARCHAR)" if not linked
                  else link if _one_exact_type(t for _, t in types) else f"CAST({link} AS VARCHAR)")
        ev = " UNION ALL ".join(f"SELECT {key} AS k, {e_expr} AS e, CAST({time} AS TIMESTAMP) AS t, "
                                f"{d_expr} AS d FROM {v} WHERE {key} IS NOT NULL AND {entity} IS NOT NULL"
                                for v in selects)
        ev_tbl = src.temp_table(f"usage_{entity}", ev)
        # one (entity, account) aggregate (first use, events) carries the counts; distinct days and hours are
        # counted over the events of shared entities only (most entities have one account); an account is
        # linked when another account of the entity uses one of its link media (ed: media two or more of the
        # entity's accounts use), without pairing the accounts of a shared medium
        ek_tbl = src.temp_table(f"usage_ek_{entity}",
                                f"SELECT e, k, min(t) AS t, count(*) AS n FROM {ev_tbl} GROUP BY e, k")
        n_entities = int(src.scalar(f"SELECT count(DISTINCT e) FROM {ek_tbl}"))
        events, linking = ev_tbl, f"SELECT DISTINCT k, d FROM {ev_tbl} WHERE d IS NOT NULL"
        shared = (f"SELECT e, count(*) AS n_accounts, CAST(sum(n) AS BIGINT) AS n_events FROM {ek_tbl} "
                  "GROUP BY e HAVING count(*) >= 2")
        if above is not None:
            # only the entities above the threshold read their events: their days, hours and the devices of
            # their accounts (on large's 38M IP uses 940 entities above it, 0.7M of their events)
            sa_tbl = src.temp_table(f"usage_sa_{entity}", shared)
            degrees = np.sort(src.df(f"SELECT n_accounts FROM {sa_tbl}")["n_accounts"].to_numpy(np.int64))
            shared = f"SELECT * FROM {sa_tbl} WHERE n_accounts > {float(above(degrees))!r}"
            events = f"(SELECT * FROM {ev_tbl} WHERE e IN (SELECT e FROM sa))"
            linking += " AND k IN (SELECT k FROM fu)"
        # days and hours counted as bit masks (distinct_days); dh and kd over every entity and account (without
        # a threshold), as only their rows of shared entities (st) and of their accounts (fu) are joined on: on
        # large's 38M IP uses, the filters to those took longer than the rows they left out
        out = src.df(f"""
            WITH sa AS ({shared}),
            dh AS (SELECT e, {distinct_days("t", src.day_range(ev_tbl, "t"))} AS n_days,
                          {distinct_hours("t")} AS n_hours
                   FROM {events} ev GROUP BY e),
            st AS (SELECT sa.e, sa.n_accounts, sa.n_events, dh.n_days, dh.n_hours FROM sa JOIN dh ON sa.e = dh.e),
            fu AS (SELECT e, k, t FROM {ek_tbl} WHERE e IN (SELECT e FROM st)),
            pk AS (SELECT e, max(c) AS peak FROM (SELECT e, date_trunc('hour', t) AS h, count(*) AS c FROM fu
                                                  GROUP BY e, h) GROUP BY e),
            kd AS ({linking}),
            ed AS (SELECT fu.e, kd.d FROM fu JOIN kd ON fu.k = kd.k GROUP BY fu.e, kd.d HAVING count(*) >= 2),
            lk AS (SELECT fu.e, count(DISTINCT fu.k) AS n_linked FROM fu JOIN kd ON fu.k = kd.k
                   JOIN ed ON ed.e = fu.e AND ed.d = kd.d GROUP BY fu.e)
            SELECT CAST(st.e AS VARCHAR) AS entity_id, st.n_accounts, st.n_events, st.n_days, st.n_hours,
                   CAST(pk.peak AS DOUBLE) / st.n_accounts AS peak_hour_share,
                   {"CAST(coalesce(lk.n_linked, 0) AS DOUBLE) / st.n_accounts" if linked else "CAST(NULL AS DOUBLE)"}
                       AS linked_share
            FROM st JOIN pk ON st.e = pk.e LEFT JOIN lk ON st.e = lk.e ORDER BY entity_id""")
    for c in ("n_accounts", "n_events", "n_days", "n_hours"):
        out[c] = out[c].astype(np.int64)
    out = out[cols]
    out.attrs.update({"n_entities": n_entities})
    if above is not None:
        out.attrs["degrees"] = degrees
    return out


_STEADY_MIN_DAYS = 3
"""Default ``steady_min_days`` of :func:`hot_entities` (which :func:`hot_entities_of` also reads)."""


def hot_entities(usage, *, entity_type, fence=3.0, min_accounts=5, steady=True, steady_min_factor=2.0,
                 steady_min_hours=10,
                 steady_min_days=_STEADY_MIN_DAYS, steady_max_peak_share=0.25, steady_max_linked_share=0.2,
                 mobile_prefixes=(), degrees=None, span=None) -> pd.DataFrame:
    """Decide which shared entities are hot, from the data, and say why.

    The degree threshold is Tukey's far-out fence of the type's degree distribution over its shared
    entities (two or more accounts): ``Q3 + fence * (Q3 - Q1)``, at least ``min_accounts``; an entity with
    more accounts is *hot*. A hot entity is also *steady* (carrier-NAT-like: a mobile carrier's NAT exit, a
    campus or office gateway, a public hotspot) when it is used the way shared infrastructure is used: by
    many accounts (more than ``steady_min_factor`` times the threshold), unrelated (at most ``steady_max_linked_share`` of them share a device with another of its
    accounts; a ring's studio IP fails this), spread over time (first uses in no single clock hour above
    ``steady_max_peak_share`` of its accounts, activity in at least ``steady_min_hours`` hours of the day
    and on ``steady_min_days`` days, or the data's span when shorter). IPs in ``mobile_prefixes`` (known carrier ranges, if the analyst has them) need only the
    spread over the day. Steady entities are ``"dropped"`` (they tie nobody); other hot entities are
    ``"time_paired"`` (only accounts using them close in time are tied, see the module docstring).

    Parameters
    ----------
    usage : pandas.DataFrame
        :func:`entity_usage` of one entity type.
    entity_type : str
        Written in the ``entity_type`` column (``ip``, ``device``, ``address``...).
    fence : float, default=3.0
        Tukey multiplier of the inter-quartile range (3 = "far out").
    min_accounts : int, default=5
        Floor of the threshold (a type whose shared entities nearly all have two accounts has an IQR of 0).
    steady : bool, default=True
        Whether steady hot entities are dropped; False only time-pairs every hot entity.
    steady_min_factor : float, default=2.0
        A steady entity has more than this many times the threshold's accounts (a ring's home IP with a
        handful of accounts browsing all day is not infrastructure).
    steady_min_hours, steady_min_days : int
    steady_max_peak_share : float, default=0.25
    steady_max_linked_share : float, default=0.2
        An entity without ``linked_share`` (NaN: no device column) is never steady.
    mobile_prefixes : tuple of str, default=()
        Text prefixes of mobile-carrier IP ranges (``"39.144."``), if known.
    degrees, span : optional
        The account counts of every shared entity and the most days one was used on, when ``usage`` holds
        only some of them (:func:`hot_entities_of`: those above the threshold); default ``usage``'s.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HOT_COLUMNS`, one row per *hot* entity, most accounts first: the usage columns,
        ``degree_threshold``, ``hot`` (True), ``steady``, ``action`` (``dropped`` or ``time_paired``) and
        ``reason`` in words. ``attrs`` holds the threshold, the quartiles and the parameters.

    Examples
    --------
    >>> import pandas as pd
    >>> u = pd.DataFrame({"entity_id": [f"home{i}" for i in range(16)] + ["nat", "ring", "studio"],
    ...                   "n_accounts": [2, 3, 2, 2] * 4 + [120, 40, 30], "n_events": 0,
    ...                   "n_days": [1] * 16 + [14, 1, 14], "n_hours": [1] * 16 + [22, 1, 20],
    ...                   "peak_hour_share": [1.0] * 16 + [0.06, 0.9, 0.1],
    ...                   "linked_share": [0.0] * 16 + [0.02, 0.8, 0.9]})
    >>> hot_entities(u, entity_type="ip")[["entity_id", "degree_threshold", "action"]].values.tolist()
    [['nat', 6.0, 'dropped'], ['ring', 6.0, 'time_paired'], ['studio', 6.0, 'time_paired']]
    """
    missing = [c for c in ("entity_id", "n_accounts", "n_days", "n_hours", "peak_hour_share") if c not in usage.columns]
    if missing:
        raise MissingInputError(f"hot_entities: usage lacks column(s) {missing}; got {list(usage.columns)}. "
                                "Fix: pass the table entity_usage() returns.")
    d = usage["n_accounts"].to_numpy(float)
    every = d if degrees is None else np.asarray(degrees, dtype=float)
    thr, q1, q3 = degree_threshold(every, fence=fence, min_accounts=min_accounts)
    hot = d > thr
    if span is None:
        span = int(usage["n_days"].max()) if len(usage) else 0
    linked = (usage["linked_share"].to_numpy(float) if "linked_share" in usage.columns
              else np.full(len(usage), np.nan))
    unrelated = linked <= steady_max_linked_share  # NaN: not known, never steady
    spread = (usage["peak_hour_share"].to_numpy(float) <= steady_max_peak_share) \
        & (usage["n_hours"].to_numpy() >= steady_min_hours)
    days_ok = usage["n_days"].to_numpy() >= min(steady_min_days, max(span, 1))
    mobile = np.zeros(len(usage), dtype=bool)
    if len(mobile_prefixes) and len(usage):
        mobile = usage["entity_id"].astype(str).str.startswith(tuple(mobile_prefixes)).to_numpy()
    many = d > steady_min_factor * thr
    is_steady = hot & bool(steady) & many & unrelated & spread & (days_ok | mobile)
    out = usage.loc[hot].assign(entity_type=entity_type, degree_threshold=thr, hot=True, steady=is_steady[hot],
                                linked_share=linked[hot])
    out["action"] = np.where(out["steady"], "dropped", "time_paired")
    out["reason"] = [
        (f"{n} accounts > {thr:g} (Q3 {q3:g} + {fence:g} x IQR of {entity_type} degrees)"
         + (f"; steady use by unrelated accounts: {h} hours of the day, {dd} days, at most {p:.0%} of accounts "
            f"first seen in one hour, {lk:.0%} share a device" + ("; mobile range" if m else "")
            if s else f"; not infrastructure-like ({n} accounts, peak hour {p:.0%}, {h} hours, {dd} days, "
            f"{'unknown' if lk != lk else format(lk, '.0%')} share a device): paired by time"))
        for n, h, dd, p, lk, s, m in zip(out["n_accounts"], out["n_hours"], out["n_days"], out["peak_hour_share"],
                                         out["linked_share"], out["steady"], mobile[hot])]
    out = out.sort_values(["n_accounts", "entity_id"], ascending=[False, True], kind="stable")
    out = out[list(HOT_COLUMNS)].reset_index(drop=True)
    out.attrs = {}
    out.attrs.update({"entity_type": entity_type, "degree_threshold": thr, "q1": float(q1), "q3": float(q3),
                      "n_shared_entities": int(len(every)), "fence": fence, "min_accounts": min_accounts,
                      "steady": steady, "steady_min_factor": steady_min_factor, "steady_min_hours": steady_min_hours, "steady_min_days": steady_min_days,
                      "steady_max_peak_share": steady_max_peak_share,
                      "steady_max_linked_share": steady_max_linked_share})
    return out


def degree_threshold(degrees, *, fence=3.0, min_accounts=5) -> tuple:
    """``(threshold, q1, q3)``: Tukey's far-out fence of the shared entities' account counts ``degrees``
    (``Q3 + fence * (Q3 - Q1)``), at least ``min_accounts``; the quartiles are NaN without a shared entity.

    Examples
    --------
    >>> degree_threshold([2, 2, 3, 2, 40], fence=3.0, min_accounts=5)
    (6.0, 2.0, 3.0)
    """
    d = np.asarray(degrees, dtype=float)
    q1, q3 = (np.quantile(d, [0.25, 0.75]) if len(d) else (np.nan, np.nan))
    thr = float(max(min_accounts, q3 + fence * (q3 - q1))) if len(d) else float(min_accounts)
    return thr, float(q1), float(q3)


def hot_entities_of(data, *, entity, tables, entity_type, key="account_id", time="ts", link="device_id",
                    fence=3.0, min_accounts=5, steady=True, mobile_prefixes=(), **steady_params) -> pd.DataFrame:
    """``hot_entities(entity_usage(data, ...), ...)``, the same table, with the usage of only the entities above
    the degree threshold worked out: their days, hours, first-use peaks and linked accounts (the rest only
    count their accounts, for the quartiles).

    On ``large``'s 38M uses of IP addresses (the list weights') 940 of 769k shared addresses are above it. The
    most days any shared entity was used on (the data's span the steady test falls back to) is read from the hot
    ones when one of them reaches ``steady_min_days``, else from every shared entity (:func:`entity_usage`).

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.Timestamp("2024-01-01")
    >>> logins = pd.DataFrame({"account_id": list(range(12)) + [20, 21, 22, 23] * 2,
    ...                        "ip": ["nat"] * 12 + ["a", "a", "b", "b", "c", "c", "d", "d"],
    ...                        "device_id": range(20), "ts": [ts + pd.Timedelta(hours=2 * i) for i in range(20)]})
    >>> h = hot_entities_of({"logins": logins}, entity="ip", tables=("logins",), entity_type="ip")
    >>> h[["entity_id", "n_accounts", "degree_threshold", "action"]].values.tolist()
    [['nat', 12, 5.0, 'dropped']]
    >>> h.equals(hot_entities(entity_usage({"logins": logins}, entity="ip", tables=("logins",)), entity_type="ip"))
    True
    """
    return _memoised(data, ("hot_entities_of", entity, tuple(tables), entity_type, key, time, link, fence,
                            min_accounts, steady, tuple(mobile_prefixes), tuple(sorted(steady_params.items()))),
                     lambda: _hot_entities_of(data, entity=entity, tables=tables, entity_type=entity_type, key=key,
                                              time=time, link=link, fence=fence, min_accounts=min_accounts,
                                              steady=steady, mobile_prefixes=mobile_prefixes, **steady_params))


def _hot_entities_of(data, *, entity, tables, entity_type, key, time, link, fence, min_accounts, steady,
                     mobile_prefixes, **steady_params) -> pd.DataFrame:
    days_needed = steady_params.get("steady_min_days", _STEADY_MIN_DAYS)
    usage = _entity_usage(data, entity=entity, tables=tables, key=key, time=time, link=link,
                          above=lambda d: degree_threshold(d, fence=fence, min_accounts=min_accounts)[0])
    degrees = usage.attrs["degrees"]
    span = int(usage["n_days"].max()) if len(usage) else 0
    if len(usage) and span < days_needed:  # the span may be longer than any hot entity's days: every one's
        every = entity_usage(data, entity=entity, tables=tables, key=key, time=time, link=link)
        span = int(every["n_days"].max()) if len(every) else 0
    return hot_entities(usage, entity_type=entity_type, fence=fence, min_accounts=min_accounts, steady=steady,
                        mobile_prefixes=mobile_prefixes, degrees=degrees, span=span, **steady_params)


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
    require_columns(interactions, [key, "action", target, time], "coaction_projection")
    # one copy of the four columns read, of the rows that count (24M interactions on the large scenario)
    keep = interactions["action"].isin(list(actions)).to_numpy() & interactions[target].notna().to_numpy()
    f = interactions.loc[keep, [key, "action", target, time]]
    ent_code = f.groupby([f["action"].eq("follow"), f[target]], sort=False, observed=True).ngroup().to_numpy()
    acc_code, acc_keys = pd.factorize(f[key], sort=False)
    t = to_seconds(f[time])
    del f  # the copy is not held while the pairs are built
    return _project(acc_code, acc_keys, ent_code, t, window=window, max_degree=max_degree,
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


MATVEC_PART_NNZ = 1 << 21
"""Stored entries per part from which :func:`row_parts` cuts a matrix's rows into parts multiplied on threads
(SciPy's CSR product releases the GIL; each row's sum is the same whichever part holds it). On ``large`` label
propagation spent 24 s on one core in its products, the dense-block search 9 s."""


def row_parts(A) -> list:
    """``A``'s rows in contiguous parts of about equal stored entries, one per core (views of its arrays, no copy);
    one part when ``A`` holds fewer than two :data:`MATVEC_PART_NNZ`.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> len(row_parts(sp.identity(3, format="csr")))
    1
    """
    import scipy.sparse as sp

    k = min(usable_cores(), A.nnz // MATVEC_PART_NNZ)
    if k <= 1:
        return [A]
    cut = np.unique(np.r_[0, np.searchsorted(A.indptr, np.arange(1, k) * (A.nnz / k)), A.shape[0]])
    return [sp.csr_matrix((A.data[A.indptr[r0]:A.indptr[r1]], A.indices[A.indptr[r0]:A.indptr[r1]],
                           A.indptr[r0:r1 + 1] - A.indptr[r0]), shape=(r1 - r0, A.shape[1]), copy=False)
            for r0, r1 in zip(cut[:-1], cut[1:])]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else the machine's count).

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_map(fn, items) -> list:
    """``[fn(x) for x in items]`` on up to :func:`usable_cores` threads, results in the order of ``items``.

    For NumPy work that releases the GIL (sorts, gathers, arithmetic on large arrays): on two cores the
    R(A,B) view's independent passes run beside each other. An exception in any call is raised here. What the
    calls share must be ready before: a pandas Index builds its hash table on its first lookup, and two threads
    building it at once can fail, so look one value up first (``index.get_indexer(index[:1])``).

    Examples
    --------
    >>> thread_map(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """
    items = list(items)
    workers = min(usable_cores(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="fraudkit-numpy") as pool:
        return list(pool.map(fn, items))


def value_runs(code, k) -> list:
    """The row indices of an int64 array ``code`` in ``k`` (or fewer) ranges of its values, about equal in rows
    (cut at quantiles of a sample), each ascending, the ranges in value order.

    Sorting each run's values stably and concatenating the runs gives ``np.argsort(code, kind="stable")``
    exactly, so runs can be sorted and reduced on threads (:func:`thread_map`).

    Examples
    --------
    >>> c = np.array([5, 1, 9, 1, 7, 3])
    >>> runs = value_runs(c, 2)
    >>> [r.tolist() for r in runs]
    [[1, 3, 5], [0, 2, 4]]
    >>> np.concatenate([r[np.argsort(c[r], kind="stable")] for r in runs]).tolist()
    [1, 3, 5, 0, 4, 2]
    """
    code = np.asarray(code)
    if k <= 1 or len(code) < 2:
        return [np.arange(len(code))]
    sample = np.sort(code[:: max(len(code) // 65_536, 1)])
    cuts = np.unique(sample[(np.arange(1, k) * len(sample)) // k])
    cuts = cuts[cuts > sample[0]]  # a cut at the smallest value would leave an empty first run
    if not len(cuts):
        return [np.arange(len(code))]
    run = np.searchsorted(cuts, code, side="right")
    return [np.flatnonzero(run == r) for r in range(len(cuts) + 1)]


def parallel_matvec(parts, x) -> np.ndarray:
    """``A @ x`` from ``A``'s row parts (:func:`row_parts`), the parts on threads: the same bits as ``A @ x``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 3.0]]))
    >>> parallel_matvec(row_parts(A), np.array([1.0, 1.0])).tolist()
    [3.0, 3.0]
    """
    if len(parts) == 1:
        return parts[0] @ x
    return np.concatenate(thread_map(lambda part: part @ x, parts))


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


def _sql_parts(data, wanted, as_of, window, around=None):
    """Edge parts of :func:`build_hetero_graph` aggregated in DuckDB: distinct (src, dst[, action]) with first
    and last time and event count, in the order the pandas path adds them (keys sorted within a part)."""

    act_case = "CASE action " + " ".join(f"WHEN '{a}' THEN {i + 1}" for i, a in enumerate(_ACTION_CODES)) + " ELSE 0 END"
    with open_source(data) as src:
        def have(name, *cols):
            return src.has(name) and not set(cols) & set(src.missing_columns.get(name, ()))

        present = [n for n, cols in _GRAPH_COLUMNS.items() if have(n, *cols)]
        for n, cols in _GRAPH_COLUMNS.items():
            if src.has(n) and n not in present:
                raise MissingInputError(f"{n}: missing column(s) {', '.join(set(cols) & set(src.missing_columns[n]))}. "
                                        f"Fix: pass a table with those columns (see fraudkit.data.contract).")
        as_of_ts = None if as_of is None else pd.Timestamp(as_of)
        if window is not None and as_of_ts is None:
            q = [f"SELECT max(ts) AS m FROM {getattr(src.t, n)}" for n in present if "ts" in _GRAPH_COLUMNS[n]]
            m = src.scalar(f"SELECT max(m) FROM ({' UNION ALL '.join(q)})") if q else None
            as_of_ts = None if m is None else pd.Timestamp(m)
        start = None if window is None or as_of_ts is None else as_of_ts - pd.Timedelta(window)
        lit = lambda ts: f"TIMESTAMP '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}'"  # noqa: E731

        specs = []  # (table, src_type, src_expr, dst_type, dst_expr, edge_type, time_col, action_expr, where)
        for name in ("logins", "interactions", "orders", "coupon_claims"):
            specs += [(name, "account", "account_id", "device", "device_id", "uses_device", "ts", None, None),
                      (name, "account", "account_id", "ip", "ip", "uses_ip", "ts", None, None),
                      (name, "ip", "ip", "ip24", ip24_sql("ip"), "in_subnet", "ts", None, None)]
        specs += [("accounts", "account", "account_id", "phone", "phone", "has_phone", "registered_at", None, None),
                  ("bindings", "account", "account_id", "binding",
                   "CAST(provider AS VARCHAR) || ':' || CAST(binding_id AS VARCHAR)", "bound_to", "bound_at", None, None),
                  ("interactions", "account", "account_id", "note", "target_id", "acted_on", "ts", act_case,
                   "action IS DISTINCT FROM 'follow'"),
                  ("interactions", "account", "account_id", "account", "target_id", "acted_on", "ts", act_case,
                   "action = 'follow'"),
                  ("notes", "account", "author_id", "note", "note_id", "authored", "created_at", None, None),
                  ("orders", "account", "account_id", "address", "address", "ships_to", "ts", None, None),
                  ("orders", "account", "account_id", "phone", "receiver_phone", "receiver_phone", "ts", None, None),
                  ("orders", "account", "account_id", "product", "product_id", "bought", "ts", None, None),
                  ("products", "product", "product_id", "merchant", "merchant_id", "sold_by", None, None, None)]
        queries = []  # (dst type, edge type, source type, events SQL) per part
        for name, st, s_expr, dt, d_expr, et, tcol, a_expr, where in specs:
            if et not in wanted or name not in present:
                continue
            t_expr = f"CAST({tcol} AS TIMESTAMP)" if tcol else "CAST(NULL AS TIMESTAMP)"
            cond = [f"({s_expr}) IS NOT NULL", f"({d_expr}) IS NOT NULL"] + ([where] if where else [])
            if as_of_ts is not None:
                cond.append(f"({t_expr} IS NULL OR {t_expr} <= {lit(as_of_ts)})")
            if start is not None:
                cond.append(f"({t_expr} IS NULL OR {t_expr} > {lit(start)})")
            queries.append((st, dt, et, f"SELECT {s_expr} AS s, {d_expr} AS d, {a_expr or '0'} AS a, {t_expr} AS t "
                                        f"FROM {getattr(src.t, name)} WHERE {' AND '.join(cond)}"))
        used = {}
        if around is not None:
            # media of each node type that one of the accounts used, in any table; then every edge to them
            around_tbl = src.register("around", pd.DataFrame({"k": pd.unique(np.asarray(around))}))
            for dt in dict.fromkeys(q[1] for q in queries):
                sel = " UNION ".join(f"SELECT d FROM ({ev}) WHERE s IN (SELECT k FROM {around_tbl})"
                                     for _, t, _, ev in queries if t == dt)
                used[dt] = src.temp_table(f"used_{dt}", sel)
            src.unregister(around_tbl)
        parts = []
        for st, dt, et, ev in queries:
            near = f"WHERE d IN (SELECT d FROM {used[dt]})" if dt in used else ""
            f = src.df(f"""SELECT s, d, a, min(t) AS first, max(t) AS last, count(*) AS n FROM ({ev}) {near}
                           GROUP BY s, d, a ORDER BY s, d, a""")
            first = f["first"].to_numpy("datetime64[ns]").view(np.int64)
            last = f["last"].to_numpy("datetime64[ns]").view(np.int64)
            parts.append((st, f["s"], dt, f["d"], et, f["a"].to_numpy(np.int8), first, last,
                          f["n"].to_numpy(np.int64)))
    return parts, present, as_of_ts


def require_columns(frame, columns, where):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingInputError(f"{where}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}. "
                                f"Fix: pass a frame with those columns (see fraudkit.data.contract).")


def _ns(s) -> np.ndarray:
    """datetime64[ns] array of a time column, without re-parsing columns that already are datetimes."""
    s = pd.Series(s)
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, cache=False)
    return s.to_numpy("datetime64[ns]")


def to_seconds(s) -> np.ndarray:
    return pd.to_datetime(pd.Series(s), cache=False).to_numpy("datetime64[s]").astype(np.int64)


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
    k = np.arange(1, total + 1, dtype=np.int64)
    k -= starts[rows]  # the same k, one chunk-sized array fewer than repeating the starts
    return rows, k


def _project(acc, acc_keys, ent, t, *, window, max_degree, weight, k_neighbors, hot_window, min_count,
             count_name, params, chunk_pairs=20_000_000, hot_mask=None):
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
    pair_code = unique_int(ent * max(len(acc_keys), 1) + acc)
    deg = np.bincount(pair_code // max(len(acc_keys), 1), minlength=n_ent)
    del pair_code
    hot = deg > max_degree
    if hot_mask is not None:
        hot |= np.asarray(hot_mask, dtype=bool)[:n_ent]
    skipped = 0
    if t is None:
        skipped = int(hot.sum())
        keep = ~hot[ent]
        acc, ent = acc[keep], ent[keep]
        # one row per (entity, account); time irrelevant
        code = unique_int(ent * max(len(acc_keys), 1) + acc)
        ent, acc = code // max(len(acc_keys), 1), code % max(len(acc_keys), 1)
        t = np.zeros(len(ent), dtype=np.int64)
        win = np.full(n_ent, np.iinfo(np.int64).max // 4)
    else:
        t = np.asarray(t, dtype=np.int64)
        big = np.iinfo(np.int64).max // 4
        base = big if window is None else int(pd.Timedelta(window).total_seconds())
        hw = int(pd.Timedelta(window if window is not None else hot_window).total_seconds())
        win = np.where(hot, hw, base)
        order = sort_order(ent, t, acc)
        ent, t, acc = ent[order], t[order], acc[order]
        del order
        if window is None:
            # small entities: only the first use per account matters
            small_dup = ~hot[ent] & ~_first_per_group(ent, acc)
            keep = ~small_dup
            ent, t, acc = ent[keep], t[keep], acc[keep]
        # collapse consecutive events of one account on one entity (a burst counts once)
        keep = np.r_[True, (ent[1:] != ent[:-1]) | (acc[1:] != acc[:-1])]
        ent, t, acc = ent[keep], t[keep], acc[keep]
        del keep
    w_ent = _entity_weight(deg.astype(float), weight)
    n_acc = max(len(acc_keys), 1)
    one_code = float(n_acc) * float(n_acc) * float(max(n_ent, 1)) < 2.0 ** 62
    # the rows (sorted by entity) in one contiguous run of whole entities per core, each run's distinct (pair,
    # entity) rows found on a thread within its share of the chunk budget: the same set as in one run
    runs = _entity_runs(ent, parts_for(len(ent)))
    found = thread_map(lambda r: _distinct_pairs(acc[r[0]:r[1]], ent[r[0]:r[1]], t[r[0]:r[1]], win, hot,
                                                 k_neighbors, n_acc, n_ent, one_code,
                                                 max(chunk_pairs // len(runs), 1)), runs)
    partials = [q for f in found for q in f]
    del found
    if partials:
        # the distinct (pair, entity) rows sorted: one group per pair, weights summed in entity order, in runs of
        # whole pairs on threads
        if one_code:
            code = _merge_distinct(partials) if len(partials) > 1 else partials[0]
            del partials
            runs = _pair_runs(code, max(n_ent, 1), parts_for(len(code)))
            # each run's codes become its pairs in place: two arrays held, not three
            sums = thread_map(lambda r: _pair_sums(*_split_codes(code[r[0]:r[1]], n_ent), w_ent, min_count),
                              runs)
            del code
        else:
            p, e = _distinct_pair_entity(np.concatenate([q for q, _ in partials]),
                                         np.concatenate([x for _, x in partials]), n_acc, n_ent)
            del partials
            runs = _pair_runs(p, 1, parts_for(len(p)))
            sums = thread_map(lambda r: _pair_sums(p[r[0]:r[1]], e[r[0]:r[1]], w_ent, min_count), runs)
            del p, e
        p, n, wsum = (np.concatenate([x[k] for x in sums]) for k in range(3))
        del sums
        # copy=False: the new columns as they are, not copied into one block per type (20M pairs: 3.8 s)
        out = pd.DataFrame({"src": acc_keys[p // n_acc], "dst": acc_keys[p % n_acc],
                            "weight": wsum.astype(float), count_name: n}, copy=False)
    else:
        out = pd.DataFrame({"src": acc_keys[:0], "dst": acc_keys[:0], "weight": np.array([], float),
                            count_name: np.array([], np.int64)})
    out = out.reset_index(drop=True)
    out.attrs.update(params)
    out.attrs["skipped_hot_entities"] = skipped
    out.attrs["n_hot_entities"] = int(hot.sum())
    return out


PARALLEL_ROWS = 1 << 20
"""Rows from which a projection (:func:`coaction_projection`, :func:`shared_entity_projection`) cuts its work in
one run per core on threads: on ``large`` the co-action view and the shared IP projection ran on one core."""


def parts_for(n_rows) -> int:
    """How many parts to cut work over ``n_rows`` rows into for :func:`thread_map`: one per usable core from
    :data:`PARALLEL_ROWS` rows on, else one.

    Examples
    --------
    >>> parts_for(10)
    1
    """
    return usable_cores() if n_rows >= PARALLEL_ROWS else 1


def _entity_runs(ent, k):
    """``k`` (or fewer) contiguous ``(lo, hi)`` row ranges of about equal size over rows sorted by ``ent``, each
    holding whole entities."""
    n = len(ent)
    if k <= 1 or n < 2:
        return [(0, n)]
    cut = [0]
    for c in (np.arange(1, k) * n) // k:
        c = int(np.searchsorted(ent, ent[c - 1], side="right")) if c > 0 else 0  # the end of that entity
        if cut[-1] < c < n:
            cut.append(c)
    return list(zip(cut, cut[1:] + [n]))


def _pair_runs(keys, scale, k):
    """``k`` (or fewer) contiguous ``(lo, hi)`` row ranges over sorted ``keys`` (``keys // scale`` the pair),
    each holding whole pairs."""
    n = len(keys)
    if k <= 1 or n < 2:
        return [(0, n)]
    cut = [0]
    for c in (np.arange(1, k) * n) // k:
        c = int(np.searchsorted(keys, (int(keys[c - 1]) // scale + 1) * scale, side="left")) if c > 0 else 0
        if cut[-1] < c < n:
            cut.append(c)
    return list(zip(cut, cut[1:] + [n]))


def _split_codes(code, n_ent):
    """``(pairs, entities)`` of ``pair * n_ent + entity`` codes; ``code`` (a view the caller gives up) becomes the
    pairs in place."""
    e = code % max(n_ent, 1)
    code //= max(n_ent, 1)
    return code, e


def _pair_sums(p, e, w_ent, min_count):
    """Of distinct ``(p, e)`` rows sorted by pair then entity: the pairs sharing at least ``min_count`` entities,
    how many each shares and the sum of their entities' weights ``w_ent`` in entity order."""
    starts = np.r_[0, np.flatnonzero(np.diff(p)) + 1] if len(p) else np.array([], np.int64)
    n = np.diff(np.r_[starts, len(p)]).astype(np.int64)
    keep = n >= min_count
    if not keep.all():
        # only the kept pairs' rows are summed (co-action: 58M (pair, target) rows, 1.1M pairs kept on large)
        rows = np.repeat(keep, n)
        p, e, n = p[rows], e[rows], n[keep]
        del rows
        starts = np.r_[0, np.cumsum(n)[:-1]] if len(n) else np.array([], np.int64)
    wsum = group_sum(w_ent[e], starts)
    return p[starts], n, wsum


def _distinct_pairs(acc, ent, t, win, hot, k_neighbors, n_acc, n_ent, one_code, chunk_pairs):
    """The distinct (account pair, entity) rows of rows sorted by ``(ent, t, acc)``, as sorted distinct
    ``pair * n_ent + entity`` codes (``one_code``) or ``(pair, entity)`` arrays, in parts of about ``chunk_pairs``."""
    partials, held = [], 0
    for i, j in time_pairs(ent, t, win[ent], hot[ent], k_neighbors, chunk_pairs=chunk_pairs):
        ok = acc[i] != acc[j]
        i, j = i[ok], j[ok]
        del ok
        a, b = acc[i], acc[j]
        e = ent[i]
        del i, j
        lo_acc = np.minimum(a, b)
        np.maximum(a, b, out=b)
        del a
        # each (entity, pair) counts once
        if one_code:
            # the distinct (pair, entity) codes _distinct_pair_entity sorts, held as one array per chunk and
            # merged once they outgrow a chunk: the 24M interactions of the large scenario held 6 GB of pairs
            lo_acc *= n_acc
            lo_acc += b
            del b
            partials.append(_pair_entity_codes(lo_acc, e, n_ent))
            del lo_acc, e
            held += len(partials[-1])
            if held > chunk_pairs and len(partials) > 1:
                partials = [_merge_distinct(partials)]
                held = len(partials[0])
        else:
            partials.append(_distinct_pair_entity(lo_acc * n_acc + b, e, n_acc, n_ent))
            del lo_acc, b, e
    return partials


def time_pairs(ent, t, row_window, row_hot, k_neighbors, *, chunk_pairs=20_000_000):
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
    del tt, w, comp, end  # row-sized arrays not held while the chunks are consumed
    csum = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = csum[lo - 1] if lo else 0
        hi = int(np.searchsorted(csum, base + chunk_pairs, side="right"))
        hi = min(max(hi, lo + 1), len(counts))
        i, j = _pair_offsets(counts[lo:hi])
        i += lo
        j += i  # in place: the generator holds no chunk-sized array of its own while the caller works
        yield i, j
        del i, j
        lo = hi


def sort_order(*keys):
    """``np.lexsort(keys[::-1])``: the stable order by the first key, then the next, ... (integer keys).

    One stable argsort of a single int64 code when the keys' ranges fit in 63 bits (several times faster
    than a lexsort on tens of millions of rows), else the lexsort; the same permutation either way.

    Examples
    --------
    >>> sort_order(np.array([1, 0, 1, 0]), np.array([5, 7, 2, 7])).tolist()
    [1, 3, 2, 0]
    """
    keys = [np.asarray(k, dtype=np.int64) for k in keys]
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    code, span = np.zeros(len(keys[0]), dtype=np.int64), 1
    for k in keys:
        lo, hi = int(k.min()), int(k.max())
        width = hi - lo + 1
        span *= width
        if span >= 2 ** 62:
            return np.lexsort(keys[::-1])
        code = code * width + (k - lo)
    return np.argsort(code, kind="stable")


def group_sum(values, starts):
    """Sums of the consecutive runs of ``values`` that begin at ``starts``, Kahan-compensated in row order.

    The arithmetic of pandas' grouped ``sum`` (and ``mean``), so a groupby replaced by a sort gives the same
    bits: community detection downstream is sensitive to the last bit of an edge weight. One vectorised
    step per position within a run; runs are short (entities a pair shares, items it co-bought).
    """
    values = np.asarray(values, dtype=float)
    starts = np.asarray(starts, dtype=np.int64)
    if not len(starts):
        return np.zeros(0)
    # the first step on every run at once (the same operations on zeros as on any other position)
    zero = np.zeros(len(starts))
    y = values[starts] - zero
    total = zero + y
    comp = (total - zero) - y
    del zero, y
    # the later steps only on runs of two or more values (most runs are one: a pair sharing one entity), so the
    # per-run bookkeeping is the size of those runs, not of all of them
    sizes = np.diff(np.r_[starts, len(values)])
    multi = np.flatnonzero(sizes > 1)
    if not len(multi):
        return total
    sizes = sizes[multi]
    longest = np.argsort(-sizes, kind="stable")
    by_size, neg = multi[longest], -sizes[longest]
    first = starts[by_size]
    del sizes, multi, longest
    for k in range(1, int(-neg[0])):
        n_active = int(np.searchsorted(neg, -k, side="left"))  # runs longer than k
        g = by_size[:n_active]
        y = values[first[:n_active] + k] - comp[g]
        t = total[g] + y
        comp[g] = (t - total[g]) - y
        total[g] = t
    return total


def _first_use_order(data, tables, key, entity):
    """Distinct ``key`` values in order of first appearance over ``tables`` rows with ``entity`` set."""
    chunks = []
    if isinstance(data, dict):
        for name in tables:
            t = data.get(name)
            if t is not None and key in t.columns and entity in t.columns:
                t = sort_canonical(t[[c for c in (_time_column(name), key, entity) if c in t.columns]], name)
                chunks.append(pd.unique(t.loc[t[entity].notna().to_numpy() & t[key].notna().to_numpy(), key]))
    else:
        for name in tables:
            if not data.has(name) or not {key, entity} <= set(data.table(name).columns):
                continue
            import ibis

            sql = ibis.to_sql(data.table(name), dialect="duckdb")
            # rows in their canonical order (time, key, entity), never the file's: the first-use order, and
            # with it the projection's edges, must not depend on how an export ordered its rows
            order = ", ".join(canonical_sort_keys(name, [c for c in (_time_column(name), key, entity) if c]))
            col = data.engine.to_arrow(f"SELECT {key} FROM ({sql}) WHERE {key} IS NOT NULL AND {entity} IS NOT NULL "
                                       f"ORDER BY {order}")
            chunks.append(pd.unique(col.column(0).to_pandas()))
    if not chunks:
        return np.array([], dtype=object)
    return pd.unique(np.concatenate(chunks) if len(chunks) > 1 else chunks[0])


def _time_column(name):
    spec = TABLES.get(name)
    return None if spec is None else spec.time_column


def unique_int(x):
    """Sorted distinct values of an integer array by one sort (numpy 2's hash-based ``np.unique`` is several
    times slower on tens of millions of int64 codes)."""
    x = np.sort(np.asarray(x))
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _sorted_distinct(x):
    """:func:`unique_int` of an int64 array the caller gives up: sorted in place, no second copy."""
    x.sort()
    if len(x) < 2:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _merge_distinct(parts):
    """The sorted distinct values of several sorted distinct int64 arrays (emptied from ``parts``): one
    concatenation sorted in place, so the peak is the parts plus their concatenation, not twice it."""
    x = np.concatenate(parts)
    parts.clear()
    return _sorted_distinct(x)


def _pair_entity_codes(p, e, n_ent):
    """Sorted distinct codes ``p * n_ent + e`` of ``(p, e)`` rows (the codes :func:`_distinct_pair_entity` sorts
    when they fit in an int64). ``p``, an int64 array the caller gives up, is overwritten by the codes."""
    p *= max(int(n_ent), 1)
    p += e
    return _sorted_distinct(p)


def _distinct_pair_entity(p, e, n_acc, n_ent):
    """Distinct ``(p, e)`` rows sorted by ``(p, e)``, as two int64 arrays.

    One int64 code ``p * n_ent + e`` and a numpy sort when it fits (every real data set so far: 1M
    accounts and 1.3M entities use 2^60), else a lexsort; both are sort-based (a pandas hash
    drop_duplicates on 10^8 rows was 95 of the 180 s of the large co-engagement projection).
    """
    p = np.asarray(p, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    n_ent = max(int(n_ent), 1)
    if float(n_acc) * float(n_acc) * float(n_ent) < 2.0 ** 62:
        code = unique_int(p * n_ent + e)
        return code // n_ent, code % n_ent
    order = np.lexsort((e, p))
    p, e = p[order], e[order]
    keep = np.r_[True, (p[1:] != p[:-1]) | (e[1:] != e[:-1])] if len(p) else np.zeros(0, bool)
    return p[keep], e[keep]


def _one_exact_type(types) -> bool:
    """Whether SQL column types are one integer or text type, whose values group as their text does."""
    types = set(types)
    return len(types) == 1 and types <= {"VARCHAR", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT",
                                         "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"}


def _as_text(keys) -> pd.Index:
    """Entity keys as text (an integer device id and its text from SQL compare equal)."""
    return pd.Index(pd.Series(np.asarray(keys, dtype=object)).astype(str).to_numpy(dtype=object))


def _first_per_group(ent, acc):
    """Mask of the first row of each (ent, acc) in an array sorted by (ent, t)."""
    code = ent * (int(acc.max(initial=0)) + 1) + acc
    order = np.argsort(code, kind="stable")
    sc = code[order]
    first_idx = order[np.r_[True, sc[1:] != sc[:-1]]] if len(sc) else order
    m = np.zeros(len(code), dtype=bool)
    m[first_idx] = True
    return m
