"""The association network (NetEase, seed 002): shared-resource groups, sub-graph features, scoring.

Workflow, as the seed describes it:

1. collect every account-account relation through a shared resource (device,
   IP, phone, shipping address) inside a time window
   (:func:`fraudkit.capability.graphs.shared_entity_projection`, hot entities capped);
2. build one graph and partition it: connected components, then Leiden
   communities (:func:`fraudkit.identification.graph.communities.detect_communities`) for
   components larger than ``max_component_size``;
3. describe each sub-graph (:func:`group_features`): size, density,
   resource mix, new-account share, emulator share, registration and activity
   concentration, order / coupon behaviour;
4. score sub-graphs with an unsupervised anomaly detector (IsolationForest)
   blended with an absolute risk index, plus a supervised classifier when a
   *training* dataset with labels is given, and map the group score back to
   its accounts. The classifier scores a dataset it was trained on only
   out-of-fold (``labels=``: k-fold over its groups), so that a training world
   and a world it never saw are scored on the same scale (operating points are
   set on the training world).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fraudkit.capability.graphs import (EntityEvents, entity_events, group_sum, project_entity_events,
                                        shared_entity_projection)
from fraudkit.capability.ipranges import ip24_array
from fraudkit.data.contract import is_fraud_typology
from fraudkit.errors import MissingInputError
from fraudkit.identification.base import BaseScorer, check_is_fitted
from fraudkit.identification.graph.communities import detect_communities
from fraudkit.randomness import check_random_state

__all__ = ["RESOURCES", "build_association_groups", "group_features", "AssociationNetwork", "FEATURES", "UsageSummary",
           "usage_summary"]

RESOURCES = ("device", "ip", "phone", "address")
"""Resources that link accounts in the association network."""

FEATURES = ("size", "density", "mean_weight", "share_device", "share_ip", "share_phone", "share_address",
            "new_account_share", "registration_span_days", "emulator_share", "rooted_share",
            "hour_concentration", "accounts_per_device", "accounts_per_ip24", "orders_per_account",
            "coupon_order_share", "promotion_order_share", "addresses_per_account", "claims_per_account")
"""Sub-graph features, in the order the models see them."""

@dataclass(frozen=True)
class UsageSummary:
    """The usage rows of a dataset (``account_id, device_id, ip, ts`` of its logins, orders, coupon claims and
    interactions, stacked in that order) reduced to what the association network reads from them.

    Built from the rows by :func:`usage_summary`, or in SQL by a caller that never holds the rows (the group
    stage: 38M rows on the large scenario); both give the same groups and features.

    Attributes
    ----------
    events : dict of str to fraudkit.capability.graphs.EntityEvents
        ``"device"`` and ``"ip"``: the uses of each medium the projection reads
        (:func:`fraudkit.capability.graphs.entity_events` of the rows, time ``ts``).
    first_use : pandas.Series
        Earliest ``ts`` per ``account_id`` (the index).
    hours : pandas.DataFrame
        ``account_id, hour, n``: rows per account and hour of day (``hour`` float, NaN where ``ts`` is missing).
    devices : pandas.DataFrame
        ``account_id, device_id``: the distinct pairs with a device.
    networks : pandas.DataFrame
        ``account_id, ip24``: the distinct pairs of an account and the /24 network of an IPv4 address it used.
    """

    events: dict
    first_use: pd.Series
    hours: pd.DataFrame
    devices: pd.DataFrame
    networks: pd.DataFrame


def usage_summary(usage) -> UsageSummary:
    """The :class:`UsageSummary` of stacked usage rows.

    Parameters
    ----------
    usage : pandas.DataFrame
        ``account_id, device_id, ip, ts`` rows (``_usage``); an ``ip24`` column of /24 codes, when given, is read
        instead of the addresses (the ``ip`` values then only need to be equal where the addresses are).

    Returns
    -------
    UsageSummary

    Examples
    --------
    >>> import pandas as pd
    >>> u = pd.DataFrame({"account_id": [1, 2], "device_id": ["d", "d"], "ip": ["1.1.1.1", "1.1.1.2"],
    ...                   "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00"])})
    >>> usage_summary(u).networks["account_id"].tolist()
    [1, 2]
    """
    events = {res: entity_events(usage, key="account_id", entity=col, time="ts")
              for res, col in (("device", "device_id"), ("ip", "ip"))}
    ts = pd.to_datetime(usage["ts"])
    first = ts.groupby(usage["account_id"].to_numpy()).min() if len(usage) else pd.Series(dtype="datetime64[ns]")
    first.index.name = "account_id"
    hour = pd.DatetimeIndex(ts.to_numpy()).hour.to_numpy().astype(float)
    hours = (pd.DataFrame({"account_id": usage["account_id"].to_numpy(), "hour": hour})
             .groupby(["account_id", "hour"], dropna=False).size().rename("n").reset_index())
    has_dev = usage["device_id"].notna().to_numpy()
    devices = pd.DataFrame({"account_id": usage["account_id"].to_numpy()[has_dev],
                            "device_id": usage["device_id"].to_numpy()[has_dev]}).drop_duplicates(ignore_index=True)
    ip = usage["ip"].to_numpy()
    has_ip = pd.notna(ip)
    net = usage["ip24"].to_numpy() if "ip24" in usage else ip24_array(np.where(has_ip, ip, None))
    has_net = has_ip & pd.notna(net)
    networks = pd.DataFrame({"account_id": usage["account_id"].to_numpy()[has_net],
                             "ip24": net[has_net]}).drop_duplicates(ignore_index=True)
    return UsageSummary(events, first, hours, devices, networks)


def build_association_groups(tables, *, resources=RESOURCES, window="1D", max_degree=200,
                             min_edge_weight=0.0, max_component_size=200, resolution=1.0, min_group_size=3,
                             seed=None, usage=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link accounts by shared resources and cut the graph into sub-graphs.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Contract tables; uses ``logins``, ``orders``, ``coupon_claims``,
        ``interactions`` (device and IP), ``accounts`` (phone) and ``orders``
        (receiver phone, address) when present.
    resources : tuple of str, default=RESOURCES
        Which of ``device, ip, phone, address`` link accounts.
    window : str or None, default="1D"
        Two accounts share a device or IP only if they used it within this time.
    max_degree : int, default=200
        Hot-entity cap passed to the projection.
    min_edge_weight : float, default=0.0
        Weaker account pairs are dropped before partitioning.
    max_component_size : int, default=200
        Larger components are split into Leiden communities.
    resolution : float, default=1.0
        Leiden resolution.
    min_group_size : int, default=3
        Smaller sub-graphs are not reported.
    seed : int or None
    usage : pandas.DataFrame or UsageSummary, optional
        The stacked usage rows of ``tables`` (``_usage``) or their :class:`UsageSummary`, when the caller
        already built them.

    Returns
    -------
    membership : pandas.DataFrame
        ``account_id, group_id``.
    edges : pandas.DataFrame
        ``src, dst, weight, resource`` (one row per pair and resource).

    Examples
    --------
    >>> import pandas as pd
    >>> lg = pd.DataFrame({"account_id": [1, 2, 3, 4], "device_id": ["d", "d", "d", "e"],
    ...                    "ip": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
    ...                    "ts": pd.Timestamp("2024-01-01")})
    >>> m, _ = build_association_groups({"logins": lg})
    >>> sorted(m["account_id"].tolist())
    [1, 2, 3]
    """
    unknown = set(resources) - set(RESOURCES)
    if unknown:
        raise ValueError(f"unknown resources {sorted(unknown)}; choose from {RESOURCES}")
    parts = []
    for res, frame, entity, time, w in _resource_frames(tables, resources, window, usage):
        if isinstance(frame, EntityEvents):
            e = project_entity_events(frame, window=w, max_degree=max_degree)
        elif frame[entity].notna().sum() < 2:
            continue
        else:
            e = shared_entity_projection(frame, key="account_id", entity=entity, time=time, window=w,
                                         max_degree=max_degree)
        del frame
        if len(e):
            parts.append((e["src"].to_numpy(), e["dst"].to_numpy(), e["weight"].to_numpy(float), res))
        del e
    ecols = ["src", "dst", "weight", "resource"]
    if not parts:
        return pd.DataFrame({"account_id": [], "group_id": pd.Series(dtype=int)}), pd.DataFrame(columns=ecols)
    # one undirected pair key regardless of which projection ordered it, then the pairs' summed weights
    keys, edges, total, lo, hi = _pairs(parts, min_edge_weight)
    del parts
    node = _first_appearance([lo, hi])  # the pairs' accounts (as codes into keys) by first appearance
    n = len(node)
    rank = np.full(len(keys), -1, dtype=np.int64)
    rank[node] = np.arange(n)
    s, d = rank[lo], rank[hi]
    nodes = keys[node]
    del lo, hi, rank, node
    _, comp = connected_components(sp.csr_matrix((np.ones(len(total)), (s, d)), shape=(n, n)), directed=False)
    sizes = np.bincount(comp)
    group = comp.astype(np.int64)
    big = sizes[comp] > max_component_size
    if big.any():
        eb = big[s] & big[d]
        inside = pd.DataFrame({c: total[c].to_numpy()[eb] for c in total.columns}, copy=False)
        # only the edges inside the large components are held while their communities are solved (networkit's
        # child on large; the whole graph's arrays took 1 GB more there)
        del total, s, d, eb
        part = detect_communities(inside, resolution=resolution, seed=0 if seed is None else int(seed))
        del inside
        pos = pd.Index(nodes).get_indexer(part.nodes)
        # communities never cross components; offset so ids do not clash with components
        group[pos] = comp.max() + 1 + part.membership
    gid, _ = pd.factorize(group, sort=True)
    gsize = np.bincount(gid)
    keep = gsize[gid] >= min_group_size
    member = pd.DataFrame({"account_id": np.asarray(nodes)[keep], "group_id": gid[keep]})
    # renumber largest first, deterministic
    order = member.groupby("group_id").size().sort_values(ascending=False, kind="stable")
    member["group_id"] = member["group_id"].map(pd.Series(np.arange(len(order)), index=order.index))
    member = member.sort_values(["group_id", "account_id"], kind="stable").reset_index(drop=True)
    return member, edges[ecols]


