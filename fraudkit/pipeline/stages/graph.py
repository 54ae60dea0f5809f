"""Stage 3, graphs: projections -> communities -> screening -> propagation -> network score.

Three account-account views, each built only when its tables exist:

``shared``
    shared media (devices from logins/interactions/orders/claims, login IPs, bound phones, bindings,
    shipping addresses and receiver phones) — :func:`fraudkit.capability.graphs.shared_entity_projection`;
``coaction``
    co-actions on the same note / author within minutes — :func:`fraudkit.capability.graphs.coaction_projection`;
``r_ab``
    co-purchase relatedness R(A,B) — :func:`fraudkit.capability.r_ab.r_ab_edges` in memory, or
    :func:`fraudkit.capability.r_ab.r_ab_edges_sql` on Spark when the dataset's transforms run there (the same edges).

Each view is partitioned (Leiden, modularity) connected component by connected component at the scaled
resolution that keeps the global objective (:func:`fraudkit.identification.graph.spark_components.communities_by_component`;
on Spark when the dataset's transforms run there, with the same partition), its communities profiled and screened
(:class:`fraudkit.identification.graph.communities.CommunityScreener`). Weak labels then propagate over the summed graph
from the seeds: the context's ``seed_pool`` (a :class:`~fraudkit.identification.graph.propagation.SeedPool`, a seed
table, a score table with ``flagged``, or account keys from stage 1 / earlier runs) plus members of communities
that screen above ``seed_threshold``, component by component (each until its own change is below ``tol``; components
without a seed are not iterated), in Spark tasks when the transforms run there, with the same scores. The labels
table is never read.

Scores (``stage="graph"``, one row per account and method): ``community_screening`` (the account's
riskiest community), ``label_propagation`` (propagated score, in [0, 1]) and ``graph`` (their maximum).
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np
import pandas as pd

from fraudkit.capability.graphs import (
    build_hetero_graph,
    coaction_projection,
    HOT_COLUMNS,
    edges_to_sparse,
    entity_usage,
    group_sum,
    hot_entities_of,
    parts_for,
    shared_entity_events,
    shared_entity_projection,
    thread_map,
    value_runs,
)
from fraudkit.capability.r_ab import RabParams, order_endpoints, r_ab_edges, r_ab_edges_sql
from fraudkit.data.dataset import canonical_sort_keys, ns_timestamps, read_table, sort_canonical, transform_engine
from fraudkit.data.engine import literal
from fraudkit.data.sqlsource import open_source
from fraudkit.errors import FraudkitError
from fraudkit.identification.base import inclusive_threshold, score_frame
from fraudkit.identification.graph.communities import (
    CaptureScorer,
    CommunityScreener,
    captured_targets,
    community_evidence,
    profile_communities,
)
from fraudkit.identification.graph.consolidation import ConsolidationScorer
from fraudkit.identification.graph.propagation import LabelPropagation, SeedPool, strong_entities
from fraudkit.identification.graph.spark_components import communities_by_component, propagation_by_component
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.frames import release_memory
from fraudkit.pipeline.stages import StageOutput, empty_scores
from fraudkit.pipeline.turns import alongside

__all__ = ["run", "DEFAULTS", "explain_paths"]

DEFAULTS = {
    "community_method": "leiden",
    "resolution": 1.0,
    "min_community_size": 3,
    "screen_threshold": 0.5,
    "seed_threshold": 0.6,
    "lp_alpha": 0.85,
    "lp_threshold": 0.25,
    "media_weights": {"device_id": 1.0, "ip": 0.3, "phone": 1.0, "binding": 1.0, "address": 1.0,
                      "receiver_phone": 1.0},
    "view_weights": {"shared": 1.0, "coaction": 1.0, "r_ab": 1.0},
    "coaction_window": "3D",
    "coaction_actions": ("like", "collect", "comment", "share", "follow"),
    "min_coactions": 2,
    "capture_alpha": 0.01,
    "capture_min_targets": 2,
    "consolidation_window": "4h",
    "consolidation_alpha": 0.01,
    "evidence_threshold": 0.5,
    "screened_views": ("shared", "r_ab"),
    "max_degree": 200,
    "hot": "data",
    "hot_fence": 3.0,
    "hot_min_accounts": 5,
    "hot_steady_types": ("ip",),
    "mobile_prefixes": (),
}
"""Stage parameters; override any of them with ``RunContext(graph={...})``.

