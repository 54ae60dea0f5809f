"""Generated graphs with planted anomalies of the shapes real exports have: signed, bipartite, low-activity spam.

Each is written in the generic format (``fraudkit.data.generic``) so ``benchmarks/real_data.py`` runs the same
protocols on them as on the real sets. Deterministic by seed; no real data is used or imitated beyond its shape.

- ``planted_signed``: a trust network with ratings -10..+10 (``src`` rates ``dst``); fraudsters receive
  mostly negative ratings, and a dense core of mutually trusting honest traders is what a dense-block
  detector finds first (it ranks it as the anomaly).
- ``planted_bipartite``: users and the products they review, as events; spam rings review the same few
  products in bursts; user features carry a weak signal; no user-user edges (the kit projects the events).
- ``planted_relations``: two edge relations, ``shared_device`` (fraud rings and honest families of the same
  sizes) and ``follows`` (random, twice as many); a weak own-feature shift of the ring members adds up over
  device neighbours only.
- ``planted_low_activity``: review spam from many throw-away accounts with one or two reviews, mostly on one
  target; honest reviewers are heavy-tailed; user features carry a weak signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.data.generic import write_generic

SHAPES = ("planted_signed", "planted_bipartite", "planted_low_activity", "planted_relations")


def write_planted(name: str, out, *, n: int = 3000, seed: int = 0, typed: bool = False):
    """Write the planted graph ``name`` (one of :data:`SHAPES`) to the folder ``out``; return the path.

    ``typed=True`` (``planted_bipartite`` only) writes the same graph as typed nodes (``user``, ``product``)
    and user-to-product edges instead of an events table; the kit must read both the same way.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(int)
    ids = rng.permutation(n) * 7 + 100  # ids unrelated to labels or row order
    feats = {f"f{j}": rng.normal(size=n) + (0.4 if j == 0 else 0.0) * y for j in range(4)}
    nodes = pd.DataFrame({"id": ids, **feats, "label": y})
    no_edges = pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": pd.Series([], dtype="int64")})
    if name == "planted_signed":
        m = 8 * n
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        neg = rng.random(m) < np.where(y[dst] == 1, 0.55, 0.12)
        w = np.where(neg, -rng.integers(1, 11, m), rng.integers(1, 11, m))
        core = rng.choice(np.flatnonzero(y == 0), 60, replace=False)  # honest traders who all trust each other
        cs, cd = np.meshgrid(core, core)
        keep = cs.ravel() != cd.ravel()
        src = np.r_[src, cs.ravel()[keep]]
        dst = np.r_[dst, cd.ravel()[keep]]
        w = np.r_[w, np.full(keep.sum(), 10)]
        ok = src != dst
        edges = pd.DataFrame({"src": ids[src[ok]], "dst": ids[dst[ok]], "weight": w[ok].astype(float)})
        return write_generic(out, nodes, edges)
    if name == "planted_bipartite":
        n_products = 400
        rings = np.array_split(rng.permutation(np.flatnonzero(y == 1)), 12)
        rows = []
        for u in np.flatnonzero(y == 0):
            k = int(min(rng.zipf(1.8), 60))
            rows += [(u, p) for p in rng.integers(0, n_products, k)]
        for r in rings:
            targets = rng.choice(n_products, 5, replace=False)
            for u in r:
                rows += [(u, p) for p in rng.choice(targets, int(rng.integers(2, 6)))]
        ev = pd.DataFrame(rows, columns=["node", "target"])
        if typed:  # products as nodes of their own type, reviews as user -> product edges
            pid = 10 * n + 100 + np.arange(n_products)
            products = pd.DataFrame({"id": pid, "type": "product"})
            typed_nodes = pd.concat([nodes.assign(type="user"), products], ignore_index=True)
            edges = pd.DataFrame({"src": ids[ev["node"]], "dst": pid[ev["target"]]})
            return write_generic(out, typed_nodes, edges)
        events = pd.DataFrame({"account": ids[ev["node"]], "target": "p" + ev["target"].astype(str)})
        return write_generic(out, nodes, no_edges, events)
    if typed:
        raise ValueError(f"typed=True is for planted_bipartite only, not {name!r}")
    if name == "planted_relations":
        # fraud rings share devices; honest families share them too (same group sizes, so device degree says
        # little); the ring members' weak f0 shift adds up over device neighbours but is diluted in the merged
        # graph by twice as many random follows
        groups = [np.array(g) for g in np.array_split(rng.permutation(np.flatnonzero(y == 1)), int(y.sum()) // 6)]
        honest = rng.permutation(np.flatnonzero(y == 0))
        groups += [np.array(g) for g in np.array_split(honest[: len(honest) // 2], len(honest) // 12)]
        pairs = [(a, b) for g in groups for i, a in enumerate(g) for b in g[i + 1:]]
        dev = pd.DataFrame(pairs, columns=["s", "d"]).assign(relation="shared_device")
        m = 6 * n
        fol = pd.DataFrame({"s": rng.integers(0, n, m), "d": rng.integers(0, n, m), "relation": "follows"})
        e = pd.concat([dev, fol[fol.s != fol.d]], ignore_index=True)
        edges = pd.DataFrame({"src": ids[e.s], "dst": ids[e.d], "relation": e.relation})
        return write_generic(out, nodes, edges)
    if name == "planted_low_activity":
        n_targets = 300
        rows = []
        for u in range(n):
            if y[u]:
                t = rng.integers(0, n_targets)
                rows += [(u, t)] * int(rng.integers(1, 3))
            else:
                rows += [(u, t) for t in rng.integers(0, n_targets, int(min(rng.zipf(1.7), 80)) + 1)]
        ev = pd.DataFrame(rows, columns=["node", "target"])
        events = pd.DataFrame({"account": ids[ev["node"]], "target": "t" + ev["target"].astype(str)})
        return write_generic(out, nodes, no_edges, events)
    raise ValueError(f"unknown planted shape {name!r}; choose from {SHAPES}")


def write_shuffled(graph, out, *, seed: int = 1):
    """Write ``graph`` again with node, edge and event rows shuffled and every id renamed."""
    rng = np.random.default_rng(seed)
    n = graph.n_nodes
    new = pd.Series(rng.permutation(n) * 11 + 5000, index=graph.node_ids)
    nodes = pd.DataFrame(graph.features, columns=list(graph.feature_names)).assign(
        id=new.to_numpy(), label=graph.labels)
    for k, v in graph.splits.items():
        nodes[k] = v
    nodes = nodes.iloc[rng.permutation(n)]
    e = pd.DataFrame({"src": new.to_numpy()[graph.src], "dst": new.to_numpy()[graph.dst]})
    if (graph.weight != 1).any():
        e["weight"] = graph.weight
    if graph.relation is not None:
        e["relation"] = graph.relation
    e = e.iloc[rng.permutation(len(e))]
    ev = None
    if graph.events is not None:
        ev = graph.events.assign(account=new.reindex(graph.events["account"]).to_numpy())
        ev = ev.iloc[rng.permutation(len(ev))]
    return write_generic(out, nodes, e, ev)