def group_features(membership, edges, tables, *, usage=None) -> pd.DataFrame:
    """Sub-graph features (:data:`FEATURES`) of association groups.

    Parameters
    ----------
    membership : pandas.DataFrame
        ``account_id, group_id``.
    edges : pandas.DataFrame
        ``src, dst, weight, resource`` from :func:`build_association_groups`.
    tables : mapping of str to pandas.DataFrame
        Contract tables (``accounts``, ``devices``, ``logins``, ``interactions``,
        ``orders``, ``coupon_claims``); missing ones give zero-valued features.
    usage : pandas.DataFrame or UsageSummary, optional
        The stacked usage rows of ``tables`` or their :class:`UsageSummary`, when the caller already built them
        (see :meth:`AssociationNetwork.fit`; an ``ip24`` column of /24 codes is read instead of the addresses).

    Returns
    -------
    pandas.DataFrame
        ``group_id`` then :data:`FEATURES`, one row per group.
    """
    gids = np.sort(membership["group_id"].unique())
    f = pd.DataFrame(index=pd.Index(gids, name="group_id"))
    gmap = membership.set_index("account_id")["group_id"]
    f["size"] = membership.groupby("group_id").size()
    e = edges.assign(g_src=edges["src"].map(gmap), g_dst=edges["dst"].map(gmap))
    e = e[e["g_src"].notna() & (e["g_src"] == e["g_dst"])]
    pairs = e.drop_duplicates(["src", "dst"]).groupby("g_src").size()
    n = f["size"].to_numpy(float)
    f["density"] = pairs.reindex(gids, fill_value=0).to_numpy() / np.maximum(n * (n - 1) / 2, 1)
    wsum = e.groupby("g_src")["weight"].sum().reindex(gids, fill_value=0.0)
    f["mean_weight"] = wsum.to_numpy() / np.maximum(pairs.reindex(gids, fill_value=0).to_numpy(), 1)
    byres = e.groupby(["g_src", "resource"])["weight"].sum().unstack(fill_value=0.0).reindex(gids, fill_value=0.0)
    for r in RESOURCES:
        col = byres[r] if r in byres else 0.0
        f[f"share_{r}"] = np.asarray(col) / np.maximum(wsum.to_numpy(), 1e-12)
    usage = _summary(tables, usage)
    acc = tables.get("accounts")
    first = usage.first_use
    if acc is not None and len(first):
        reg = pd.to_datetime(acc.set_index("account_id")["registered_at"])
        m = membership.assign(reg=membership["account_id"].map(reg),
                              first=membership["account_id"].map(first))
        m["age"] = (m["first"] - m["reg"]).dt.total_seconds() / 86400
        g = m.groupby("group_id")
        f["new_account_share"] = m.assign(new=(m["age"] < 30).astype(float)).groupby("group_id")["new"].mean()
        q = g["reg"].quantile([0.25, 0.75]).unstack()
        f["registration_span_days"] = ((q[0.75] - q[0.25]).dt.total_seconds() / 86400).reindex(gids)
    else:
        f["new_account_share"] = 0.0
        f["registration_span_days"] = 0.0
    members = pd.Index(membership["account_id"])
    n_g = len(gids)
    h_gi, h_rows = _group_index(members, membership, gids, usage.hours["account_id"])
    if len(h_rows):  # a grouped account has usage rows
        hour = usage.hours["hour"].to_numpy(float)[h_rows]
        n = usage.hours["n"].to_numpy(np.int64)[h_rows]
        ok = ~np.isnan(hour)
        # column-major, as the crosstab it replaces: the row sums below add in the same order, to the last bit
        hours = np.bincount(h_gi[ok] * 24 + hour[ok].astype(np.int64), weights=n[ok],
                            minlength=n_g * 24).astype(np.int64).reshape(n_g, 24)
        hours = np.asfortranarray(hours)
        p = hours / np.maximum(hours.sum(1, keepdims=True), 1)
        ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(1) / np.log(24)
        f["hour_concentration"] = np.where(hours.sum(1) > 0, 1 - ent, 0.0)
        d_gi, d_rows = _group_index(members, membership, gids, usage.devices["account_id"])
        dcode, dkeys = pd.factorize(usage.devices["device_id"].to_numpy()[d_rows])
        dpair = _distinct_codes(d_gi, dcode, len(dkeys))
        nd = _per_group(dpair // max(len(dkeys), 1), n_g, gids)
        f["accounts_per_device"] = (f["size"] / nd).fillna(0.0)
        n_gi, n_rows = _group_index(members, membership, gids, usage.networks["account_id"])
        ncode, nkeys = pd.factorize(usage.networks["ip24"].to_numpy()[n_rows])
        ni = _per_group(_distinct_codes(n_gi, ncode, len(nkeys)) // max(len(nkeys), 1), n_g, gids)
        f["accounts_per_ip24"] = (f["size"] / ni).fillna(0.0)  # no IPv4: 0
        del hour, n, ncode
    else:
        f["hour_concentration"] = f["accounts_per_device"] = f["accounts_per_ip24"] = 0.0
    dev = tables.get("devices")
    if dev is not None and len(h_rows):
        dv = pd.DataFrame({"group_id": gids[dpair // max(len(dkeys), 1)],
                           "device_id": np.asarray(dkeys)[dpair % max(len(dkeys), 1)]}).merge(
            dev[["device_id", "is_emulator", "is_rooted"]], on="device_id")
        f["emulator_share"] = dv.groupby("group_id")["is_emulator"].mean().reindex(gids).astype(float)
        f["rooted_share"] = dv.groupby("group_id")["is_rooted"].mean().reindex(gids).astype(float)
    else:
        f["emulator_share"] = f["rooted_share"] = 0.0
    orders = tables.get("orders")
    if orders is not None and len(orders):
        o = orders.merge(membership, on="account_id")
        g = o.groupby("group_id")
        size = f["size"]
        f["orders_per_account"] = (g.size().reindex(gids, fill_value=0) / size)
        f["coupon_order_share"] = g["coupon_id"].apply(lambda c: float(c.notna().mean())).reindex(gids)
        f["promotion_order_share"] = g["promotion_id"].apply(lambda c: float(c.notna().mean())).reindex(gids)
        f["addresses_per_account"] = g["address"].nunique().reindex(gids, fill_value=0) / size
    else:
        f["orders_per_account"] = f["coupon_order_share"] = f["promotion_order_share"] = 0.0
        f["addresses_per_account"] = 0.0
    claims = tables.get("coupon_claims")
    if claims is not None and len(claims):
        c = claims.merge(membership, on="account_id").groupby("group_id").size()
        f["claims_per_account"] = c.reindex(gids, fill_value=0) / f["size"]
    else:
        f["claims_per_account"] = 0.0
    f = f[list(FEATURES)].astype(float).fillna(0.0)
    return f.reset_index()


class AssociationNetwork(BaseScorer):
    """Score association sub-graphs: IsolationForest + risk index, plus a classifier when trained.

    Parameters
    ----------
    window, max_degree, min_edge_weight, max_component_size, resolution, min_group_size, resources
        Passed to :func:`build_association_groups`.
    n_estimators : int, default=200
        Trees of the IsolationForest and of the classifier.
    classifier_weight : float, default=0.5
        Weight of the classifier's probability (random forest, balanced classes) in the final score when trained.
    seed : int or None
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=0.6
        Groups scoring above it are flagged (the group stage's operating point).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per group.
    membership_ : DataFrame ``account_id, group_id``
    features_ : DataFrame ``group_id`` + :data:`FEATURES` + ``anomaly, risk_index, classifier, score``
    classifier_ : fitted sklearn classifier or None
    entity_ids_ : group ids (the scored entities are groups)
    """

    entity_type = "group"
    stage = "group"

    def __init__(self, *, resources=RESOURCES, window="1D", max_degree=200, min_edge_weight=0.0,
                 max_component_size=200, resolution=1.0, min_group_size=3, n_estimators=200,
                 classifier_weight=0.5, seed=None, contamination=None, threshold=0.6):
        super().__init__(contamination=contamination, threshold=threshold)
        self.resources = resources
        self.window = window
        self.max_degree = max_degree
        self.min_edge_weight = min_edge_weight
        self.max_component_size = max_component_size
        self.resolution = resolution
        self.min_group_size = min_group_size
        self.n_estimators = n_estimators
        self.classifier_weight = classifier_weight
        self.seed = seed

    def fit(self, tables, *, train_tables=None, train_labels=None, labels=None, n_folds=5, usage=None,
            train_groups=None):
        """Build and score the groups of ``tables``.

        Parameters
        ----------
        tables : mapping of str to DataFrame
            The dataset being scored (its labels are read only through ``labels=``).
        train_tables, train_labels : mapping and DataFrame, optional
            A *different*, labelled dataset: its groups are built the same way,
            labelled positive when at least half their accounts carry a fraud
            typology, and a random-forest classifier is trained on them.
        labels : DataFrame, optional
            The labels of ``tables`` itself, when ``tables`` *is* the training dataset (the pipeline's
            operating-point pass, or ``--train`` naming the scored data): the classifier is trained on
            its groups and each group's ``classifier`` column is out-of-fold (stratified ``n_folds``-fold
            over groups), so its scores are on the scale of a dataset the classifier never saw;
            ``classifier_`` is then refitted on every group. Exclusive with ``train_tables``.
        train_groups : DataFrame, optional
            The training dataset's labelled groups as :meth:`training_groups` returns them, built earlier with
            the same parameters: the classifier is trained on them (the same classifier as from
            ``train_tables`` and ``train_labels``). Exclusive with both.
        n_folds : int, default=5
            Folds of the out-of-fold scores (fewer when a class has fewer groups).
        usage : pandas.DataFrame or UsageSummary, optional
            The usage rows of ``tables`` (``account_id, device_id, ip, ts`` of its ``logins``, ``orders``,
            ``coupon_claims`` and ``interactions`` stacked in that order), or their :class:`UsageSummary`
            (e.g. reduced in SQL), when the caller built them: then those columns of ``tables`` are not read. The ``device_id`` and ``ip`` values only need
            to be equal where the resources are (e.g. integer codes of the addresses); with codes, an ``ip24``
            column (a code per /24 network, missing when not IPv4) gives the ``accounts_per_ip24`` feature,
            which otherwise reads the addresses.

        Returns
        -------
        self
        """
        if (train_tables is None) != (train_labels is None):
            raise ValueError("pass both train_tables and train_labels, or neither")
        if sum(x is not None for x in (labels, train_tables, train_groups)) > 1:
            raise ValueError("pass one of labels= (score the training dataset out-of-fold), train_tables= and "
                             "train_groups=")
        self.classifier_ = None
        if train_tables is not None:
            train_groups = self.training_groups(train_tables, train_labels)
        if train_groups is not None:
            self.classifier_ = self._fit_classifier(train_groups[list(FEATURES)].to_numpy(float),
                                                    train_groups["label"].to_numpy(int))
        usage = _summary(tables, usage)  # once for the groups and their features
        member, edges = self._groups(tables, usage)
        self.membership_ = member
        self.edges_ = edges
        feats = group_features(member, edges, tables, usage=usage) if len(member) else pd.DataFrame(
            columns=["group_id", *FEATURES])
        del usage
        X = feats[list(FEATURES)].to_numpy(float)
        oof = None
        if labels is not None:
            if not len(member):
                raise MissingInputError("the labelled dataset produced no association groups; nothing to train on")
            y = _group_labels(member, feats, labels)
            oof = self._out_of_fold(X, y, n_folds)
            self.classifier_ = self._fit_classifier(X, y)
        out = feats.copy()
        if len(feats):
            out["anomaly"] = self._anomaly(X)
            out["risk_index"] = _risk_index(feats)
            unsup = 0.5 * out["anomaly"] + 0.5 * out["risk_index"]
            if self.classifier_ is not None:
                out["classifier"] = oof if oof is not None else self.classifier_.predict_proba(X)[:, 1]
                w = self.classifier_weight
                out["score"] = (1 - w) * unsup + w * out["classifier"]
            else:
                out["classifier"] = np.nan
                out["score"] = unsup
        else:
            for c in ("anomaly", "risk_index", "classifier", "score"):
                out[c] = pd.Series(dtype=float)
        self.features_ = out
        reasons = _reasons(out) if len(out) else []
        return self._set_scores(out["group_id"].to_numpy(), out["score"].to_numpy(float), reasons)

    def account_scores(self) -> pd.DataFrame:
        """``account_id, score, group_id, group_size, reason``: each grouped account gets its group's score."""
        check_is_fitted(self)
        g = pd.DataFrame({"group_id": self.entity_ids_, "score": self.decision_scores_, "reason": self.reasons_})
        m = self.membership_.merge(g, on="group_id", how="left")
        m["group_size"] = m.groupby("group_id")["account_id"].transform("size")
        return m[["account_id", "score", "group_id", "group_size", "reason"]]

    def _groups(self, tables, usage=None):
        return build_association_groups(tables, resources=self.resources, window=self.window,
                                        max_degree=self.max_degree, min_edge_weight=self.min_edge_weight,
                                        max_component_size=self.max_component_size,
                                        resolution=self.resolution, min_group_size=self.min_group_size,
                                        seed=self.seed, usage=usage)

    def _anomaly(self, X):
        from sklearn.ensemble import IsolationForest

        if len(X) < 2:
            return np.zeros(len(X))
        rng = check_random_state(self.seed)
        iso = IsolationForest(n_estimators=self.n_estimators, random_state=int(rng.integers(2**31 - 1)))
        # the paper's anomaly score 2^(-E[h]/c(n)) in (0, 1); ~0.5 is ordinary
        return -iso.fit(X).score_samples(X)

    def training_groups(self, train_tables, train_labels) -> pd.DataFrame:
        """The labelled groups of a training dataset the classifier learns from: ``group_id``,
        :data:`FEATURES` and ``label`` (1 when at least half the group's accounts carry a fraud typology).

        They depend on the training dataset and this network's parameters and seed alone, so a pipeline
        builds them once and passes them to :meth:`fit` (``train_groups=``) for every dataset it scores.

        Raises
        ------
        MissingInputError
            The training dataset gives no groups, or groups of one class only.
        """
        usage = usage_summary(_usage(train_tables))
        member, edges = self._groups(train_tables, usage)
        if not len(member):
            raise MissingInputError("training dataset produced no association groups; nothing to train on")
        feats = group_features(member, edges, train_tables, usage=usage)
        y = _group_labels(member, feats, train_labels)
        return feats[["group_id", *FEATURES]].assign(label=y).reset_index(drop=True)

    def _fit_classifier(self, X, y):
        from sklearn.ensemble import RandomForestClassifier

        rng = check_random_state(self.seed)
        clf = RandomForestClassifier(n_estimators=self.n_estimators, min_samples_leaf=1, class_weight="balanced",
                                     n_jobs=1, random_state=int(rng.integers(2**31 - 1)))
        return clf.fit(X, y)

    def _out_of_fold(self, X, y, n_folds):
        """Classifier probabilities of each group from a forest that never saw it (stratified k-fold)."""
        from sklearn.model_selection import StratifiedKFold

        k = int(min(n_folds, np.bincount(y, minlength=2).min()))
        if k < 2:
            raise MissingInputError("out-of-fold scores need at least two groups of each class; "
                                    f"got {int(y.sum())} positive and {int((1 - y).sum())} negative groups")
        rng = check_random_state(self.seed)
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
        oof = np.zeros(len(y))
        for tr, te in folds.split(X, y):
            oof[te] = self._fit_classifier(X[tr], y[tr]).predict_proba(X[te])[:, 1]
        return oof


# --- private helpers ---------------------------------------------------------


def _resource_frames(tables, resources, window, usage=None):
    """Yield ``(resource, frame, entity column, time column, window)`` for each available source.

    Device and IP uses come as the :class:`EntityEvents` of the usage summary.
    """
    usage = _summary(tables, usage)
    for res in ("device", "ip"):
        if res in resources and len(usage.events[res].account) >= 2:  # fewer uses tie nobody
            yield res, usage.events[res], None, "ts", window
    if "phone" in resources:
        ph = []
        acc = tables.get("accounts")
        if acc is not None and "phone" in acc:
            ph.append(acc[["account_id", "phone"]].rename(columns={"phone": "entity"}))
        o = tables.get("orders")
        if o is not None and "receiver_phone" in o:
            ph.append(o[["account_id", "receiver_phone"]].rename(columns={"receiver_phone": "entity"}))
        if ph:
            yield "phone", pd.concat(ph, ignore_index=True), "entity", None, None
    if "address" in resources:
        o = tables.get("orders")
        if o is not None and "address" in o:
            yield "address", o, "address", None, None


def _usage(tables) -> pd.DataFrame:
    """Stacked ``account_id, device_id, ip, ts`` rows from logins, orders, claims and interactions."""
    parts = []
    for name in ("logins", "orders", "coupon_claims", "interactions"):
        t = tables.get(name)
        if t is None or not len(t):
            continue
        cols = [c for c in ("account_id", "device_id", "ip", "ts") if c in t.columns]
        parts.append(t[cols])
    if not parts:
        return pd.DataFrame({"account_id": [], "device_id": [], "ip": [], "ts": pd.Series(dtype="datetime64[ns]")})
    u = pd.concat(parts, ignore_index=True)
    for c in ("device_id", "ip"):
        if c not in u:
            u[c] = None
    u["ts"] = pd.to_datetime(u["ts"])
    return u


def _pairs(parts, min_edge_weight):
    """Every projection's edges with each pair oriented one way, and each pair's summed weight, on integer codes.

    The result of concatenating ``parts`` (``src, dst, weight, resource``), orienting each pair by the order of
    first appearance of its accounts in every ``src`` then every ``dst`` (``pd.factorize`` of them
    concatenated), dropping pairs lighter than ``min_edge_weight`` and grouping the rows by pair
    (``groupby(["src", "dst"], sort=False)`` sums, in row order and with its compensated arithmetic), without a
    frame of 18M key pairs grouped by pandas (the large scenario's).

    Returns ``keys`` (the accounts, in code order), ``edges`` (``src, dst, weight, resource``, oriented),
    ``total`` (``src, dst, weight``, one row per pair) and ``lo, hi``: the codes of ``total``'s accounts.
    """
    keys = _first_appearance([p[0] for p in parts] + [p[1] for p in parts])
    index = pd.Index(keys)
    n = max(len(keys), 1)
    pair = np.concatenate([np.minimum(a, b) * n + np.maximum(a, b)
                           for a, b in ((index.get_indexer(p[0]), index.get_indexer(p[1])) for p in parts)])
    weight = np.concatenate([p[2] for p in parts])
    res = np.concatenate([np.full(len(p[2]), i, dtype=np.int8) for i, p in enumerate(parts)])
    del index
    order, starts, sums = _pair_sums(pair, weight)
    if min_edge_weight > 0:  # weights are positive: nothing to drop otherwise
        heavy = np.empty(len(pair), dtype=bool)
        heavy[order] = np.repeat(sums >= min_edge_weight, np.diff(np.r_[starts, len(pair)]))
        pair, weight, res = pair[heavy], weight[heavy], res[heavy]
        del heavy
        order, starts, sums = _pair_sums(pair, weight)
    g = np.argsort(order[starts], kind="stable")  # pairs in order of their first row
    first = pair[order[starts[g]]]
    sums = sums[g]
    del order, starts, g
    names = np.array([p[3] for p in parts], dtype=object)
    edges = pd.DataFrame({"src": keys[pair // n], "dst": keys[pair % n], "weight": weight, "resource": names[res]},
                         copy=False)  # the new columns as they are, not copied into one block per type
    del pair, weight, res
    lo, hi = first // n, first % n
    total = pd.DataFrame({"src": keys[lo], "dst": keys[hi], "weight": sums}, copy=False)
    return keys, edges, total, lo, hi


def _pair_sums(pair, weight):
    """Stable order of ``pair``, the starts of its runs and each run's summed ``weight`` in row order."""
    order = np.argsort(pair, kind="stable")
    p = pair[order]
    starts = np.r_[0, np.flatnonzero(p[1:] != p[:-1]) + 1] if len(p) else np.zeros(0, dtype=np.int64)
    del p
    return order, starts, group_sum(weight[order], starts)


def _first_appearance(arrays) -> np.ndarray:
    """Distinct values of ``arrays`` concatenated, in order of first appearance (``pd.unique`` of the
    concatenation, without it)."""
    held = pd.unique(arrays[0])
    for a in arrays[1:]:
        u = pd.unique(a)
        u = u[~pd.Index(u).isin(held)]
        if len(u):
            held = np.concatenate([held, u])
    return np.asarray(held)


def _summary(tables, usage) -> UsageSummary:
    """``usage`` as a :class:`UsageSummary` (the usage rows of ``tables`` when it is None)."""
    if isinstance(usage, UsageSummary):
        return usage
    return usage_summary(_usage(tables) if usage is None else usage)


def _group_index(members, membership, gids, account_id):
    """Group index (position in ``gids``) of each row of ``account_id`` whose account is grouped, and those rows."""
    pos = members.get_indexer(account_id)
    rows = np.flatnonzero(pos >= 0)
    return np.searchsorted(gids, membership["group_id"].to_numpy()[pos[rows]]), rows


def _distinct_codes(gi, code, n_code) -> np.ndarray:
    """Sorted distinct ``gi * n_code + code`` over the rows whose ``code`` is not missing (-1)."""
    ok = code >= 0
    x = np.sort(gi[ok].astype(np.int64) * max(n_code, 1) + code[ok])
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _per_group(g, n_g, gids) -> pd.Series:
    """Rows per group index ``g`` as a Series on ``gids``, NaN where none (as a grouped ``nunique`` reindexed)."""
    n = np.bincount(g, minlength=n_g).astype(float)
    return pd.Series(np.where(n > 0, n, np.nan), index=pd.Index(gids, name="group_id"))


def _group_labels(member, feats, labels) -> np.ndarray:
    """1 for groups at least half of whose accounts carry a fraud typology in ``labels``, else 0."""
    need = {"entity_type", "entity_id", "typology"}
    if not need <= set(labels.columns):
        raise MissingInputError(f"train_labels lacks {sorted(need - set(labels.columns))}; "
                                "pass the labels table of the training dataset")
    lab = labels[(labels["entity_type"] == "account").to_numpy() & is_fraud_typology(labels["typology"])]
    bad = member["account_id"].astype(str).isin(set(lab["entity_id"].astype(str)))
    y = bad.groupby(member["group_id"].to_numpy()).mean().reindex(feats["group_id"]).to_numpy() >= 0.5
    if y.all() or not y.any():
        raise MissingInputError(f"training groups are all {'positive' if y.all() else 'negative'}; "
                                "the classifier needs both classes")
    return y.astype(int)


def _risk_index(feats) -> np.ndarray:
    """Mean of absolute risk signals in [0, 1] (no ranks, so a quiet dataset scores low)."""
    f = feats
    parts = [f["new_account_share"], f["emulator_share"], f["rooted_share"], f["hour_concentration"],
             np.clip((f["accounts_per_device"] - 1) / 3, 0, 1), f["coupon_order_share"],
             np.clip(f["claims_per_account"] / 3, 0, 1), np.exp(-f["registration_span_days"] / 7)]
    return np.clip(np.mean([np.asarray(p, dtype=float) for p in parts], axis=0), 0, 1)


def _reasons(f) -> list:
    return (f["size"].astype(int).astype(str) + " accounts linked by shared resources (device "
            + (100 * f["share_device"]).round().astype(int).astype(str) + "%, ip "
            + (100 * f["share_ip"]).round().astype(int).astype(str) + "%); new accounts "
            + (100 * f["new_account_share"]).round().astype(int).astype(str) + "%, emulators "
            + (100 * f["emulator_share"]).round().astype(int).astype(str) + "%, anomaly "
            + f["anomaly"].round(2).astype(str)).tolist()
