"""Stage 2, group mining: device clusters, co-action groups, dense blocks, the association network.

``run`` turns four unsupervised group miners into per-account scores with the
methods ``device_cluster``, ``coaction``, ``dense_subgraph``, ``association``
and their combination ``group`` (the strongest group evidence an account has).
Each miner that lacks its input table is skipped with a note. A method flags an
account whose score is above the method's threshold: the fitted ``threshold_`` of
each estimator (the device clusterer, the co-action miner and the association network take their
default ``threshold`` unless their parameter dicts set one; the dense-subgraph detector takes the
``dense_threshold`` parameter).

The association classifier trains on the context's ``train`` (the pipeline's
training Dataset, ``fraudkit score --train``). When the dataset being scored *is*
the training dataset — the pipeline's operating-point pass (``mode="train"``) or
``--train`` naming the scored data — its groups are scored out-of-fold, so the
training world's scores, on which thresholds are set, are on the scale of a
world the classifier never saw. Otherwise the scored dataset's labels are never read.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from fraudkit.capability.graphs import EntityEvents
from fraudkit.capability.ipranges import ip24_array
from fraudkit.data.dataset import canonical_sort_keys
from fraudkit.data.engine import literal, quote
from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.identification.base import score_frame
from fraudkit.identification.graph.association import AssociationNetwork, UsageSummary, usage_summary
from fraudkit.identification.graph.dense import DenseSubgraphDetector
from fraudkit.identification.group.clusters import CoActionMiner, DeviceClusterer, candidates, device_usage_sql
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.frames import release_memory
from fraudkit.pipeline.progress import step
from fraudkit.pipeline.turns import Turns, alongside
from fraudkit.pipeline.stages import StageOutput, empty_scores

__all__ = ["run", "training_groups", "METHODS", "DEFAULTS"]

METHODS = ("device_cluster", "coaction", "dense_subgraph", "association", "group")
"""Score methods this stage writes, the combined one last."""

DEFAULTS = {
    "device_cluster": {"min_samples": 3, "eps": 0.8},
    "coaction": {"min_group_size": 5, "min_jaccard": 0.3, "min_targets": 2},
    "coaction_actions": ("like", "collect", "comment", "share", "follow"),
    "dense": {"max_blocks": 10, "min_rows": 5, "min_cols": 2},
    "dense_min_excess": 0.2,
    "dense_min_lift": 5.0,
    "association": {"window": "1D", "max_component_size": 200, "min_group_size": 3},
    "dense_threshold": 0.5,
    "candidate_min_score": 0.7,
}
"""Parameters; ``RunContext(group={...})`` overrides them key by key. ``device_cluster``, ``coaction`` and
``association`` are the estimators' keyword arguments (their ``threshold`` is the estimator's own default,
0.5, 0.5 and 0.6, unless given there)."""


def run(ds, *, context=None) -> StageOutput:
    """Run the group stage on a dataset.

    Parameters
    ----------
    ds : fraudkit.data.dataset.Dataset
    context : RunContext, optional
        Reads ``seed``, ``group`` (parameter overrides, see :data:`DEFAULTS`), ``train`` (a labelled
        Dataset to train the association classifier on) and ``mode`` (``"train"``: ``ds`` is itself the
        labelled training dataset, scored out-of-fold).

    Returns
    -------
    fraudkit.pipeline.stages.StageOutput

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.data.dataset import Dataset
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": None})
    >>> it = pd.DataFrame({"event_id": [1], "ts": pd.to_datetime(["2024-01-02"]), "account_id": [1],
    ...                    "device_id": [None], "ip": ["1.2.3.4"], "action": ["like"], "target_id": [9]})
    >>> out = run(Dataset.from_tables({"accounts": acc, "interactions": it}))
    >>> sorted(out.scores["method"].unique().tolist())
    ['association', 'coaction', 'dense_subgraph', 'group']
    """
    if context is None:
        context = RunContext()
    if not isinstance(context, RunContext):
        raise FraudkitError(f"context must be a RunContext, got {type(context).__name__}; "
                            "e.g. run(ds, context=RunContext(seed=0, group={'dense_threshold': 0.6}))")
    seed = context.seed
    p = context.parameters("group", DEFAULTS)
    # a local copy of a Spark dataset: the stage's SQL (pairs, usage codes, ordered reads) runs on Spark
    ds = ds.transform_dataset
    notes, artifacts, per_method, thresholds = [], {}, {}, {}
    times: list = []
    timed = lambda name: _timed(context, times, name, ds)  # noqa: E731
    with timed("load"):
        accounts = ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"])
        devices = ds.to_pandas("devices") if ds.has("devices") else None
    acc_ids = accounts["account_id"].to_numpy()
    cand_sources = []
    # each miner reads only its columns, reduced and encoded in SQL (IP addresses as integer codes), and its
    # frames are freed when it is done: no table of the dataset is held whole in pandas

    # 1. device clusters on a worker thread, beside 2. the co-action groups (interactions; orders as a second
    # item space): neither reads the other's results or draws from a generator the other does, their DuckDB
    # statements go one at a time (QUERY_LOCK), and each keeps its notes, artifacts and timings apart, added in
    # the order of the steps, so the stage's outputs are those of the steps one after the other (on large each
    # ran at 1.1-1.5 cores of 2 alone)
    devs, dev_times = ([], {}, {}, {}, []), []

    def device_clusters():
        with _timed(context, dev_times, "device clusters", ds):
            _device_clusters(ds, devices, p, *devs)

    co, co_times = ([], {}, {}, {}, []), []
    # interrupted or failed: the device clusters are stopped before the error goes on
    with alongside(device_clusters, name="fraudkit-device-clusters") as job:
        with _timed(context, co_times, "co-action groups", ds):
            acts = _coaction_events(ds, p["coaction_actions"])
            _coaction(ds, acts, p, seed, *co)
        job.result()
    times += dev_times + co_times
    for mine in (devs, co):
        _add_results(mine, notes, artifacts, per_method, thresholds, cand_sources)

    # 3. dense blocks on account x target and 4. the association network: the association network on a worker
    # thread, the dense blocks while its Leiden child solves (networkit's, about 40 s on large, when its graph is
    # large enough); one of them works at a time (Turns), so they run in one order whatever the timing, and the
    # dense blocks' memory adds to what the association holds while it waits, not to its peak
    mine = ([], {}, {}, {}, [])  # the association's notes, artifacts, per-method scores, thresholds, candidates

    def association():
        with timed("association network"):
            _association(ds, accounts, devices, context, p, seed, *mine)

    turns = Turns()
    # interrupted or failed: the association is stopped before the stage's error goes on
    with turns.beside(association) as job:
        with turns.turn(), timed("dense blocks"):
            _dense(acts, p, notes, artifacts, per_method, thresholds, cand_sources)
        del acts
        job.result()
    del accounts, devices  # not read again
    # the association's results after the dense blocks', as in the order of the steps
    _add_results(mine, notes, artifacts, per_method, thresholds, cand_sources)
    with timed("scores"):
        scores = _scores(acc_ids, per_method, thresholds)
        artifacts["candidates"] = candidates(*cand_sources, min_score=p["candidate_min_score"])
        artifacts["candidates"]["account_id"] = artifacts["candidates"]["account_id"].astype(str)
    artifacts["timings"] = pd.DataFrame(times, columns=["step", "seconds", "peak_rss_mb"])
    return StageOutput(stage="group", scores=scores, artifacts=artifacts, notes=notes)


# --- private helpers ---------------------------------------------------------


@contextmanager
def _timed(context, times, name, ds=None):
    """A step of the stage: a progress line and a row of the ``timings`` artifact (seconds, peak RSS); what the
    step's SQL and frames freed is handed back to the system at its end (:func:`release_memory`)."""
    t = time.perf_counter()
    with step(context.progress, context.mode, f"group stage · {name}"):
        yield
        release_memory(ds)
    times.append({"step": name, "seconds": round(time.perf_counter() - t, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def _add_results(mine, notes, artifacts, per_method, thresholds, cand_sources) -> None:
    """Add a step's own ``(notes, artifacts, per-method scores, thresholds, candidates)``, kept apart while it ran
    beside another step, to the stage's."""
    notes += mine[0]
    for held, got in zip((artifacts, per_method, thresholds), mine[1:4]):
        held.update(got)
    cand_sources += mine[4]


def _device_clusters(ds, devices, p, notes, artifacts, per_method, thresholds, cand_sources):
    if devices is not None:
        # the clusterer's per-device aggregates (hour x action counts, distinct accounts, /24 counts) reduced in
        # DuckDB, not a 35M-row stack of interactions and logins in pandas
        dc = DeviceClusterer(**p["device_cluster"]).fit(devices, usage=_device_usage(ds))
        a = dc.account_scores(_account_devices(ds))
        per_method["device_cluster"] = a
        thresholds["device_cluster"] = dc.threshold_
        cl = dc.clusters_
        artifacts["device_clusters"] = dc.device_features_.drop(columns=["_hours"]).merge(
            cl, on="cluster_id", how="left", suffixes=("_device", ""))
        artifacts["device_clusters"] = artifacts["device_clusters"][artifacts["device_clusters"]["cluster_id"] >= 0]
        size = a["cluster_id"].map(a.groupby("cluster_id").size())
        cand_sources.append(a.assign(group_id="d" + a["cluster_id"].astype(str), kind="device_cluster",
                                     group_size=size))
    else:
        notes.append("device_cluster skipped: the dataset has no devices table")


def _account_devices(ds) -> pd.DataFrame:
    """Distinct ``account_id, device_id`` pairs of interactions and logins, reduced in DuckDB.

    An account's pairs come in the order of its first use of each device (interactions before logins, then
    time, then device id: the order in which the tables' canonical rows first show them), so that
    :meth:`DeviceClusterer.account_scores` picks the same device among equally scored ones as it does on the
    events themselves.
    """
    parts = [f"SELECT account_id, device_id, 0 AS src, min(ts) AS t FROM {quote(ds.view('interactions'))} "
             "WHERE account_id IS NOT NULL AND device_id IS NOT NULL GROUP BY account_id, device_id"]
    if ds.has("logins"):
        parts.append(f"SELECT account_id, device_id, 1 AS src, min(ts) AS t FROM {quote(ds.view('logins'))} "
                     "WHERE account_id IS NOT NULL AND device_id IS NOT NULL GROUP BY account_id, device_id")
    q = (f"SELECT account_id, device_id, min(src) AS src, coalesce(min(CASE WHEN src = 0 THEN t END), min(t)) AS t "
         f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY account_id, device_id")
    return ds.engine.to_pandas(f"SELECT account_id, device_id FROM ({q}) p "
                               "ORDER BY account_id, src, t NULLS LAST, device_id")


def _ordered(ds, name, select, columns, *, where="", joins=""):
    """``SELECT select FROM name`` in the canonical order of ``ds.to_pandas(name, columns=columns)``.

    The rows come in the order the whole table read with ``columns`` would have them (its time column, then
    every other column of ``columns``, nulls last), whatever ``select`` keeps of them; the table's view is
    ``t`` in ``select``, ``where`` and ``joins``.
    """
    keys = ", ".join(f"t.{quote(k)} NULLS LAST" for k in canonical_sort_keys(name, columns))
    return ds.engine.to_pandas(f"SELECT {select} FROM {quote(ds.view(name))} t {joins} {where} ORDER BY {keys}")


def _coaction_events(ds, actions) -> pd.DataFrame:
    """``account_id, target_id, ts`` of the co-action interactions, in the interactions' canonical order."""
    if not ds.has("interactions"):
        ds.view("interactions")  # the stage needs interactions: the dataset's own error
    acts = ", ".join(literal(a) for a in actions)
    return _ordered(ds, "interactions", "t.account_id, t.target_id, t.ts", _INTERACTION_COLUMNS,
                    where=f"WHERE t.action IN ({acts})")


_INTERACTION_COLUMNS = ["account_id", "device_id", "ip", "action", "target_id", "ts"]
_USAGE_SOURCES = {"logins": ["account_id", "device_id", "ip", "ts"],
                  "orders": ["order_id", "ts", "account_id", "device_id", "ip", "product_id", "coupon_id",
                             "promotion_id", "address", "receiver_phone"],
                  "coupon_claims": ["account_id", "device_id", "ip", "ts", "promotion_id"],
                  "interactions": _INTERACTION_COLUMNS}
"""The tables the association network's usage rows come from, in its order, with the columns whose canonical
order the rows keep (the order the stage read them in whole)."""

_TABLE_STRIDE = 2 ** 40
"""Row positions of the stacked usage rows: table index times this, plus the row's rank in its table."""


def _device_usage(ds) -> dict:
    """Interactions and logins reduced in DuckDB to the device clusterer's per-device aggregates."""
    parts = [f"SELECT device_id, account_id, ip, ts, action FROM {ds.view('interactions')}"]
    if ds.has("logins"):
        parts.append(f"SELECT device_id, account_id, ip, ts, 'login' AS action FROM {ds.view('logins')}")
    return device_usage_sql(" UNION ALL ".join(parts), ds.engine.to_pandas)  # Arrow to pandas, not through ibis


def _coaction(ds, acts, p, seed, notes, artifacts, per_method, thresholds, cand_sources):
    cm = CoActionMiner(**p["coaction"], seed=seed).fit(acts)
    a = cm.account_scores().assign(group_id=lambda x: "i" + x["group_id"].astype(str))
    groups = [cm.groups_.assign(source="interactions", group_id=lambda x: "i" + x["group_id"].astype(str))]
    if ds.has("orders"):
        orders = _ordered(ds, "orders", "t.account_id, t.product_id, t.ts", _USAGE_SOURCES["orders"])
        co = CoActionMiner(**p["coaction"], seed=seed).fit(orders, target="product_id")
        del orders
        groups.append(co.groups_.assign(source="orders", group_id=lambda x: "o" + x["group_id"].astype(str)))
        ao = co.account_scores().assign(group_id=lambda x: "o" + x["group_id"].astype(str))
        a = _best(pd.concat([a, ao], ignore_index=True))
    else:
        notes.append("coaction on orders skipped: the dataset has no orders table")
    per_method["coaction"] = a
    thresholds["coaction"] = cm.threshold_
    g = pd.concat(groups, ignore_index=True)
    g["targets"] = g["targets"].map(lambda t: [str(x) for x in t])
    artifacts["coaction_groups"] = g
    cand_sources.append(a.assign(kind="coaction", group_size=a["group_id"].map(g.set_index("group_id")["n_accounts"])))


def _dense(acts, p, notes, artifacts, per_method, thresholds, cand_sources):
    edges = acts[["account_id", "target_id"]].drop_duplicates()
    if len(edges):
        # FRAUDAR's average mass favours cores of heavy honest users: a block is scored by the edges beyond
        # what its members' degrees predict (DenseSubgraphDetector, score="excess"), 0.5 where both the
        # excess share and the lift reach their minimum
        det = DenseSubgraphDetector(**p["dense"], min_excess=p["dense_min_excess"], min_lift=p["dense_min_lift"],
                                    threshold=p["dense_threshold"]).fit(edges)
        members = det.members_
        ex = (det.excess_ if det.excess_ is not None else pd.DataFrame(columns=["block_id", "lift", "excess_share"]))
        ex = ex.set_index("block_id")
        members = members.assign(lift=ex["lift"].reindex(members["block_id"]).to_numpy(),
                                 excess_share=ex["excess_share"].reindex(members["block_id"]).to_numpy())
        inside = det.block_ids_ >= 0
        a = pd.DataFrame({"account_id": det.entity_ids_[inside], "score": det.decision_scores_[inside],
                          "group_id": det.block_ids_[inside], "reason": det.reasons_[inside]})
        per_method["dense_subgraph"] = a
        thresholds["dense_subgraph"] = det.threshold_
        artifacts["dense_blocks"] = members.assign(entity_id=members["entity_id"].astype(str))
        cand_sources.append(a.assign(kind="dense_subgraph", group_id="b" + a["group_id"].astype(str),
                                     group_size=a["group_id"].map(a.groupby("group_id").size())))
    else:
        notes.append("dense_subgraph skipped: no like/collect/comment/share/follow interactions")


def _association(ds, accounts, devices, context, p, seed, notes, artifacts, per_method, thresholds,
                 cand_sources):
    an = AssociationNetwork(**p["association"], seed=seed)
    kw = _association_training(ds, context, notes)
    tables, usage = _association_inputs(ds, accounts, devices)
    try:
        an.fit(tables, usage=usage, **kw)
    except MissingInputError as e:
        if not kw:
            raise
        notes.append(f"association classifier not trained ({e}); unsupervised score only")
        an.fit(tables, usage=usage)
    del tables, usage
    a = an.account_scores()
    per_method["association"] = a
    thresholds["association"] = an.threshold_
    artifacts["association_groups"] = an.features_.merge(
        an.membership_.groupby("group_id")["account_id"].apply(lambda s: [str(x) for x in s]).rename("members"),
        on="group_id", how="left")
    cand_sources.append(a.assign(kind="association", group_id="a" + a["group_id"].astype(str)))


def _association_inputs(ds, accounts, devices):
    """The association network's tables and its usage rows, IP addresses as integer codes (see
    :meth:`AssociationNetwork.fit`): the rows of each table in the order the stage read them in whole, so the
    groups (whose graph numbers accounts and resources by first appearance) are those of the addresses.
    """
    tables = {"accounts": accounts}
    if devices is not None:
        tables["devices"] = devices[["device_id", "is_emulator", "is_rooted"]]
    if ds.has("orders"):
        tables["orders"] = _ordered(ds, "orders", "t.account_id, t.coupon_id, t.promotion_id, t.address, "
                                    "t.receiver_phone", _USAGE_SOURCES["orders"])
    if ds.has("coupon_claims"):
        tables["coupon_claims"] = _ordered(ds, "coupon_claims", "t.account_id", _USAGE_SOURCES["coupon_claims"])
    usage = _usage_summary(ds)
    # what its SQL's DuckDB kept (3.3 GB on large, the 38M stacked usage rows), before the graph is built in memory
    release_memory(ds)
    return tables, usage


def _usage_summary(ds) -> UsageSummary:
    """The association network's :class:`UsageSummary` of logins, orders, coupon claims and interactions, in SQL.

    No usage row reaches pandas (38M on the large scenario): the device and IP uses come reduced to the first
    of each run of one account on one medium (:class:`fraudkit.capability.graphs.EntityEvents`), accounts and
    media numbered by first appearance in the rows stacked in the association network's order (the tables in
    that order, each in the canonical order the stage read it in whole), so the groups are those of the rows;
    the features read per-account aggregates. IP addresses are integer codes (ranked in SQL) and their /24
    networks codes of :func:`fraudkit.capability.ipranges.ip24_array` of the distinct addresses.
    """
    names = [n for n in _USAGE_SOURCES if ds.has(n)]
    if not names:
        return usage_summary(pd.DataFrame({"account_id": [], "device_id": [], "ip": [], "ip24": [],
                                           "ts": pd.Series(dtype="datetime64[ns]")}))
    codes = "_fraudkit_group_ip_codes"
    every = " UNION ALL ".join(f"SELECT ip FROM {quote(ds.view(n))}" for n in names)
    ds.engine.create_table(codes, f"SELECT ip, CAST(row_number() OVER (ORDER BY ip) - 1 AS INTEGER) AS code "
                                  f"FROM (SELECT DISTINCT ip FROM ({every}) a WHERE ip IS NOT NULL) d")
    made = [codes]
    try:
        ips = ds.engine.to_pandas(f"SELECT ip, code FROM {quote(codes)} ORDER BY code")
        net, _ = pd.factorize(pd.Series(ip24_array(ips["ip"].to_numpy(object)), dtype=object))
        net = np.where(net >= 0, net, np.nan)  # code -> /24 code
        del ips

        # the usage rows stacked in the association network's order, each with its ordinal, materialised once:
        # the two media's first uses, their runs and the hours all read them (each used to re-read the tables,
        # re-join the address codes and, for the first uses, re-sort every table for its ordinal)
        parts = []
        for i, name in enumerate(names):
            # the columns after (ts, account_id, device_id, ip) in a table's sort only order rows equal in
            # all that is read here, so they are left out of the sort (not the orders' order_id, which
            # comes first)
            cols = _USAGE_SOURCES[name] if name == "orders" else ["ts", "account_id", "device_id", "ip"]
            # the address codes rank the addresses: sorting by them is sorting by the addresses, on integers
            keys = ", ".join(("c.code" if k == "ip" else f"t.{quote(k)}") + " NULLS LAST"
                             for k in canonical_sort_keys(name, cols))
            parts.append(f"SELECT t.account_id, t.device_id, c.code AS ip, t.ts, CAST({i} AS BIGINT) * {_TABLE_STRIDE} "
                         f"+ row_number() OVER (ORDER BY {keys}) AS o FROM {quote(ds.view(name))} t "
                         f"LEFT JOIN {quote(codes)} c ON t.ip = c.ip")
        stacked = "_fraudkit_group_rows"
        made.append(stacked)
        ds.engine.create_table(stacked, " UNION ALL ".join(parts))
        events, pairs = {}, {}
        for res, col in (("device", "device_id"), ("ip", "ip")):
            first, acc, ent = (f"_fraudkit_group_{res}_{x}" for x in ("first", "accounts", "entities"))
            made += [first, acc, ent]
            # each (account, medium) pair with the position of its first row, then both numbered by it
            ds.engine.create_table(first, f"SELECT account_id, {col} AS e, min(o) AS f FROM {quote(stacked)} u "
                                          f"WHERE account_id IS NOT NULL AND {col} IS NOT NULL "
                                          f"GROUP BY account_id, {col}")
            for table, key in ((acc, "account_id"), (ent, "e")):
                ds.engine.create_table(table, f"SELECT {key}, CAST(row_number() OVER (ORDER BY f) - 1 AS BIGINT) "
                                              f"AS code FROM (SELECT {key}, min(f) AS f FROM {quote(first)} "
                                              f"GROUP BY {key}) g")
            keys = ds.engine.to_pandas(f"SELECT account_id FROM {quote(acc)} ORDER BY code")["account_id"]
            used = (f"SELECT a.code AS acc, n.code AS ent, CAST(epoch(date_trunc('second', u.ts)) AS BIGINT) AS sec "
                    f"FROM {quote(stacked)} u JOIN {quote(acc)} a ON u.account_id = a.account_id "
                    f"JOIN {quote(ent)} n ON u.{col} = n.e")
            # the first use of each run of one account on one medium in (medium, time, account) order
            ev = ds.engine.to_pandas(_run_starts(used, split=res == "device"))
            events[res] = EntityEvents(keys.to_numpy(np.int64), ev["acc"].to_numpy(np.int64),
                                       ev["ent"].to_numpy(np.int64), ev["sec"].to_numpy(np.int64))
            del ev
            pairs[res] = ds.engine.to_pandas(f"SELECT account_id, e FROM {quote(first)}")
        hours = ds.engine.to_pandas(f"SELECT account_id, CAST(hour(ts) AS DOUBLE) AS hour, count(*) AS n, "
                                    f"min(ts) AS first FROM {quote(stacked)} u GROUP BY account_id, hour(ts)")
    finally:
        for table in made:
            ds.engine.drop(table)
    first_use = (hours["first"].astype("datetime64[ns]").groupby(hours["account_id"].to_numpy(np.int64)).min()
                 .rename_axis("account_id"))
    devices = pairs["device"].rename(columns={"e": "device_id"})
    ip = pairs["ip"]
    ip24 = net[ip["e"].to_numpy(np.int64)]
    networks = (pd.DataFrame({"account_id": ip["account_id"].to_numpy(np.int64)[~np.isnan(ip24)],
                              "ip24": ip24[~np.isnan(ip24)]}).drop_duplicates(ignore_index=True))
    return UsageSummary(events, first_use, hours[["account_id", "hour", "n"]], devices, networks)


def _run_starts(used: str, *, split: bool) -> str:
    """SQL: the rows ``(acc, ent, sec)`` of the query ``used`` that start a run of one account on one medium in (medium,
    time, account) order. The rows come in no order (the projection sorts them).

    With ``split``, a medium only one account uses is one run, its first use (its earliest second): the window
    sorts only the shared media's rows. On large's 38M device uses (a device is mostly one person's) that took
    4.9 s against 9.4 s with the same rows; on its IP uses, most of them on shared addresses, 12.8 s against 11.8 s,
    so the IPs are not split.

    Examples
    --------
    >>> import duckdb
    >>> used = "SELECT * FROM (VALUES (1, 7, 5), (1, 7, 9), (2, 8, 3), (3, 8, 4), (2, 8, 6)) v(acc, ent, sec)"
    >>> sorted(duckdb.sql(_run_starts(used, split=True)).fetchall())
    [(1, 7, 5), (2, 8, 3), (2, 8, 6), (3, 8, 4)]
    >>> sorted(duckdb.sql(_run_starts(used, split=False)).fetchall())
    [(1, 7, 5), (2, 8, 3), (2, 8, 6), (3, 8, 4)]
    """
    window = ("SELECT acc, ent, sec FROM (SELECT acc, ent, sec, lag(acc) OVER (PARTITION BY ent ORDER BY sec, acc) "
              "AS prev FROM {rows}) w WHERE prev IS NULL OR prev <> acc")
    if not split:
        return window.format(rows=f"({used}) j")
    return (f"WITH j AS (SELECT acc, ent, sec FROM ({used}) u), "
            "m AS (SELECT ent, min(acc) = max(acc) AS one, min(acc) AS acc, min(sec) AS sec FROM j GROUP BY ent) "
            "SELECT acc, ent, sec FROM m WHERE one UNION ALL "
            + window.format(rows="(SELECT j.acc, j.ent, j.sec FROM j SEMI JOIN (SELECT ent FROM m WHERE NOT one) x "
                                 "USING (ent)) s"))


def _scores(acc_ids, per_method, thresholds):
    parts, combined = [], []
    for method in METHODS[:-1]:
        if method not in per_method:
            continue
        a = per_method[method].drop_duplicates("account_id")
        s = pd.Series(a["score"].to_numpy(float), index=a["account_id"]).reindex(acc_ids).fillna(0.0)
        r = pd.Series(a["reason"].to_numpy(object), index=a["account_id"]).reindex(acc_ids).fillna("")
        thr = thresholds[method]
        parts.append(score_frame(acc_ids, s.to_numpy(), s.to_numpy() > thr, entity_type="account", stage="group",
                                 method=method, reasons=r.to_numpy()))
        combined.append(pd.DataFrame({"s": s.to_numpy(), "f": s.to_numpy() > thr,
                                      "r": np.where(s.to_numpy() > 0, method + ": " + r.to_numpy().astype(str), "")}))
    if combined:
        S = np.column_stack([c["s"] for c in combined])
        F = np.column_stack([c["f"] for c in combined])
        R = np.column_stack([c["r"] for c in combined])
        best = S.argmax(1)
        fl = F.any(1)
        # a flagged method's reason beats a higher unflagged score
        pick = np.where(fl, np.argmax(np.where(F, S, -1), 1), best)
        parts.append(score_frame(acc_ids, S.max(1), fl, entity_type="account", stage="group", method="group",
                                 reasons=R[np.arange(len(acc_ids)), pick]))
    return pd.concat(parts, ignore_index=True) if parts else empty_scores()


def _best(a: pd.DataFrame) -> pd.DataFrame:
    return a.sort_values(["account_id", "score"], ascending=[True, False], kind="stable").drop_duplicates("account_id")


def _association_training(ds, context, notes) -> dict:
    """Keyword arguments of :meth:`AssociationNetwork.fit` for the training data in ``context``."""
    train = context.train
    if context.mode == "train" and getattr(ds, "labels", None) is not None:
        train = ds
    if train is None or getattr(train, "labels", None) is None:
        notes.append("association: no training dataset; unsupervised score only (IsolationForest + risk index)")
        return {}
    fp = getattr(train, "fingerprint", None)
    if train is ds or (fp is not None and fp == getattr(ds, "fingerprint", None)):
        notes.append("association classifier trained on this (training) dataset's labelled groups; its "
                     "groups are scored out-of-fold")
        return {"labels": train.labels}
    notes.append("association classifier trained on the training dataset's labelled groups")
    if context.train_groups is not None:  # built once for the run (score_dataset), or reused from another run
        return {"train_groups": context.train_groups}
    return {"train_tables": _assoc_tables(train), "train_labels": train.labels}


def training_groups(train, context) -> pd.DataFrame:
    """The association classifier's labelled training groups of the dataset ``train``, under ``context``'s
    group parameters and seed (:meth:`~fraudkit.identification.graph.association.AssociationNetwork.training_groups`).

    The stage trains its classifier on them (``context.train_groups``); they depend on ``train``, the
    parameters and the seed alone.

    Raises
    ------
    MissingInputError
        ``train`` gives no groups, or groups of one class only (the stage then scores without the classifier).
    """
    p = context.parameters("group", DEFAULTS)
    return AssociationNetwork(**p["association"], seed=context.seed).training_groups(_assoc_tables(train),
                                                                                     train.labels)


def _assoc_tables(ds) -> dict:
    t = {"accounts": ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"]),
         "interactions": ds.to_pandas("interactions", columns=["account_id", "device_id", "ip", "ts"])}
    for name in ("logins", "orders", "coupon_claims", "devices"):
        if ds.has(name):
            t[name] = ds.to_pandas(name)
    return t