``hot="data"`` decides the shared view's hot entities per medium from the data
(:func:`fraudkit.capability.graphs.hot_entities`: Tukey's far-out fence of the medium's degrees, at least
``hot_min_accounts``; steady, carrier-NAT-like entities of the ``hot_steady_types`` are dropped, other hot
entities are paired by time); the ``max_degree`` cap still applies. ``hot="fixed"`` uses the cap alone (the
behaviour before). Either way the ``hot_entities`` artifact lists every entity treated as hot and why."""

_COLS = {
    "accounts": ["account_id", "registered_at", "phone"],
    "bindings": ["account_id", "provider", "binding_id", "bound_at"],
    "logins": ["account_id", "device_id", "ip", "ts"],
    "interactions": ["account_id", "device_id", "ip", "action", "target_id", "ts"],
    "orders": ["account_id", "device_id", "ip", "product_id", "address", "receiver_phone", "received_at",
               "promotion_id", "ts"],
    "coupon_claims": ["account_id", "device_id", "ip", "ts"],
    "products": ["product_id", "merchant_id", "discount"],
    "notes": ["note_id", "author_id", "created_at", "category"],
    "promotions": ["promotion_id", "starts_at", "ends_at"],
}


def run(ds, *, context=None) -> StageOutput:
    """Run the graph stage on a dataset.

    Parameters
    ----------
    ds : fraudkit.data.dataset.Dataset or dict of str to DataFrame
    context : RunContext, optional
        Reads ``seed`` (community detection), ``seed_pool`` (see the module docstring), ``run_id`` and
        ``now`` (recorded in the seed pool written) and ``graph`` (parameter overrides, see :data:`DEFAULTS`).

    Returns
    -------
    StageOutput
        Scores, artifacts ``communities``, ``community_profiles``, ``seed_pool``, ``strong_entities``,
        ``explanations``, ``hot_entities`` (columns :data:`~fraudkit.capability.graphs.HOT_COLUMNS`: each
        shared entity treated as hot in the shared view, what was done with it and why), and notes on what
        was skipped.

    Examples
    --------
    >>> from fraudkit.pipeline.stages import graph
    >>> callable(graph.run)
    True
    """
    if context is None:
        context = RunContext()
    if not isinstance(context, RunContext):
        raise FraudkitError(f"context must be a RunContext, got {type(context).__name__}; "
                            "e.g. run(ds, context=RunContext(seed=0, seed_pool=pool, graph={'lp_alpha': 0.9}))")
    seed = context.seed
    p = context.parameters("graph", DEFAULTS)
    notes: list[str] = []
    steps = _Steps(context.progress, context.mode, release=lambda: release_memory(ds))
    # communities per connected component: on Spark when the dataset's transforms run there, the same partition
    spark = ds.transform_dataset.engine.spark if transform_engine(ds) == "spark" else None
    # the views' communities start once the views are built and run beside the stage's next steps
    with _ViewCommunities(method=p["community_method"], resolution=p["resolution"], seed=seed,
                          spark=spark) as partitions:
        return _run(ds, p, seed, context, notes, steps, spark, partitions)


def _run(ds, p, seed, context, notes, steps, spark, partitions):
    """:func:`run` from the tables on, the views' communities asked of ``partitions`` (:class:`_ViewCommunities`)
    once the views are built."""
    data = _load_tables(ds, coaction_actions=tuple(p["coaction_actions"]))
    steps.done("load", rows_in=sum(len(v) for v in data.values()))
    if "accounts" not in data:
        return StageOutput("graph", empty_scores(), {}, ["skipped: the dataset has no accounts table"])
    accounts = data["accounts"]["account_id"].to_numpy()

    views = {}
    # where orders are received (addresses normalised once, per distinct text; endpoints as integer codes), for
    # the shared view, R(A,B), the consolidation test and the community evidence
    ends = order_endpoints(data["orders"]) if "orders" in data else None
    shared, hot = _shared_view(ds, data, p, notes, steps, ends)
    if shared is not None:
        views["shared"] = shared
        steps.done("view shared", edges=len(shared))
    if "interactions" in data:
        co = coaction_projection(data["interactions"], window=p["coaction_window"],
                                 actions=tuple(p["coaction_actions"]), max_degree=p["max_degree"] * 2,
                                 min_coactions=p["min_coactions"])
        views["coaction"] = _view_edges(co, "n_coactions")
        del co
        steps.done("view coaction", rows_in=len(data["interactions"]), edges=len(views["coaction"]))
    else:
        notes.append("coaction view skipped: the dataset has no interactions table")
    if "orders" in data:
        rp = RabParams(max_degree=p["max_degree"])
        # pairs on Spark when the transforms run there (SQL); on one machine numpy, the same edges bit for bit with
        # 3-4x less CPU than the SQL on DuckDB (benchmarks/r_ab.md)
        if transform_engine(ds) == "spark":
            r = r_ab_edges_sql(ds, params=rp)
            notes.append("R(A,B) pairs generated on Spark (r_ab_edges_sql): the edges of the in-memory r_ab_edges")
        else:
            r = r_ab_edges(data["orders"], data.get("products"), data.get("promotions"), params=rp, endpoints=ends)
        views["r_ab"] = _view_edges(r, "k")
        del r
        steps.done("view r_ab", rows_in=len(data["orders"]), edges=len(views["r_ab"]))
    else:
        notes.append("r_ab view skipped: the dataset has no orders table")

    # the views' communities start now, beside the consolidation test, the evidence and the co-action view's
    # profiles, not while the views are built: a view's build and a Leiden child beside it took large to 9.46 GB
    # (benchmarks/end_to_end.md, "large after 73d42e1"); the co-action view's first, its capture test comes first
    for name in sorted(views, key=lambda n: n != "coaction"):
        partitions.start(name, views[name])
    seed_keys, seed_sources = _external_seeds(context.seed_pool, notes)
    evidence, note_rows = {}, None
    if "orders" in data and "received_at" in data["orders"].columns:
        c = ConsolidationScorer(window=p["consolidation_window"], alpha=p["consolidation_alpha"],
                                threshold=inclusive_threshold(p["evidence_threshold"])).fit(data["orders"],
                                                                                           endpoints=ends).table_
        evidence["consolidation"] = c[["account_id", "score", "n_aligned"]]
        steps.done("consolidation test", rows_in=len(data["orders"]))
    else:
        notes.append("consolidation test skipped: no orders with received_at")
    # once for every view's profiles; a Dataset's reduced in DuckDB (distinct pairs and per-account counts)
    member_evidence = community_evidence(data if isinstance(ds, dict) else ds,
                                         addresses=None if ends is None else ends.normalised)
    del ends
    steps.done("community evidence")
    # what is read from here on: the capture test's interactions and notes (the profiles read the evidence)
    data = {k: data[k] for k in ("interactions", "notes") if k in data}
    if spark is not None:
        notes.append("communities per connected component on Spark (large-star/small-star components, one "
                     "applyInPandas task per component or bucket, giant ones on the driver; nodes sent as their "
                     "first-appearance ranks): the DuckDB partition; label propagation the same way, per seeded "
                     "component: the DuckDB scores")
    # the co-action view first: its capture test is the last reader of the interactions, which then go before the
    # larger views' profiles; the results are gathered in the views' order
    found, empty = {}, set()
    order = sorted(views, key=lambda n: n != "coaction")
    key_index, adjacency = pd.Index(accounts), None
    with ExitStack() as beside:  # failed or interrupted: the adjacency's thread is stopped before the error goes on
        for name in order:
            e, part = partitions.result(name)
            if name == order[-1]:
                # every Leiden child is done: the combined adjacency is built on a worker thread beside the last view's
                # profiles (it only reads the views; on large its 12 s and R(A,B)'s profiles' 8 s each ran on one core)
                adjacency = beside.enter_context(alongside(_combined_adjacency, views, key_index, p,
                                                           name="fraudkit-combined-adjacency"))
            if part is None:
                empty.add(name)
                continue
            steps.done(f"communities {name}", nodes=len(part.nodes), edges=len(e))
            prof = profile_communities(part, data, known_bad=seed_keys, edges=e, min_size=p["min_community_size"],
                                       tie_count="n_ties", evidence=member_evidence)
            if len(prof) and name in p["screened_views"]:
                scr = CommunityScreener(threshold=p["screen_threshold"]).fit(prof)
                prof = prof.assign(score=scr.decision_scores_, flagged=scr.labels_.astype(bool),
                                   reason=scr.reasons_)
            else:
                prof = prof.assign(score=pd.Series(dtype=float), flagged=pd.Series(dtype=bool),
                                   reason=pd.Series(dtype=object))
            steps.done(f"profile and screen {name}", nodes=len(prof))
            if name == "coaction":
                evidence["capture"], note_rows = _capture_evidence(part, data, p)
                steps.done("capture test", rows_in=len(data.pop("interactions")))
            prof.insert(0, "view", name)
            m = part.to_frame()
            m.insert(0, "view", name)
            found[name] = (prof, m)
        notes += [f"{name} view has no edges" for name in views if name in empty]
        profiles = [found[name][0] for name in views if name in found]
        memberships = [found[name][1] for name in views if name in found]
        del data, member_evidence, found  # the tables and their evidence are not read again
        part = e = None
        communities = (pd.concat(memberships, ignore_index=True) if memberships
                       else pd.DataFrame(columns=["view", "account_id", "community", "community_size"]))
        profiles = pd.concat(profiles, ignore_index=True) if profiles else pd.DataFrame(
            columns=["view", "community", "size", "score", "flagged", "reason"])

        # per-account community score: the riskiest community it belongs to, across views
        cm = communities.merge(profiles[["view", "community", "score", "reason"]], on=["view", "community"], how="left")
        cm["score"] = cm["score"].fillna(0.0)
        best = cm.sort_values("score", ascending=False, kind="stable").drop_duplicates("account_id")
        cs = pd.Series(best["score"].to_numpy(), index=best["account_id"].to_numpy()).reindex(accounts).fillna(0.0)

        # per-account statistical evidence (capture test, consolidation test): 0.5 = family-wise significant
        ev_scores = {}
        for name, e in evidence.items():
            ev_scores[name] = pd.Series(e["score"].to_numpy(float), index=e["account_id"].to_numpy()) \
                .groupby(level=0).max().reindex(accounts).fillna(0.0)
        confirmed = [pd.Index(accounts)[v.to_numpy() >= p["evidence_threshold"]] for v in ev_scores.values()]

        # seeds: external + members of confidently screened communities + statistically confirmed accounts
        strong_comm = cm.loc[cm["score"] >= p["seed_threshold"], "account_id"].unique()
        all_seeds = pd.Index(np.concatenate([np.asarray(seed_keys, dtype=object), strong_comm.astype(object)]
                                            + [c.to_numpy().astype(object) for c in confirmed])).unique()
        adj = adjacency.result() if adjacency is not None else _combined_adjacency(views, key_index, p)
    del views
    steps.done("combined adjacency", nodes=adj.shape[0], edges=adj.nnz // 2)
    seed_idx = key_index.get_indexer(all_seeds)
    seed_idx = seed_idx[seed_idx >= 0]
    if len(seed_idx) and adj.nnz:
        # component by component (only those holding a seed), on Spark when the transforms run there
        prop = LabelPropagation(alpha=p["lp_alpha"], threshold=p["lp_threshold"], by_component=True).fit(
            adj, seed_idx, nodes=accounts,
            propagator=None if spark is None else functools.partial(propagation_by_component, spark=spark))
        lp, lp_flag = np.clip(prop.decision_scores_, 0, 1), prop.labels_ == 1
    else:
        lp, lp_flag = np.zeros(len(accounts)), np.zeros(len(accounts), dtype=bool)
        notes.append("label propagation skipped: no seeds (no seed pool, no stage-1 flags, no screened community)")
    steps.done("label propagation", rows_in=len(seed_idx), nodes=adj.shape[0], edges=adj.nnz // 2)
    graph_score = np.maximum(cs.to_numpy(), lp)
    cs_flag = cs.to_numpy() > p["screen_threshold"]
    ev_flag = np.zeros(len(accounts), dtype=bool)
    for v in ev_scores.values():
        graph_score = np.maximum(graph_score, v.to_numpy())
        ev_flag |= v.to_numpy() >= p["evidence_threshold"]
    reasons_cs = pd.Series(best["reason"].fillna("").to_numpy(), index=best["account_id"].to_numpy()).reindex(accounts).fillna("")
    scores = pd.concat([
        score_frame(accounts, cs.to_numpy(), cs_flag, entity_type="account", stage="graph",
                    method="community_screening", reasons=reasons_cs.to_numpy()),
        score_frame(accounts, lp, lp_flag, entity_type="account", stage="graph", method="label_propagation"),
        *[score_frame(accounts, v.to_numpy(), v.to_numpy() >= p["evidence_threshold"], entity_type="account",
                      stage="graph", method=name) for name, v in ev_scores.items()],
        score_frame(accounts, graph_score, cs_flag | lp_flag | ev_flag, entity_type="account", stage="graph",
                    method="graph"),
        *([] if note_rows is None else [note_rows]),
    ], ignore_index=True)

    flagged = accounts[cs_flag | lp_flag | ev_flag]
    # the shared-media graph around the flagged accounts (all that strong entities and explanations read),
    # aggregated to distinct (account, medium) edges (in DuckDB for a Dataset)
    hg = build_hetero_graph(ds, edge_types=("uses_device", "uses_ip", "has_phone", "ships_to", "receiver_phone",
                                            "bound_to"), around=flagged)
    steps.done("hetero graph (media of flagged accounts)", nodes=hg.n_nodes, edges=len(hg.edges))
    strong = strong_entities(hg, flagged, min_accounts=3)
    pool = _seed_pool(context, seed_sources, flagged, graph_score[cs_flag | lp_flag | ev_flag], strong)
    explanations = _explanations(flagged, cm, strong, hg, adj, key_index, all_seeds)
    steps.done("strong entities, seed pool, explanations", rows_in=len(flagged), nodes=len(strong))
    return StageOutput("graph", scores, {
        "communities": communities, "community_profiles": profiles, "seed_pool": pool.table,
        "strong_entities": strong, "explanations": explanations, "hot_entities": hot,
        "timings": steps.table()}, notes)


def explain_paths(adj, sources, targets, *, max_hops=6) -> tuple[np.ndarray, list]:
    """Shortest unweighted paths from any of ``sources`` to each target (multi-source BFS).

    Returns the nearest source index per target (``-1`` when unreachable within ``max_hops``) and the
    path as a list of node indices, source first.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> adj = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 2])), shape=(4, 4))
    >>> explain_paths(adj + adj.T, [0], [2, 3])
    (array([ 0, -1]), [[0, 1, 2], []])
    """
    n = adj.shape[0]
    pred = np.full(n, -2, dtype=np.int64)
    src = np.asarray(sources, dtype=np.int64)
    pred[src] = -1
    frontier = np.zeros(n, dtype=bool)
    frontier[src] = True
    A = adj.tocsr()
    for _ in range(max_hops):
        # for each newly reached node, the first frontier neighbour is its predecessor
        sub = A[:, np.flatnonzero(frontier)].tocsr()
        reached = (np.diff(sub.indptr) > 0) & (pred == -2)
        if not reached.any():
            break
        idx = np.flatnonzero(reached)
        first_col = sub.indices[sub.indptr[idx]]
        pred[idx] = np.flatnonzero(frontier)[first_col]
        frontier = np.zeros(n, dtype=bool)
        frontier[idx] = True
    nearest, paths = [], []
    for t in np.asarray(targets, dtype=np.int64):  # per flagged account, path length <= max_hops
        if pred[t] == -2:
            nearest.append(-1)
            paths.append([])
            continue
        path = [int(t)]
        while pred[path[-1]] >= 0:
            path.append(int(pred[path[-1]]))
        nearest.append(path[-1])
        paths.append(path[::-1])
    return np.asarray(nearest, dtype=np.int64), paths


# --- private helpers ----------------------------------------------------------


def _capture_evidence(part, data, p):
    """Capture test on the co-engagement communities: account evidence and note scores."""
    it = data["interactions"]
    it = it[it["action"].isin(list(p["coaction_actions"])) & it["target_id"].notna()]
    follow = it["action"].eq("follow").to_numpy()
    tcode = it.groupby([follow, it["target_id"]], sort=False, observed=True).ngroup().to_numpy()
    if "notes" in data and "category" in data["notes"].columns:
        cat = pd.Series(data["notes"]["category"].to_numpy(), index=data["notes"]["note_id"].to_numpy())
        cat = cat[~cat.index.duplicated()]
        stratum = cat.reindex(it["target_id"].to_numpy()).fillna("__unknown__").to_numpy(dtype=object)
        stratum[follow] = "__follow__"
        if "author_id" in data["notes"].columns and follow.any():
            # follows are stratified by the author's main topic: a taste community following its topic's
            # authors is expected (unstratified, demo-small seed 0 "captured" 115 honest authors)
            topic = data["notes"].groupby(["author_id", "category"], observed=True).size().rename("n").reset_index() \
                .sort_values(["author_id", "n", "category"], ascending=[True, False, True], kind="stable") \
                .drop_duplicates("author_id").set_index("author_id")["category"]
            ft = topic.reindex(it["target_id"].to_numpy()[follow])
            stratum[follow] = np.where(ft.notna().to_numpy(), "__follow__:" + ft.astype(str).to_numpy(dtype=object),
                                       "__follow__")
    else:
        stratum = np.where(follow, "__follow__", "__note__").astype(object)
    ev = pd.DataFrame({"account_id": it["account_id"].to_numpy(), "target": tcode, "stratum": stratum})
    cap = captured_targets(part, ev, stratum="stratum", alpha=p["capture_alpha"])
    acc = CaptureScorer(min_targets=p["capture_min_targets"], threshold=inclusive_threshold(p["evidence_threshold"])) \
        .fit(part, ev, captured=cap).table_
    # note rows: captured notes (engagement_buyer targets), score 0.5 at family-wise significance
    first = pd.Series(np.arange(len(it)), index=tcode).groupby(level=0).first()
    nt = cap.groupby("target")["log10_p"].min()
    rows = first.reindex(nt.index).to_numpy()
    is_note = ~follow[rows]
    thr = cap.attrs.get("log10_threshold", np.nan)
    score = np.clip(nt.to_numpy() / (2 * thr), 0, 1) if np.isfinite(thr) else np.zeros(len(nt))
    note_ids = it["target_id"].to_numpy()[rows][is_note]
    note_rows = score_frame(note_ids, score[is_note], score[is_note] >= p["evidence_threshold"], entity_type="note",
                            stage="graph", method="capture")
    return acc[["account_id", "score", "n_captured"]], note_rows


def _shared_view(ds, data, p, notes, steps, ends):
    """The shared-media view (summed edges) and the table of hot entities it treated specially."""
    event_tables = ("logins", "interactions", "orders", "coupon_claims")
    parts, hot_tables = [], []
    md = p["max_degree"]
    mw = p["media_weights"]
    if p["hot"] not in ("data", "fixed"):
        raise FraudkitError(f"graph parameter hot must be 'data' or 'fixed', got {p['hot']!r}")

    def decide(src, entity, tables, entity_type, time="ts", link="device_id"):
        """Hot (time-paired) and dropped entity keys of one medium, from its usage; the fixed cap alone when
        ``hot="fixed"`` (then the table lists the entities above it)."""
        if p["hot"] == "fixed":
            u = entity_usage(src, entity=entity, tables=tables, time=time, link=link)
            h = u[u["n_accounts"] > md].assign(entity_type=entity_type, degree_threshold=float(md), hot=True,
                                               steady=False, action="time_paired",
                                               reason=f"more than max_degree={md} accounts (fixed cap)")
            h = h.reindex(columns=list(HOT_COLUMNS))
            hot_tables.append(h)
            return None, None
        h = hot_entities_of(src, entity=entity, tables=tables, time=time, link=link, entity_type=entity_type,
                            fence=p["hot_fence"], min_accounts=p["hot_min_accounts"],
                            steady=entity_type in tuple(p["hot_steady_types"]),
                            mobile_prefixes=tuple(p["mobile_prefixes"]))
        hot_tables.append(h)
        steps.done(f"hot {entity_type}s from the data", rows_in=h.attrs["n_shared_entities"], nodes=len(h))
        return (h.loc[h["action"] == "time_paired", "entity_id"].to_numpy(),
                h.loc[h["action"] == "dropped", "entity_id"].to_numpy())

    frames = [name for name in event_tables if _has(ds, name)]
    if frames:
        # 38M device events reduce (in DuckDB) to the first use per (account, device) plus hot-device events
        hot, drop = decide(ds, "device_id", event_tables, "device", link=None)
        ev = shared_entity_events(ds, entity="device_id", tables=event_tables, max_degree=md, hot=hot, drop=drop)
        parts.append((shared_entity_projection(ev, entity="device_id", time="ts", max_degree=md, hot=hot, drop=drop),
                      mw["device_id"]))
        steps.done("shared device events + projection", rows_in=len(ev), edges=len(parts[-1][0]))
    if _has(ds, "logins"):
        hot, drop = decide(ds, "ip", ("logins",), "ip")
        ev = shared_entity_events(ds, entity="ip", tables=("logins",), max_degree=md, hot=hot, drop=drop)
        parts.append((shared_entity_projection(ev, entity="ip", time="ts", max_degree=md, hot=hot, drop=drop),
                      mw["ip"]))
        steps.done("shared ip events + projection", rows_in=len(ev), edges=len(parts[-1][0]))
        del ev
    acc = data["accounts"]
    # a Dataset's phones and receiver phones are asked of the Dataset (its frames hold every row of those
    # columns: the same usage, from its memo when the run's list weighing asked first); the derived bindings and
    # normalised addresses are frames on its connection (no connection opened per medium)
    dset = None if isinstance(ds, dict) else ds
    hot, drop = decide({"accounts": acc} if dset is None else dset, "phone", ("accounts",), "phone",
                       time="registered_at", link=None)
    parts.append((shared_entity_projection(acc, entity="phone", time="registered_at", max_degree=md, hot=hot,
                                           drop=drop), mw["phone"]))
    if "bindings" in data:
        b = data["bindings"].assign(binding=lambda f: f["provider"].astype(str) + ":" + f["binding_id"].astype(str))
        with open_source({"bindings": b}, host=dset) as src:
            hot, drop = decide(src, "binding", ("bindings",), "binding", time="bound_at", link=None)
        parts.append((shared_entity_projection(b, entity="binding", time="bound_at", max_degree=md, hot=hot,
                                               drop=drop), mw["binding"]))
    if "orders" in data:
        o = data["orders"]
        if ends.text_code is not None:
            o = o.assign(address=ends.normalised_rows())
        for col in ("address", "receiver_phone"):
            if col == "address" or dset is None:
                with open_source({"orders": o}, host=dset) as src:
                    hot, drop = decide(src, col, ("orders",), col)
            else:
                hot, drop = decide(dset, col, ("orders",), col)
            parts.append((shared_entity_projection(o, entity=col, time="ts", max_degree=md, hot=hot, drop=drop),
                          mw[col]))
    if not frames and "orders" not in data:
        notes.append("shared view: no logins, interactions or orders; only bound phones and bindings used")
    hot_table = (pd.concat([h for h in hot_tables if len(h)], ignore_index=True) if any(len(h) for h in hot_tables)
                 else pd.DataFrame({c: [] for c in HOT_COLUMNS}))
    if len(hot_table):
        n = hot_table.groupby(["entity_type", "action"]).size()
        notes.append("shared view, hot entities (" + p["hot"] + "): "
                     + ", ".join(f"{k[0]} {k[1]} {v}" for k, v in n.items()))
    e = pd.concat([f.assign(weight=f["weight"] * w) for f, w in parts if len(f)], ignore_index=True) \
        if any(len(f) for f, _ in parts) else None
    parts.clear()  # the media's edges, now in e
    if e is None:
        return None, hot_table
    return _sum_parallel_edges(e), hot_table


def _sum_parallel_edges(e):
    """``e.groupby(["src", "dst"], sort=True)`` summing ``weight`` and ``n_shared`` (as ``n_ties``), by sorting
    one int64 code; the same rows and bits (Kahan sums in row order), without hashing 28M key pairs.

    Each end's rank among the sorted distinct accounts is looked up in a hash index of them: on ``large`` (18M
    edges, 1M random 40-bit account ids) 1.8 s against 14 s for binary searches of the unsorted ends."""
    src, dst = e["src"].to_numpy(), e["dst"].to_numpy()
    try:
        keys = np.sort(np.concatenate([src, dst]))  # sorted distinct keys: a rank is a position among them
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
        index = pd.Index(keys)
        s_rank, d_rank = index.get_indexer(src), index.get_indexer(dst)
        del index
    except TypeError:  # keys of mixed types: pandas orders them
        return e.groupby(["src", "dst"], sort=True).agg(weight=("weight", "sum"),
                                                        n_ties=("n_shared", "sum")).reset_index()
    n = len(keys)
    code = s_rank.astype(np.int64) * n + d_rank
    del s_rank, d_rank
    weight, ties = e["weight"].to_numpy(float), e["n_shared"].to_numpy(np.int64)

    def run(rows):
        """The sums of one range of codes: its rows in code order, ties in row order."""
        order = rows[np.argsort(code[rows], kind="stable")]
        c = code[order]
        starts = np.r_[0, np.flatnonzero(np.diff(c)) + 1]
        return c[starts], group_sum(weight[order], starts), np.add.reduceat(ties[order], starts)

    # ranges of codes on threads (a stable sort of 28M codes took 5 s on one core), concatenated in code order
    if not len(code):
        return pd.DataFrame({"src": keys[:0], "dst": keys[:0], "weight": np.zeros(0), "n_ties": np.zeros(0, np.int64)})
    sums = thread_map(run, value_runs(code, parts_for(len(code))))
    del code
    c, w, t = (np.concatenate([x[i] for x in sums]) for i in range(3))
    return pd.DataFrame({"src": keys[c // n], "dst": keys[c % n], "weight": w, "n_ties": t}, copy=False)


def _combined_adjacency(views, key_index, p):
    """Symmetric CSR sum of the views' weighted adjacencies over ``key_index`` (edges off it are dropped)."""
    import scipy.sparse as sp

    # one view after the other (two views' matrices built at once took large to 7.99 GB), each view's two ends
    # looked up on threads; the index's hash table built here first, not by two threads at once (large:
    # "Reindexing only valid with uniquely valued Index")
    key_index.get_indexer(key_index[:1])
    adj = sp.csr_matrix((len(key_index), len(key_index)), dtype=float)
    for name, e in views.items():
        s, d = thread_map(key_index.get_indexer, [e["src"], e["dst"]])
        ok = (s >= 0) & (d >= 0)
        adj = adj + edges_to_sparse(s[ok], d[ok], e["weight"].to_numpy(float)[ok] * p["view_weights"][name],
                                    n=len(key_index))
    return adj.tocsr()


