"""Stage 2, group mining: device clusters, co-action groups, dense blocks, the association network.

``run`` turns four unsupervised group miners into per-account scores with the
methods ``device_cluster``, ``coaction``, ``dense_subgraph``, ``association``
and their combination ``group`` (the strongest group evidence an account has).
Each miner that lacks its input table is skipped with a note. The association
classifier trains on ``context["train"]`` (the pipeline's training Dataset,
``fraudkit score --train``). When the dataset being scored *is* the training
dataset — the pipeline's operating-point pass (``context["train_pass"]``) or
``--train`` naming the scored data — its groups are scored out-of-fold, so the
training world's scores, on which thresholds are set, are on the scale of a
world the classifier never saw. Otherwise the scored dataset's labels are never read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.errors import MissingInputError
from fraudkit.identification.base import score_frame
from fraudkit.identification.graph.association import AssociationNetwork
from fraudkit.identification.graph.dense import block_excess, fraudar_frame
from fraudkit.identification.group.clusters import CoActionMiner, DeviceClusterer, candidates
from fraudkit.pipeline.stages import StageOutput, empty_scores

__all__ = ["run", "METHODS", "DEFAULTS"]

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
    "threshold": 0.5,
    "candidate_min_score": 0.7,
}
"""Parameters; ``context["group"]`` overrides them key by key."""

_THRESHOLDS = {"device_cluster": 0.5, "coaction": 0.5, "dense_subgraph": 0.5, "association": 0.6}


def run(ds, *, run_dir=None, seed=0, context=None) -> StageOutput:
    """Run the group stage on a dataset.

    Parameters
    ----------
    ds : fraudkit.data.dataset.Dataset
    run_dir : path or None
        Unused (artifacts are returned, the pipeline writes them).
    seed : int
    context : dict or None
        ``"group"``: parameter overrides (see :data:`DEFAULTS`);
        ``"train"``: a labelled Dataset to train the association classifier on (``"train_dataset"`` is
        read as well, for older callers); ``"train_pass"``: True when ``ds`` is itself the labelled
        training dataset (scored out-of-fold).

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
    >>> out = run(Dataset.from_tables({"accounts": acc, "interactions": it}), seed=0)
    >>> sorted(out.scores["method"].unique().tolist())
    ['association', 'coaction', 'dense_subgraph', 'group']
    """
    context = context or {}
    p = {**DEFAULTS, **context.get("group", {})}
    notes, artifacts, per_method = [], {}, {}
    accounts = ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"])
    acc_ids = accounts["account_id"].to_numpy()
    tables = {"accounts": accounts}
    for name, cols in (("logins", ["account_id", "device_id", "ip", "ts"]),
                       ("orders", ["order_id", "ts", "account_id", "device_id", "ip", "product_id", "coupon_id",
                                   "promotion_id", "address", "receiver_phone"]),
                       ("coupon_claims", ["account_id", "device_id", "ip", "ts", "promotion_id"]),
                       ("devices", None)):
        if ds.has(name):
            tables[name] = ds.to_pandas(name, columns=cols)
    inter = ds.to_pandas("interactions", columns=["account_id", "device_id", "ip", "action", "target_id", "ts"])
    tables["interactions"] = inter
    cand_sources = []

    # 1. device clusters
    if "devices" in tables:
        usage = pd.concat([inter[["account_id", "device_id", "ip", "ts", "action"]],
                           tables["logins"].assign(action="login") if "logins" in tables else None],
                          ignore_index=True)
        dc = DeviceClusterer(**p["device_cluster"], threshold=_THRESHOLDS["device_cluster"]).fit(tables["devices"], usage)
        a = dc.account_scores(usage)
        per_method["device_cluster"] = a
        cl = dc.clusters_
        artifacts["device_clusters"] = dc.device_features_.drop(columns=["_hours"]).merge(
            cl, on="cluster_id", how="left", suffixes=("_device", ""))
        artifacts["device_clusters"] = artifacts["device_clusters"][artifacts["device_clusters"]["cluster_id"] >= 0]
        size = a["cluster_id"].map(a.groupby("cluster_id").size())
        cand_sources.append(a.assign(group_id="d" + a["cluster_id"].astype(str), kind="device_cluster",
                                     group_size=size))
    else:
        notes.append("device_cluster skipped: the dataset has no devices table")

    # 2. co-action groups (interactions; orders as a second item space)
    acts = inter[inter["action"].isin(p["coaction_actions"])]
    cm = CoActionMiner(**p["coaction"], seed=seed).fit(acts)
    a = cm.account_scores().assign(group_id=lambda x: "i" + x["group_id"].astype(str))
    groups = [cm.groups_.assign(source="interactions", group_id=lambda x: "i" + x["group_id"].astype(str))]
    if "orders" in tables:
        co = CoActionMiner(**p["coaction"], seed=seed).fit(tables["orders"], target="product_id")
        groups.append(co.groups_.assign(source="orders", group_id=lambda x: "o" + x["group_id"].astype(str)))
        ao = co.account_scores().assign(group_id=lambda x: "o" + x["group_id"].astype(str))
        a = _best(pd.concat([a, ao], ignore_index=True))
    else:
        notes.append("coaction on orders skipped: the dataset has no orders table")
    per_method["coaction"] = a
    g = pd.concat(groups, ignore_index=True)
    g["targets"] = g["targets"].map(lambda t: [str(x) for x in t])
    artifacts["coaction_groups"] = g
    cand_sources.append(a.assign(kind="coaction", group_size=a["group_id"].map(g.set_index("group_id")["n_accounts"])))

    # 3. dense blocks on account x target
    edges = acts[["account_id", "target_id"]].drop_duplicates()
    if len(edges):
        blocks, members = fraudar_frame(edges, **p["dense"])
        # FRAUDAR's average mass favours cores of heavy honest users (their density is the graph's, a light
        # lockstep block's below it): a block is scored against what its members' degrees predict. It needs
        # both a share of its members' activity beyond chance (heavy cores: ~0) and a lift (honest accounts
        # sharing a few niche notes: high lift, tiny share); 0.5 where both reach their minimum
        ex = block_excess(edges, members).set_index("block_id")
        members = members.assign(lift=ex["lift"].reindex(members["block_id"]).to_numpy(),
                                 excess_share=ex["excess_share"].reindex(members["block_id"]).to_numpy())
        rows = members[members["side"] == "row"].copy()
        by_share = rows["excess_share"].to_numpy(float) / (2 * p["dense_min_excess"])
        by_lift = np.log(np.maximum(rows["lift"].to_numpy(float), 1.0)) / (2 * np.log(p["dense_min_lift"]))
        rows["score"] = np.clip(np.minimum(by_share, by_lift), 0, 1)
        rows = rows.rename(columns={"entity_id": "account_id"})
        rows["reason"] = ("dense block " + rows["block_id"].astype(str) + ": " + rows["n_rows"].astype(str)
                          + " accounts x " + rows["n_cols"].astype(str) + " targets, fill "
                          + rows["fill"].round(2).astype(str) + ", " + rows["lift"].round(1).astype(str)
                          + "x the edges their degrees predict, " + (100 * rows["excess_share"]).round().astype(int)
                          .astype(str) + "% of the members' activity beyond chance")
        a = _best(rows[["account_id", "score", "block_id", "reason"]].rename(columns={"block_id": "group_id"}))
        per_method["dense_subgraph"] = a
        artifacts["dense_blocks"] = members.assign(entity_id=members["entity_id"].astype(str))
        cand_sources.append(a.assign(kind="dense_subgraph", group_id="b" + a["group_id"].astype(str),
                                     group_size=a["group_id"].map(a.groupby("group_id").size())))
    else:
        notes.append("dense_subgraph skipped: no like/collect/comment/share/follow interactions")

    # 4. association network
    an = AssociationNetwork(**p["association"], seed=seed, threshold=_THRESHOLDS["association"])
    kw = _association_training(ds, context, notes)
    try:
        an.fit(tables, **kw)
    except MissingInputError as e:
        if not kw:
            raise
        notes.append(f"association classifier not trained ({e}); unsupervised score only")
        an.fit(tables)
    a = an.account_scores()
    per_method["association"] = a
    artifacts["association_groups"] = an.features_.merge(
        an.membership_.groupby("group_id")["account_id"].apply(lambda s: [str(x) for x in s]).rename("members"),
        on="group_id", how="left")
    cand_sources.append(a.assign(kind="association", group_id="a" + a["group_id"].astype(str)))

    # scores
    parts, combined = [], []
    for method in METHODS[:-1]:
        if method not in per_method:
            continue
        a = per_method[method].drop_duplicates("account_id")
        s = pd.Series(a["score"].to_numpy(float), index=a["account_id"]).reindex(acc_ids).fillna(0.0)
        r = pd.Series(a["reason"].to_numpy(object), index=a["account_id"]).reindex(acc_ids).fillna("")
        thr = _THRESHOLDS[method]
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
    scores = pd.concat(parts, ignore_index=True) if parts else empty_scores()
    artifacts["candidates"] = candidates(*cand_sources, min_score=p["candidate_min_score"])
    artifacts["candidates"]["account_id"] = artifacts["candidates"]["account_id"].astype(str)
    return StageOutput(stage="group", scores=scores, artifacts=artifacts, notes=notes)


# --- private helpers ---------------------------------------------------------


def _best(a: pd.DataFrame) -> pd.DataFrame:
    return a.sort_values(["account_id", "score"], ascending=[True, False], kind="stable").drop_duplicates("account_id")


def _association_training(ds, context, notes) -> dict:
    """Keyword arguments of :meth:`AssociationNetwork.fit` for the training data in ``context``."""
    train = context.get("train", context.get("train_dataset"))
    if context.get("train_pass") and getattr(ds, "labels", None) is not None:
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
    return {"train_tables": _assoc_tables(train), "train_labels": train.labels}


def _assoc_tables(ds) -> dict:
    t = {"accounts": ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"]),
         "interactions": ds.to_pandas("interactions", columns=["account_id", "device_id", "ip", "ts"])}
    for name in ("logins", "orders", "coupon_claims", "devices"):
        if ds.has(name):
            t[name] = ds.to_pandas(name)
    return t
