"""Stage 2, group mining: device clusters, co-action groups, dense blocks, the association network.

``run`` turns four unsupervised group miners into per-account scores with the
methods ``device_cluster``, ``coaction``, ``dense_subgraph``, ``association``
and their combination ``group`` (the strongest group evidence an account has).
Each miner that lacks its input table is skipped with a note. The labels of
the scored dataset are never read; the association classifier trains only on
``context["train_dataset"]`` when the pipeline passes a *different* labelled
dataset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..association import AssociationNetwork
from ..base import score_frame
from ..dense import fraudar_frame
from ..groups import CoActionMiner, DeviceClusterer, candidates
from . import StageOutput, empty_scores

__all__ = ["run", "METHODS", "DEFAULTS"]

METHODS = ("device_cluster", "coaction", "dense_subgraph", "association", "group")
"""Score methods this stage writes, the combined one last."""

DEFAULTS = {
    "device_cluster": {"min_samples": 3, "eps": 0.8},
    "coaction": {"min_group_size": 5, "min_jaccard": 0.3, "min_targets": 2},
    "coaction_actions": ("like", "collect", "comment", "share", "follow"),
    "dense": {"max_blocks": 10, "min_rows": 5, "min_cols": 2},
    "dense_min_ratio": 3.0,
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
    ds : fraudkit.io.Dataset
    run_dir : path or None
        Unused (artifacts are returned, the pipeline writes them).
    seed : int
    context : dict or None
        ``"group"``: parameter overrides (see :data:`DEFAULTS`);
        ``"train_dataset"``: a labelled Dataset to train the association classifier on.

    Returns
    -------
    fraudkit.stages.StageOutput

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.io import Dataset
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
        # the whole graph's weighted density, in the same log-weighted units as the blocks
        deg = edges["target_id"].map(edges["target_id"].value_counts()).to_numpy(float)
        base = (1.0 / np.log(deg + 5.0)).sum() / max(edges["account_id"].nunique() + edges["target_id"].nunique(), 1)
        rows = members[members["side"] == "row"].copy()
        ratio = rows["density"] / max(base, 1e-12)
        rows["score"] = np.clip(1 - p["dense_min_ratio"] / 2 / np.maximum(ratio, 1e-12), 0, 1)
        rows = rows.rename(columns={"entity_id": "account_id"})
        rows["reason"] = ("dense block " + rows["block_id"].astype(str) + ": " + rows["n_rows"].astype(str)
                          + " accounts x " + rows["n_cols"].astype(str) + " targets, fill "
                          + rows["fill"].round(2).astype(str) + ", " + ratio.round(1).astype(str)
                          + "x the graph's density")
        a = _best(rows[["account_id", "score", "block_id", "reason"]].rename(columns={"block_id": "group_id"}))
        per_method["dense_subgraph"] = a
        artifacts["dense_blocks"] = members.assign(entity_id=members["entity_id"].astype(str),
                                                   density_ratio=members["density"] / max(base, 1e-12))
        cand_sources.append(a.assign(kind="dense_subgraph", group_id="b" + a["group_id"].astype(str),
                                     group_size=a["group_id"].map(a.groupby("group_id").size())))
    else:
        notes.append("dense_subgraph skipped: no like/collect/comment/share/follow interactions")

    # 4. association network
    train = context.get("train_dataset")
    kw = {}
    if train is not None and train.labels is not None:
        kw = {"train_tables": _assoc_tables(train), "train_labels": train.labels}
        notes.append("association classifier trained on the training dataset's labelled groups")
    else:
        notes.append("association: no training dataset; unsupervised score only (IsolationForest + risk index)")
    an = AssociationNetwork(**p["association"], seed=seed, threshold=_THRESHOLDS["association"]).fit(tables, **kw)
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


def _assoc_tables(ds) -> dict:
    t = {"accounts": ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"]),
         "interactions": ds.to_pandas("interactions", columns=["account_id", "device_id", "ip", "ts"])}
    for name in ("logins", "orders", "coupon_claims", "devices"):
        if ds.has(name):
            t[name] = ds.to_pandas(name)
    return t