def _view_edges(e, count):
    """The columns of a view that communities, profiles and the combined adjacency read: ``src``, ``dst``,
    ``weight`` and ``n_ties`` (the ``count`` column), the projection's own arrays (the caller lets it go)."""
    return pd.DataFrame({"src": e["src"].to_numpy(), "dst": e["dst"].to_numpy(), "weight": e["weight"].to_numpy(),
                         "n_ties": e[count].to_numpy()}, copy=False)


def _has(ds, name):
    return (ds.get(name) is not None) if isinstance(ds, dict) else ds.has(name)


# tables and columns held as pandas frames: the device/IP columns of the event tables are reduced in DuckDB
# (shared_entity_events) and the shared-media graph is aggregated there (build_hetero_graph), so the 38M
# event IPs (text) are never materialised; coupon claims only feed those two
_FRAME_COLS = {name: [c for c in cols if not (c == "ip" and name != "accounts")]
               for name, cols in _COLS.items() if name != "coupon_claims"}
# a Dataset's community evidence is reduced in DuckDB too, so nothing reads its logins or its interactions'
# devices as frames (11M + 24M rows on the large scenario); a dict's evidence is computed from the frames
_DATASET_FRAME_COLS = {name: [c for c in cols if not (c == "device_id" and name == "interactions")]
                       for name, cols in _FRAME_COLS.items() if name != "logins"}


def _load_tables(ds, *, coaction_actions):
    """The stage's pandas frames: the :data:`_FRAME_COLS` a dict has (:data:`_DATASET_FRAME_COLS` of a Dataset);
    ``action`` categorical. A Dataset's interactions are only the rows the co-action view and the capture test
    read (``coaction_actions`` on a target): 7.4M of the 23.8M on the large scenario, whose views are the rest."""
    if isinstance(ds, dict):
        data = {name: read_table(ds, name, cols) for name, cols in _FRAME_COLS.items()}
        return {k: sort_canonical(v, k) for k, v in data.items() if v is not None}

    data = {}
    with open_source(ds) as src:
        for name, cols in _DATASET_FRAME_COLS.items():
            if not src.has(name):
                continue
            have = [c for c in cols if c not in src.missing_columns.get(name, ())]
            order = ", ".join(canonical_sort_keys(name, have))  # rows in one order whatever the file's
            where = ""
            if name == "interactions" and {"action", "target_id"} <= set(have):
                listed = ", ".join(literal(a) for a in coaction_actions)
                where = f" WHERE action IN ({listed or 'NULL'}) AND target_id IS NOT NULL"
            tbl = src.arrow(f"SELECT {', '.join(have)} FROM {getattr(src.t, name)}{where} ORDER BY {order}")
            if "action" in have:  # 24M action strings as a 6-value categorical
                import pyarrow.compute as pc

                i = tbl.schema.get_field_index("action")
                tbl = tbl.set_column(i, "action", pc.dictionary_encode(tbl.column("action")))
            data[name] = ns_timestamps(tbl.to_pandas())
            del tbl
    return data


_log = logging.getLogger(__name__)


class _ViewCommunities:
    """Each view's communities (:func:`communities_by_component` of its positive edges), computed on worker threads
    from when they are started while the stage goes on; :meth:`result` waits for them.

    The stage starts them once its views are built: on ``large`` the shared view's Leiden (networkit in a child
    process, about 55 s) runs beside the consolidation test, the community evidence and the co-action view's
    profiles and capture test. Not beside a view's build: with the shared view's child beside the R(A,B) view's
    build, large peaked at 9.46 GB (a4cbc24).

    One view is solved at a time while the stage works; while the stage only waits in :meth:`result`, its core
    is lent: the next view starts beside the one waited for (R(A,B)'s child beside the shared view's, instead of
    after it), and the stage takes its core back when the wait is over (the views already started go on; no
    other starts until fewer run than the stage lets). On ``large`` the stage's two waits took 22-23 s against 49 s
    one view after the other, the stage 221-235 s against 256 s, at 7.46-7.58 GB peak (``benchmarks/end_to_end.md``,
    "large after 69ac18c" and "large after 1113e5b"). Views start in the order they were submitted. Each view is
    seeded per component whatever ran before or beside it, so the partitions are those solved in a row (igraph's
    random generator is held by one seeded caller at a time: :func:`fraudkit.randomness.igraph_seeded`). On Spark
    (``spark`` given) they are solved when :meth:`result` asks, on the cluster."""

    def __init__(self, *, method, resolution, seed, spark=None):
        self._kw = dict(method=method, resolution=resolution, seed=seed, spark=spark)
        self._pool = None if spark is not None else ThreadPoolExecutor(max_workers=2,
                                                                        thread_name_prefix="fraudkit-communities")
        self._views = {}
        # views solving, and how many may: one, and one more for each wait of the stage in result()
        self._gate = threading.Condition()
        self._running, self._allowed = 0, 1
        self._queue = []  # views submitted and not started yet, in their order

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if self._pool is not None:
            # after an error the stage fails at once, the views not started are dropped; the graph being solved
            # is not waited for here (the interpreter waits for it on exit, or its child stops with the run's)
            with self._gate:  # a view waiting for its turn is dropped at once
                self._queue.clear()
                self._gate.notify_all()
            self._pool.shutdown(wait=kind is None, cancel_futures=True)
        self._views.clear()

    def start(self, name, edges):
        """Start the communities of view ``name`` (``src``, ``dst``, ``weight``; edges weighing 0 or less are
        left out)."""
        if not (edges["weight"].to_numpy() > 0).all():
            edges = edges[edges["weight"] > 0]
        if not len(edges):
            self._views[name] = (edges, None)
        elif self._pool is None:
            self._views[name] = (edges, functools.partial(communities_by_component, edges, **self._kw))
        else:
            with self._gate:
                self._queue.append(name)
            self._views[name] = (edges, self._pool.submit(self._solve, name, edges))

    def _solve(self, name, edges):
        """A worker's view: started when it is the next in order and fewer views solve than are allowed."""
        with self._gate:
            while self._queue and (self._queue[0] != name or self._running >= self._allowed):
                self._gate.wait()
            if name not in self._queue:  # dropped (the stage failed)
                return None
            self._queue.remove(name)
            self._running += 1
            self._gate.notify_all()  # the next in order may be allowed too
        try:
            return communities_by_component(edges, **self._kw)
        finally:
            with self._gate:
                self._running -= 1
                self._gate.notify_all()

    def result(self, name):
        """``(edges, partition)`` of view ``name``: its positive edges and their :class:`Partition` (None when it
        has no edge); the view is forgotten. While it waits, the next view may start beside it."""
        edges, job = self._views.pop(name)
        if job is None:
            return edges, None
        if callable(job):
            return edges, job()
        with self._gate:  # the stage's core lent while it waits
            self._allowed += 1
            self._gate.notify_all()
        try:
            return edges, job.result()
        finally:
            with self._gate:
                self._allowed -= 1


class _Steps:
    """Per-step wall time, sizes, resident memory after the step and peak RSS of one run: the ``timings`` artifact.
    ``release``: called at the end of each step, to hand what the step freed back to the system (the SQL's and
    the heap's, :func:`release_memory`) before the next allocates its own."""

    def __init__(self, progress=None, mode="score", release=None):
        self.rows = []
        self._t = self._t0 = time.perf_counter()
        self._progress, self._mode, self._release = progress, mode, release

    def done(self, step, *, rows_in=None, nodes=None, edges=None):
        if self._release is not None:
            self._release()
        now = time.perf_counter()
        self.rows.append({"step": step, "seconds": round(now - self._t, 3), "rows_in": rows_in, "nodes": nodes,
                          "edges": edges, "rss_mb": _rss_mb(),
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        _log.info("graph stage: %s %.1f s (rows in %s, nodes %s, edges %s, RSS %.0f MB, peak %.0f MB)", step,
                  now - self._t, rows_in, nodes, edges, self.rows[-1]["rss_mb"], self.rows[-1]["peak_rss_mb"])
        if self._progress is not None and now - self._t >= 1.0:  # the steps a reader waits for
            size = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in
                             (("rows_in", rows_in), ("nodes", nodes), ("edges", edges)) if v is not None)
            self._progress.say(f"{self._mode} · graph stage · {step}: done, {size + ', ' if size else ''}"
                               f"{now - self._t:.1f} s")
        self._t = now

    def table(self):
        t = pd.DataFrame(self.rows, columns=["step", "seconds", "rows_in", "nodes", "edges", "rss_mb", "peak_rss_mb"])
        for c in ("rows_in", "nodes", "edges"):
            t[c] = t[c].astype("Int64")
        total = pd.DataFrame({"step": ["total"], "seconds": [round(time.perf_counter() - self._t0, 3)],
                              "peak_rss_mb": [t["peak_rss_mb"].max() if len(t) else np.nan]})
        return pd.concat([t, total], ignore_index=True)


def _rss_mb():
    """The process's resident memory now (MB; NaN where /proc is not there): what a step left held."""
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        return float("nan")


def _external_seeds(seeds, notes):
    if seeds is None:
        return np.array([], dtype=object), "none"
    if isinstance(seeds, SeedPool):
        return seeds.keys("account"), "seed_pool"
    if isinstance(seeds, pd.DataFrame):
        t = seeds
        if "entity_type" in t.columns:
            t = t[t["entity_type"] == "account"]
        if "flagged" in t.columns:
            t = t[t["flagged"].astype(bool)]
        col = "entity_id" if "entity_id" in t.columns else "account_id"
        if col not in t.columns:
            notes.append("seed pool ignored: a seed table needs entity_id or account_id")
            return np.array([], dtype=object), "none"
        return t[col].drop_duplicates().to_numpy(), "context"
    return np.asarray(list(seeds), dtype=object), "context"


def _seed_pool(context, source, flagged, scores, strong):
    pool = context.seed_pool if isinstance(context.seed_pool, SeedPool) else SeedPool.empty()
    new = pd.concat([
        pd.DataFrame({"entity_type": "account", "entity_id": flagged.astype(str), "source": "graph", "score": scores}),
        pd.DataFrame({"entity_type": strong["entity_type"].to_numpy(), "entity_id": strong["entity_id"].astype(str).to_numpy(),
                      "source": "strong_entity", "score": strong["risky_share"].to_numpy(float)}),
    ], ignore_index=True)
    return pool.update(new, run_id=str("graph" if context.run_id is None else context.run_id), seen_at=context.now)


def _explanations(flagged, cm, strong, hg, adj, key_index, seeds):
    cols = ["account_id", "view", "community", "community_score", "community_reason", "shared_entities",
            "nearest_seed", "path", "path_length"]
    if not len(flagged):
        return pd.DataFrame(columns=cols)
    best = cm.sort_values("score", ascending=False, kind="stable").drop_duplicates("account_id").set_index("account_id")
    b = best.reindex(flagged)
    # strong entities each flagged account uses
    acc_nodes = hg.node_index("account", flagged)
    e = hg.edges
    sn = pd.Index(strong["node"].to_numpy())
    use = e[e["src"].isin(acc_nodes[acc_nodes >= 0]) & e["dst"].isin(sn)][["src", "dst"]].drop_duplicates()
    label = (strong["entity_type"].astype(str) + ":" + strong["entity_id"].astype(str)).to_numpy()
    use = use.assign(lbl=label[sn.get_indexer(use["dst"])])
    ents = use.groupby("src")["lbl"].agg(lambda s: ", ".join(sorted(s)[:5]))
    shared_txt = pd.Series(acc_nodes).map(ents).fillna("").to_numpy()
    # shortest path to a seed over the combined account graph
    src_idx = key_index.get_indexer(pd.Index(seeds))
    src_idx = src_idx[src_idx >= 0]
    tgt = key_index.get_indexer(pd.Index(flagged))
    if len(src_idx):
        nearest, paths = explain_paths(adj, src_idx, tgt)
    else:
        nearest, paths = np.full(len(tgt), -1), [[] for _ in tgt]
    keys = key_index.to_numpy()
    return pd.DataFrame({
        "account_id": flagged, "view": b["view"].to_numpy(), "community": b["community"].to_numpy(),
        "community_score": b["score"].to_numpy(float), "community_reason": b["reason"].fillna("").to_numpy(),
        "shared_entities": shared_txt,
        "nearest_seed": np.where(nearest >= 0, keys[np.maximum(nearest, 0)], None),
        "path": [" -> ".join(map(str, keys[pth])) for pth in paths],
        "path_length": [len(pth) - 1 if pth else -1 for pth in paths]}, columns=cols)
