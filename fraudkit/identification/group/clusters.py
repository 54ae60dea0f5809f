"""Stage 2 group features: device clusters, frequent co-actions, cluster profiles, candidates.

The seeds' second identification stage: "cluster devices on specifications to
build an unsupervised high-precision blacklist" and "frequent item mining".
Two miners, both unsupervised, both scoring *groups* and mapping the score back
to accounts:

* :class:`DeviceClusterer` finds farms of near-identical devices. Devices are
  blocked by exact specification signature, then by shared fingerprint (clones)
  and by shared /24 (co-location); DBSCAN or HDBSCAN on behaviour runs inside
  each block, so the work is linear in the number of devices plus the sum of
  squared *block* sizes. A cluster only scores high when specification identity
  comes with behavioural co-location (clone fingerprints, same /24, synchronised
  hours, many accounts per device): a thousand honest owners of the same phone
  model share the signature but none of the rest.
* :class:`CoActionMiner` finds accounts that act on the same set of targets:
  vectorised MinHash with LSH banding proposes pairs, a popularity-weighted
  Jaccard (target weight ``1 / log(d + c)``) verifies them, connected components
  make groups. Viral notes weigh little, so their fans do not make a group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba import njit, prange
from scipy.sparse.csgraph import connected_components

from fraudkit.capability.graphs import parts_for, thread_map
from fraudkit.capability.ipranges import ip24_array
from fraudkit.errors import MissingInputError
from fraudkit.identification.base import BaseScorer, check_is_fitted
from fraudkit.randomness import check_random_state

__all__ = [
    "SPEC_COLUMNS",
    "DeviceClusterer",
    "CoActionMiner",
    "profile_clusters",
    "candidates",
    "device_usage_sql",
]

SPEC_COLUMNS = ("model", "os", "os_version", "screen", "app_version", "is_emulator", "is_rooted")
"""Device specification columns that make the exact-signature block."""

_ACTION_ORDER = ("view", "like", "collect", "comment", "share", "follow", "order", "claim", "login")


class DeviceClusterer(BaseScorer):
    """Cluster devices on specification and behaviour; score clusters as farms.

    Parameters
    ----------
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
        Clustering run inside each block on the behaviour vector (Hellinger
        hour profile, action mix, log accounts per device).
    eps : float, default=0.8
        DBSCAN radius in behaviour space.
    min_samples : int, default=3
        Smallest cluster (devices); also DBSCAN's ``min_samples`` and
        HDBSCAN's ``min_cluster_size``.
    spec_columns : tuple of str, default=SPEC_COLUMNS
        Columns of the exact specification signature.
    max_block_size : int, default=20000
        Larger blocks are split by the devices' order (keeps DBSCAN bounded).
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=0.5
        Devices whose cluster scores above it are flagged (the group stage's operating point).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per device:
        its cluster's score (0 outside clusters) and the cluster's description.
    device_features_ : pandas.DataFrame
        One row per device: signature, fingerprint, modal /24, accounts, events.
    cluster_ : ndarray of int
        Cluster of each device (``-1`` = none), aligned with ``entity_ids_``.
    clusters_ : pandas.DataFrame
        One row per cluster: ``cluster_id, n_devices, n_accounts, accounts_per_device,
        fingerprint_identity, colocation, synchrony, emulator_share, score, reason``.

    Examples
    --------
    >>> import pandas as pd
    >>> dev = pd.DataFrame({"device_id": list("abcdef"), "model": "X", "os": "android",
    ...     "os_version": "12", "screen": "1080x2400", "app_version": "8.1", "is_emulator": False,
    ...     "is_rooted": False, "fingerprint": ["f"] * 4 + ["g", "h"]})
    >>> ev = pd.DataFrame({"device_id": list("abcd") * 3, "account_id": range(12),
    ...     "ts": pd.Timestamp("2024-01-01 03:00"), "ip": "10.0.0.1", "action": "like"})
    >>> est = DeviceClusterer().fit(dev, ev)
    >>> est.labels_.tolist()
    [1, 1, 1, 1, 0, 0]
    """

    entity_type = "device"
    stage = "group"

    def __init__(self, *, algorithm="dbscan", eps=0.8, min_samples=3, spec_columns=SPEC_COLUMNS,
                 max_block_size=20000, contamination=None, threshold=0.5):
        super().__init__(contamination=contamination, threshold=threshold)
        self.algorithm = algorithm
        self.eps = eps
        self.min_samples = min_samples
        self.spec_columns = spec_columns
        self.max_block_size = max_block_size

    def fit(self, devices: pd.DataFrame, events: pd.DataFrame | None = None, *, usage: dict | None = None):
        """Cluster ``devices`` (contract ``devices`` table) using usage ``events``.

        Parameters
        ----------
        devices : pandas.DataFrame
            ``device_id``, the spec columns and ``fingerprint``.
        events : pandas.DataFrame or None
            Usage rows ``device_id, account_id, ts`` and optionally ``ip``,
            ``action`` (interactions, logins, orders stacked). Without it only
            specification identity is available and co-location is zero. Rows may
            be pre-aggregated (in SQL, before they reach pandas): an ``hour`` column
            (0-23) instead of ``ts`` and a count ``n`` of the events each row stands for.
        usage : dict of str to pandas.DataFrame, optional
            Instead of ``events``, the per-device aggregates the clusterer reads, reduced beforehand (in
            SQL, e.g. :func:`device_usage_sql`): ``"hours"`` (``device_id, hour, n``), ``"actions"``
            (``device_id, action, n``), ``"accounts"`` (``device_id, n_accounts``) and ``"ips"``
            (``device_id, ip, n``); the same clusters as the events they summarise. Without ``"actions"``,
            ``"hours"`` holds ``device_id, hour, action, n``.

        Returns
        -------
        self
        """
        if self.algorithm not in ("dbscan", "hdbscan"):
            raise ValueError(f"algorithm must be 'dbscan' or 'hdbscan', got {self.algorithm!r}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be >= 2, got {self.min_samples}")
        need = ["device_id", "fingerprint", *self.spec_columns]
        _require(devices, need, "devices")
        if devices["device_id"].duplicated().any():
            dup = devices.loc[devices["device_id"].duplicated(), "device_id"].iloc[0]
            raise ValueError(f"devices: duplicate device_id, e.g. {dup!r}; keep one row per device")
        if events is not None and usage is not None:
            raise ValueError("pass events= or usage= (per-device aggregates of the events), not both")
        feats, X = _device_features(devices, events, self.spec_columns, usage=usage)
        cluster = self._cluster(feats, X)
        clusters = _cluster_table(feats, X, cluster)
        self.device_features_ = feats.assign(cluster_id=cluster)
        self.cluster_ = cluster
        self.clusters_ = clusters
        score = np.zeros(len(feats))
        reasons = np.full(len(feats), "", dtype=object)
        if len(clusters):
            m = cluster >= 0
            lut = clusters.set_index("cluster_id")
            score[m] = lut["score"].reindex(cluster[m]).to_numpy()
            reasons[m] = lut["reason"].reindex(cluster[m]).to_numpy()
        return self._set_scores(feats["device_id"].to_numpy(), score, reasons)

    def account_scores(self, events: pd.DataFrame) -> pd.DataFrame:
        """Map device scores to accounts: an account takes its riskiest device's cluster.

        Returns
        -------
        pandas.DataFrame
            ``account_id, score, cluster_id, reason`` for accounts seen on a clustered device.
        """
        check_is_fitted(self)
        _require(events, ["account_id", "device_id"], "events")
        dev = pd.DataFrame({"device_id": self.entity_ids_, "score": self.decision_scores_,
                            "cluster_id": self.cluster_, "reason": self.reasons_})
        dev = dev[dev["cluster_id"] >= 0]
        pairs = events[["account_id", "device_id"]].dropna().drop_duplicates()
        m = pairs.merge(dev, on="device_id", how="inner")
        m = m.sort_values(["account_id", "score"], ascending=[True, False], kind="stable")
        return m.drop_duplicates("account_id")[["account_id", "score", "cluster_id", "reason"]].reset_index(drop=True)

    def _cluster(self, feats: pd.DataFrame, X: np.ndarray) -> np.ndarray:
        n = len(feats)
        ms = self.min_samples
        spec = feats["spec_id"].to_numpy()
        labels_parts = []  # (device index array, local labels) per block
        for key in ("fingerprint", "ip24"):
            k = feats[key].to_numpy()
            ok = pd.notna(k)
            blk = np.full(n, -1, dtype=np.int64)
            # (signature, key) pairs by first appearance, as a MultiIndex factorizes them (13 s of tuples on large)
            blk[ok] = _first_appearance_codes(pd.DataFrame({"spec": spec[ok], "key": k[ok]}))
            counts = np.bincount(blk[ok], minlength=1) if ok.any() else np.zeros(1, int)
            big = np.flatnonzero(counts >= ms)
            if len(big) == 0:
                continue
            sel = np.flatnonzero(ok & np.isin(blk, big))
            sel = sel[np.argsort(blk[sel], kind="stable")]
            bounds = np.flatnonzero(np.r_[True, blk[sel][1:] != blk[sel][:-1], True])
            for a, b in zip(bounds[:-1], bounds[1:]):
                idx = sel[a:b]
                for s in range(0, len(idx), self.max_block_size):
                    part = idx[s:s + self.max_block_size]
                    if len(part) >= ms:
                        labels_parts.append((part, self._fit_block(X[part])))
        # merge clusters from both blockings that share devices
        node, grp = [], []
        g = 0
        for idx, lab in labels_parts:
            keep = lab >= 0
            node.append(idx[keep])
            grp.append(lab[keep] + g)
            g += int(lab.max()) + 1 if keep.any() else 0
        if g == 0:
            return np.full(n, -1, dtype=np.int64)
        node = np.concatenate(node)
        grp = np.concatenate(grp)
        adj = sp.csr_matrix((np.ones(len(node)), (node, n + grp)), shape=(n + g, n + g))
        _, comp = connected_components(adj, directed=False)
        in_any = np.zeros(n, dtype=bool)
        in_any[node] = True
        out = np.full(n, -1, dtype=np.int64)
        out[in_any] = pd.factorize(comp[:n][in_any], sort=True)[0]
        return out

    def _fit_block(self, Xb: np.ndarray) -> np.ndarray:
        from sklearn.cluster import DBSCAN, HDBSCAN

        if self.algorithm == "dbscan":
            return DBSCAN(eps=self.eps, min_samples=self.min_samples).fit(Xb).labels_
        if len(Xb) <= self.min_samples:
            return np.zeros(len(Xb), dtype=int) if len(Xb) == self.min_samples else -np.ones(len(Xb), int)
        return HDBSCAN(min_cluster_size=self.min_samples, min_samples=1, allow_single_cluster=True, copy=True).fit(Xb).labels_


class CoActionMiner(BaseScorer):
    """Frequent co-actions: groups of accounts acting on the same rare targets.

    A group is a connected component of the verified pairs that has a core target (one used by half its members
    or more). Components chain through accounts that share a few targets with two of them: on the large
    scenario's orders 183,654 buyers of the same hot products form one component without a core target, so no
    group, and the crews inside it are not told apart.

    Parameters
    ----------
    window : str or None, default=None
        Pandas offset (``"1D"``, ``"7D"``); a target in two windows counts as
        two items, so a group must co-act *within* a window. None: whole period.
    num_perm : int, default=64
        MinHash permutations.
    bands : int, default=32
        LSH bands (``num_perm`` must divide by it); ``rows = num_perm / bands``.
        Pairs with Jaccard ``s`` collide with probability ``1 - (1 - s^rows)^bands``.
    min_jaccard : float, default=0.3
        Smallest popularity-weighted Jaccard that links two accounts.
    min_targets : int, default=2
        Accounts with fewer items are not grouped.
    min_group_size : int, default=5
        Smaller groups are dropped.
    max_target_degree : int or None, default=None
        Targets with more actors are dropped before hashing (hot-target cap);
        None keeps every target (they still weigh ``1/log(d + c)``).
    max_neighbors : int, default=50
        Inside an LSH bucket each account is paired with its next
        ``max_neighbors`` bucket mates (all pairs for buckets up to that size).
    c : float, default=5.0
        Popularity weight constant.
    seed : int or None, default=None
        Seeds the MinHash permutations.
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=0.5
        Accounts whose best group scores above it are flagged (the group stage's operating point).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per account seen
        in ``fit``: the score of its best group (0 when in none) and why (as :meth:`account_scores`).
    groups_ : pandas.DataFrame
        ``group_id, n_accounts, n_targets, targets, support, cohesion, exclusivity,
        time_spread_hours, score``.
    membership_ : pandas.DataFrame
        ``account_id, group_id``.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"account_id": [a for a in range(6) for _ in range(3)],
    ...                    "target_id": ["n1", "n2", "n3"] * 6,
    ...                    "ts": pd.Timestamp("2024-01-01")})
    >>> CoActionMiner(min_group_size=5).fit(ev).groups_[["n_accounts", "n_targets"]].values.tolist()
    [[6, 3]]
    """

    stage = "group"

    def __init__(self, *, window=None, num_perm=64, bands=32, min_jaccard=0.3, min_targets=2,
                 min_group_size=5, max_target_degree=None, max_neighbors=50, c=5.0, seed=None,
                 contamination=None, threshold=0.5):
        super().__init__(contamination=contamination, threshold=threshold)
        self.window = window
        self.num_perm = num_perm
        self.bands = bands
        self.min_jaccard = min_jaccard
        self.min_targets = min_targets
        self.min_group_size = min_group_size
        self.max_target_degree = max_target_degree
        self.max_neighbors = max_neighbors
        self.c = c
        self.seed = seed

    def fit(self, events: pd.DataFrame, *, account="account_id", target="target_id", time="ts"):
        """Mine co-action groups from ``events`` (one row per action).

        Parameters
        ----------
        events : pandas.DataFrame
            One row per action, with the ``account``, ``target`` and ``time`` columns.
        account, target, time : str
            Column names.

        Returns
        -------
        self
        """
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm={self.num_perm} must be divisible by bands={self.bands}")
        _require(events, [account, target, time], "events")
        ev = events[[account, target, time]].dropna()
        ts = pd.to_datetime(ev[time])
        if self.window is None:
            wbin = np.zeros(len(ev), dtype=np.int64)
        else:
            step = pd.Timedelta(self.window).value
            wbin = (ts.astype("int64").to_numpy() // step).astype(np.int64)
        acc_i, acc_keys = pd.factorize(ev[account], sort=True)
        tgt_i, tgt_keys = pd.factorize(ev[target], sort=True)
        # an item is a (target, window) pair, numbered by first appearance: one int64 code per row (a MultiIndex
        # factorize builds a tuple per row, ~1 GB and 20 s on ten million actions)
        wlo = int(wbin.min()) if len(wbin) else 0
        width = int(wbin.max()) - wlo + 1 if len(wbin) else 1
        item_i, item_code = pd.factorize(tgt_i.astype(np.int64) * width + (wbin - wlo), sort=False)
        item_tgt_i = np.asarray(item_code) // width
        n_acc, n_item = len(acc_keys), len(item_code)
        A = sp.csr_matrix((np.ones(len(ev)), (acc_i, item_i)), shape=(n_acc, n_item))
        A.data[:] = 1.0
        A.sum_duplicates()
        A.data[:] = 1.0
        deg = np.diff(A.tocsc().indptr)
        w = 1.0 / np.log(deg + self.c)
        if self.max_target_degree is not None:
            w[deg > self.max_target_degree] = 0.0
        Aw = sp.csr_matrix(A.multiply(w[None, :]))
        Aw.eliminate_zeros()
        Ab = Aw.copy()
        Ab.data[:] = 1.0
        size = np.diff(Ab.indptr)
        eligible = size >= self.min_targets
        pairs = _lsh_pairs(Ab, eligible, self.num_perm, self.bands, self.max_neighbors,
                           check_random_state(self.seed))
        jac = _weighted_jaccard(Ab, Aw, pairs)
        keep = jac >= self.min_jaccard
        pairs, jac = pairs[keep], jac[keep]
        self.n_candidate_pairs_ = int(len(keep))
        groups, members = _coaction_groups(pairs, jac, n_acc, Ab, deg, acc_i, item_i,
                                           ts.to_numpy(), self.min_group_size, self.min_jaccard)
        members["account_id"] = np.asarray(acc_keys)[members.pop("acc")]
        item_tgt = np.asarray(tgt_keys)[item_tgt_i]
        groups["targets"] = [sorted(set(item_tgt[ix].tolist()), key=str) for ix in groups.pop("items")]
        groups["n_targets"] = groups["targets"].map(len).astype(np.int64)
        self.groups_ = groups[["group_id", "n_accounts", "n_targets", "targets", "support", "cohesion",
                               "exclusivity", "time_spread_hours", "score"]]
        self.membership_ = members[["account_id", "group_id"]].reset_index(drop=True)
        best = self._best_groups()
        ids = np.asarray(acc_keys)
        score = pd.Series(best["score"].to_numpy(float), index=best["account_id"].to_numpy()).reindex(ids)
        reason = pd.Series(best["reason"].to_numpy(object), index=best["account_id"].to_numpy()).reindex(ids)
        # a group whose members share no verified pair (min_group_size=1) has no cohesion: it scores 0
        return self._set_scores(ids, score.fillna(0.0).to_numpy(), reason.fillna("").to_numpy())

    def account_scores(self) -> pd.DataFrame:
        """``account_id, score, group_id, reason`` for every grouped account (its best group)."""
        check_is_fitted(self, ("groups_",))
        return self._best_groups()

    def _best_groups(self) -> pd.DataFrame:
        m = self.membership_.merge(self.groups_[["group_id", "score", "n_accounts", "n_targets"]], on="group_id")
        m["reason"] = ("co-acted with " + (m["n_accounts"] - 1).astype(str) + " accounts on "
                       + m["n_targets"].astype(str) + " shared targets")
        m = m.sort_values(["account_id", "score"], ascending=[True, False], kind="stable")
        return m.drop_duplicates("account_id")[["account_id", "score", "group_id", "reason"]].reset_index(drop=True)


def profile_clusters(membership: pd.DataFrame, *, accounts: pd.DataFrame | None = None,
                     events: pd.DataFrame | None = None, devices: pd.DataFrame | None = None,
                     group: str = "group_id") -> pd.DataFrame:
    """Describe groups of accounts: size, account age, shared resources, rhythm, devices.

    Parameters
    ----------
    membership : pandas.DataFrame
        ``account_id`` and ``group`` (one row per member).
    accounts : pandas.DataFrame, optional
        Contract ``accounts`` (for ``registered_at``).
    events : pandas.DataFrame, optional
        ``account_id, ts`` and optionally ``device_id, ip`` (usage rows).
    devices : pandas.DataFrame, optional
        Contract ``devices`` (for emulator / root shares).

    Returns
    -------
    pandas.DataFrame
        One row per group: ``n_accounts``, and when inputs allow ``median_account_age_days``,
        ``new_account_share`` (registered < 30 days before first action), ``n_devices``,
        ``accounts_per_device``, ``n_ip24``, ``accounts_per_ip24``, ``hour_concentration``
        (1 - normalised entropy of action hours), ``emulator_share``, ``rooted_share``.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"account_id": [1, 2, 3], "group_id": [0, 0, 1]})
    >>> profile_clusters(m)["n_accounts"].tolist()
    [2, 1]
    """
    _require(membership, ["account_id", group], "membership")
    out = membership.groupby(group).agg(n_accounts=("account_id", "nunique"))
    if events is not None and len(events):
        _require(events, ["account_id", "ts"], "events")
        ev = events.merge(membership[["account_id", group]], on="account_id")
        ts = pd.to_datetime(ev["ts"])
        first = ev.assign(ts=ts).groupby("account_id")["ts"].min()
        hours = ts.dt.hour.to_numpy()
        h = pd.crosstab(ev[group].to_numpy(), hours).reindex(columns=range(24), fill_value=0)
        p = h.to_numpy() / np.maximum(h.to_numpy().sum(1, keepdims=True), 1)
        ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(1) / np.log(24)
        out["hour_concentration"] = pd.Series(1 - ent, index=h.index)
        if "device_id" in ev:
            d = ev.dropna(subset=["device_id"]).groupby(group)["device_id"].nunique()
            out["n_devices"] = d
            out["accounts_per_device"] = out["n_accounts"] / d
        if "ip" in ev:
            q = ev.dropna(subset=["ip"]).assign(ip24=lambda x: ip24_array(x["ip"]))
            d = q.groupby(group)["ip24"].nunique()
            out["n_ip24"] = d
            out["accounts_per_ip24"] = out["n_accounts"] / d.replace(0, np.nan)  # no IPv4 address: no /24
        if accounts is not None:
            acc = accounts[["account_id", "registered_at"]].set_index("account_id")["registered_at"]
            age = (first - pd.to_datetime(acc.reindex(first.index))).dt.total_seconds() / 86400
            a = membership[["account_id", group]].assign(age=membership["account_id"].map(age))
            out["median_account_age_days"] = a.groupby(group)["age"].median()
            out["new_account_share"] = a.assign(new=a["age"] < 30).groupby(group)["new"].mean()
        if devices is not None and "device_id" in ev:
            dv = ev[[group, "device_id"]].dropna().drop_duplicates().merge(
                devices[["device_id", "is_emulator", "is_rooted"]], on="device_id")
            g = dv.groupby(group)
            out["emulator_share"] = g["is_emulator"].mean()
            out["rooted_share"] = g["is_rooted"].mean()
    return out.reset_index()


def candidates(*sources: pd.DataFrame, min_score: float = 0.7, min_size: int = 5) -> pd.DataFrame:
    """The unsupervised high-precision candidate list: accounts in strongly scored groups.

    Parameters
    ----------
    *sources : pandas.DataFrame
        Membership tables with ``account_id, group_id, kind, score, group_size``
        and optionally ``reason`` (``kind`` names the miner: ``device_cluster``,
        ``coaction``, ``dense_subgraph``, ``association``).
    min_score : float, default=0.7
        Groups scoring below are left out (precision over recall).
    min_size : int, default=5
        Smaller groups are left out.

    Returns
    -------
    pandas.DataFrame
        ``account_id, group_id, kind, score, reason``: one row per account (its
        best-scoring group), highest score first.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"account_id": [1, 2], "group_id": [0, 0], "kind": "coaction",
    ...                   "score": 0.9, "group_size": 6})
    >>> candidates(s)["account_id"].tolist()
    [1, 2]
    """
    cols = ["account_id", "group_id", "kind", "score", "reason"]
    parts = []
    for s in sources:
        if s is None or not len(s):
            continue
        _require(s, ["account_id", "group_id", "kind", "score", "group_size"], "candidate source")
        s = s[(s["score"] >= min_score) & (s["group_size"] >= min_size)].copy()
        if "reason" not in s:
            s["reason"] = ""
        s["reason"] = s["kind"] + " group " + s["group_id"].astype(str) + " (" + s["group_size"].astype(str) \
            + " accounts, score " + s["score"].round(2).astype(str) + ")" \
            + np.where(s["reason"].astype(str) != "", ": " + s["reason"].astype(str), "")
        parts.append(s[cols])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "score" else object) for c in cols})
    out = pd.concat(parts, ignore_index=True).astype({"group_id": str})
    out = out.sort_values(["score", "account_id"], ascending=[False, True], kind="stable")
    return out.drop_duplicates("account_id").reset_index(drop=True)


# --- private helpers ---------------------------------------------------------


def _require(df, cols, name):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingInputError(f"{name}: missing column(s) {missing}; columns are {list(df.columns)}. "
                                f"Pass a table with these columns (see fraudkit.data.contract).")


def device_usage_sql(union_sql: str, con) -> dict:
    """The per-device usage aggregates :meth:`DeviceClusterer.fit` reads (``usage=``), reduced in DuckDB.

    Parameters
    ----------
    union_sql : str
        A query of usage rows ``device_id, account_id, ip, ts, action`` (e.g. interactions and logins
        stacked with ``UNION ALL``).
    con : callable
        Runs a SQL query and returns a pandas DataFrame (e.g. ``Dataset.sql``).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``hours`` (``device_id, hour, n``), ``actions`` (``device_id, action, n``), ``accounts``
        (``device_id, n_accounts``: distinct accounts, a missing account counting as one) and ``ips``
        (``device_id, ip, n``), over rows with a device (the /24 is taken later, once per distinct address).
        The clusterer adds hours and actions up separately: two small groupings instead of one per (device,
        hour, action).
    """
    base = f"(SELECT * FROM ({union_sql}) WHERE device_id IS NOT NULL)"
    return {
        "hours": con(f"SELECT device_id, hour(ts) AS hour, count(*) AS n FROM {base} GROUP BY ALL"),
        "actions": con(f"SELECT device_id, action, count(*) AS n FROM {base} GROUP BY ALL"),
        "accounts": con(f"SELECT device_id, count(DISTINCT account_id) + max(CASE WHEN account_id IS NULL "
                        f"THEN 1 ELSE 0 END) AS n_accounts FROM {base} GROUP BY ALL"),
        "ips": con(f"SELECT device_id, ip, count(*) AS n FROM {base} WHERE ip IS NOT NULL GROUP BY ALL"),
    }


def _device_features(devices, events, spec_columns, usage=None):
    """Per-device signature, fingerprint, modal /24 and the behaviour matrix X."""
    feats = pd.DataFrame({"device_id": devices["device_id"].to_numpy(),
                          "spec_id": _first_appearance_codes(devices[list(spec_columns)].astype(str)),
                          "fingerprint": devices["fingerprint"].to_numpy(),
                          "is_emulator": devices.get("is_emulator", pd.Series(False, index=devices.index))
                          .fillna(False).astype(bool).to_numpy(),
                          "is_rooted": devices.get("is_rooted", pd.Series(False, index=devices.index))
                          .fillna(False).astype(bool).to_numpy()})
    n = len(feats)
    hours = np.zeros((n, 24))
    mix = np.zeros((n, len(_ACTION_ORDER)))
    n_acc = np.zeros(n)
    n_ev = np.zeros(n)
    feats["ip24"] = None
    if usage is not None:
        hours, mix, n_ev, n_acc = _usage_aggregates(feats, usage, hours, mix)
        q = usage["ips"]
        di = pd.Index(feats["device_id"]).get_indexer(q["device_id"])
        ok = di >= 0
        if ok.any():
            feats["ip24"] = _modal(n, di[ok], ip24_array(q["ip"].to_numpy(object)[ok]),
                                   q["n"].to_numpy(np.int64)[ok])
    elif events is not None and len(events):
        _require(events, ["device_id", "account_id", "hour" if "hour" in events.columns else "ts"], "events")
        ev = events[events["device_id"].notna()]
        di = pd.Index(feats["device_id"]).get_indexer(ev["device_id"])
        ok = di >= 0
        ev, di = ev[ok], di[ok]
        h = ev["hour"].to_numpy(np.int64) if "hour" in ev else pd.to_datetime(ev["ts"]).dt.hour.to_numpy()
        w = ev["n"].to_numpy(float) if "n" in ev else np.ones(len(ev))  # sums of counts: exact in float
        np.add.at(hours, (di, h), w)
        n_ev = np.bincount(di, weights=w, minlength=n)
        if "action" in ev:
            ai = pd.Index(_ACTION_ORDER).get_indexer(ev["action"])
            okk = ai >= 0
            np.add.at(mix, (di[okk], ai[okk]), w[okk])
        pairs = pd.DataFrame({"d": di, "a": ev["account_id"].to_numpy()}).drop_duplicates()
        n_acc = np.bincount(pairs["d"], minlength=n).astype(float)
        if "ip" in ev:
            q = pd.DataFrame({"d": di, "p": ip24_array(ev["ip"]), "w": w}).dropna()
            modal = q.groupby(["d", "p"])["w"].sum().astype(np.int64).rename("k").reset_index()
            modal = modal.sort_values(["d", "k", "p"], ascending=[True, False, True]).drop_duplicates("d")
            col = np.full(n, None, dtype=object)
            col[modal["d"].to_numpy()] = modal["p"].to_numpy()
            feats["ip24"] = col
    feats["n_accounts"] = n_acc.astype(int)
    feats["n_events"] = n_ev.astype(int)
    hp = np.sqrt(hours / np.maximum(hours.sum(1, keepdims=True), 1))
    mp = np.sqrt(mix / np.maximum(mix.sum(1, keepdims=True), 1))
    X = np.hstack([hp, mp, 0.5 * np.log2(1 + n_acc)[:, None]])
    feats["_hours"] = list(hours)
    return feats, X


def _first_appearance_codes(frame: pd.DataFrame) -> np.ndarray:
    """A code per row of ``frame``, equal rows equal codes, numbered ``0..`` by first appearance (as
    ``pd.factorize`` numbers one column), computed on integer codes column by column, not on joined row text.

    Examples
    --------
    >>> _first_appearance_codes(pd.DataFrame({"a": ["x", "y", "x", "x|y"], "b": ["1", "1", "1", ""]})).tolist()
    [0, 1, 0, 2]
    """
    key = np.zeros(len(frame), dtype=np.int64)
    for c in frame.columns:  # (key, column) renumbered after each column: the key stays below the rows' count
        code, uniq = pd.factorize(frame[c], use_na_sentinel=False)
        key, _ = pd.factorize(key * len(uniq) + code)
    return key


def _modal(n, d, p, k) -> np.ndarray:
    """Per device ``0..n-1``, the ``p`` with the largest summed ``k`` among its rows ``d`` (ties: the smallest
    ``p``), ``None`` where a device has no row with a ``p``.

    Examples
    --------
    >>> p = np.array(["b", "a", None, "c"], dtype=object)
    >>> _modal(3, np.array([0, 0, 0, 2]), p, np.array([1, 1, 5, 2])).tolist()
    ['a', None, 'c']
    """
    col = np.full(n, None, dtype=object)
    code, nets = pd.factorize(pd.Series(p, dtype=object), sort=True)  # codes in the order of the texts
    has = code >= 0
    if not has.any():
        return col
    pair, inverse = np.unique(d[has].astype(np.int64) * len(nets) + code[has], return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=k[has], minlength=len(pair))  # integer counts: exact
    dev, net = pair // len(nets), pair % len(nets)
    order = np.lexsort((net, -total, dev))  # per device: the largest total first, ties by the smallest text
    first = order[np.r_[True, dev[order][1:] != dev[order][:-1]]]
    col[dev[first]] = np.asarray(nets, dtype=object)[net[first]]
    return col


def _usage_aggregates(feats, usage, hours, mix):
    """Hour and action counts, events and distinct accounts per device of ``feats`` from ``usage``."""
    n = len(feats)
    index = pd.Index(feats["device_id"])
    h = usage["hours"]
    di = index.get_indexer(h["device_id"])
    ok = di >= 0
    di, w = di[ok], h["n"].to_numpy(float)[ok]  # sums of counts: exact in float
    np.add.at(hours, (di, h["hour"].to_numpy(np.int64)[ok]), w)
    n_ev = np.bincount(di, weights=w, minlength=n)
    acts = usage.get("actions", h)  # counts by action on their own, or in the rows by hour (the older layout)
    if acts is not h:
        di = index.get_indexer(acts["device_id"])
        ok = di >= 0
        di, w = di[ok], acts["n"].to_numpy(float)[ok]
    ai = pd.Index(_ACTION_ORDER).get_indexer(acts["action"].to_numpy(object)[ok])
    okk = ai >= 0
    np.add.at(mix, (di[okk], ai[okk]), w[okk])
    a = usage["accounts"]
    da = index.get_indexer(a["device_id"])
    n_acc = np.zeros(n)
    n_acc[da[da >= 0]] = a["n_accounts"].to_numpy(float)[da >= 0]
    return hours, mix, n_ev, n_acc


def _cluster_table(feats, X, cluster):
    cols = ["cluster_id", "n_devices", "n_accounts", "accounts_per_device", "fingerprint_identity",
            "colocation", "synchrony", "emulator_share", "score", "reason"]
    m = cluster >= 0
    if not m.any():
        return pd.DataFrame(columns=cols)
    f = feats.loc[m, ["fingerprint", "ip24", "n_accounts", "is_emulator"]].assign(cid=cluster[m])
    g = f.groupby("cid")
    n = g.size()
    modal_fp = f.groupby(["cid", "fingerprint"]).size().groupby(level=0).max()
    modal_ip = f.dropna(subset=["ip24"]).groupby(["cid", "ip24"]).size().groupby(level=0).max()
    modal_ip = modal_ip.reindex(n.index, fill_value=1)
    hours = np.vstack(feats.loc[m, "_hours"].to_numpy())
    p = hours / np.maximum(hours.sum(1, keepdims=True), 1)
    cid = cluster[m]
    cen = np.zeros((len(n), 24))
    np.add.at(cen, cid, p)
    cen /= np.maximum(cen.sum(1, keepdims=True), 1e-12)
    bc = np.sqrt(p * cen[cid]).sum(1)
    active = hours.sum(1) > 0
    sync = pd.Series(bc[active]).groupby(cid[active]).mean().reindex(n.index, fill_value=0.0)
    t = pd.DataFrame({"cluster_id": n.index.to_numpy(), "n_devices": n.to_numpy()})
    t["n_accounts"] = g["n_accounts"].sum().to_numpy()
    t["accounts_per_device"] = t["n_accounts"] / t["n_devices"]
    den = np.maximum(t["n_devices"] - 1, 1)
    t["fingerprint_identity"] = (modal_fp.to_numpy() - 1) / den
    t["colocation"] = (modal_ip.to_numpy() - 1) / den
    t["synchrony"] = sync.to_numpy()
    t["emulator_share"] = g["is_emulator"].mean().to_numpy()
    apd = np.clip((t["accounts_per_device"] - 1) / 3, 0, 1)
    size = 1 - np.exp(-(t["n_devices"] - 1) / 1.5)
    evidence = (0.35 * t["fingerprint_identity"] + 0.2 * t["colocation"] + 0.2 * t["synchrony"]
                + 0.25 * apd + 0.1 * t["emulator_share"])
    t["score"] = np.clip(size * evidence, 0, 1)
    t["reason"] = (t["n_devices"].astype(str) + " devices of one spec; fingerprint identity "
                   + t["fingerprint_identity"].round(2).astype(str) + ", same /24 "
                   + t["colocation"].round(2).astype(str) + ", hour synchrony "
                   + t["synchrony"].round(2).astype(str) + ", "
                   + t["accounts_per_device"].round(1).astype(str) + " accounts/device")
    return t[cols]


def _lsh_pairs(Ab, eligible, num_perm, bands, max_neighbors, rng):
    """Candidate account pairs from vectorised MinHash + LSH banding.

    In each band, accounts with the same band key form a bucket, ordered by a random tie-break; each account is
    paired with the next ``max_neighbors`` of its bucket.
    """
    n_acc, n_item = Ab.shape
    rows = np.flatnonzero(eligible)
    if len(rows) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    sub = Ab[rows].tocsr()
    r = num_perm // bands
    # one random 64-bit salt per permutation; an item's rank in it is the mix of its number with the salt. (The
    # first version hashed (a * item + b) mod 2**61 - 1 with a, b < 2**31: with item numbers below 2**30 that never
    # wraps, so it rose with the item number and every permutation's minimum was the row's lowest item: all bands
    # gave the same buckets, the accounts sharing their first-numbered item. On large's interactions it proposed
    # 0.42M pairs of Jaccard >= 0.3 where this proposes 2.56M.)
    salt = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    # each hash is computed once per distinct item, then gathered to the rows' entries: the same minima as
    # hashing every entry (large's interactions: 6.4M entries, 431k distinct items)
    items, entry_item = np.unique(sub.indices, return_inverse=True)
    items = items.astype(np.uint64)
    starts = sub.indptr[:-1]
    coef = rng.integers(1, 1 << 31, size=r, dtype=np.uint64)
    n = np.int64(len(rows))
    seen = np.zeros(0, dtype=np.int64)  # pair codes i * n + j (i < j), sorted and de-duplicated
    pending, n_pending = [], 0  # bands' codes not yet merged into seen (a band holds each of its pairs once)
    order_tiebreak = rng.permutation(len(rows))
    # the rows in tie-break order: a stable sort of their band keys in it orders by (key, tie-break), as
    # np.lexsort((order_tiebreak, key)) does, in one sort instead of two
    by_tiebreak = np.argsort(order_tiebreak)

    def band_codes(band):
        """The pair codes of one band's buckets (each pair once)."""
        key = np.zeros(len(rows), dtype=np.uint64)
        for j in range(r):
            k = band * r + j
            mins = np.minimum.reduceat(_mix64(items ^ salt[k])[entry_item], starts)
            key = key * coef[j] + mins
        order = by_tiebreak[np.argsort(key[by_tiebreak], kind="stable")]
        ks = key[order]
        codes = []
        for off in range(1, max_neighbors + 1):
            same = ks[off:] == ks[:-off]
            if not same.any():
                break
            i = order[:-off][same]
            j2 = order[off:][same]
            codes.append(np.minimum(i, j2).astype(np.int64) * n + np.maximum(i, j2))
        return codes

    # the bands are independent: as many at a time as there are cores (on large's 7.4M co-action events 10.5 s
    # against 13.0 s one band at a time on two cores), the distinct pairs the same whatever order they are merged in
    step = parts_for(len(sub.indices))
    for first in range(0, bands, step):
        for codes in thread_map(band_codes, range(first, min(first + step, bands))):
            pending += codes
            n_pending += sum(len(c) for c in codes)
        # alike accounts collide in many bands: the bands' pairs are merged into the distinct ones whenever they
        # outnumber them (at least 2**23), so at most about twice the distinct pairs (and a band per core) are
        # held, and the distinct ones are sorted once per merge, not twice per band
        if pending and (n_pending >= max(len(seen), 1 << 23) or first + step >= bands):
            seen = _sorted_unique(np.concatenate([seen, *pending]))
            pending, n_pending = [], 0
    return rows[np.stack([seen // n, seen % n], 1)]


def _mix64(x):
    """SplitMix64's finaliser on uint64 values (a bijection whose output bits each depend on every input bit)."""
    x = x ^ (x >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _sorted_unique(codes):
    """``np.unique`` of an int64 array by sorting in place (NumPy 2's hash-based unique is ~20x slower here)."""
    codes.sort()
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes


def _weighted_jaccard(Ab, Aw, pairs):
    """Popularity-weighted Jaccard of account pairs: shared weight / union weight."""
    if len(pairs) == 0:
        return np.zeros(0)
    tot = np.asarray(Aw.sum(axis=1)).ravel()
    Ab, Aw = (m if m.has_canonical_format else _canonical(m) for m in (Ab, Aw))
    # each pair's shared weight from a merge of its two sorted rows (on large's interactions 29M pairs: 13 s of row
    # gathers and products in SciPy), summed as SciPy's row sum of their product sums it
    inter = _shared_weight(Ab.indptr.astype(np.int64), Ab.indices.astype(np.int64), Ab.data.astype(np.float64),
                           Aw.indptr.astype(np.int64), Aw.indices.astype(np.int64), Aw.data.astype(np.float64),
                           pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64), Aw.shape[1])
    union = tot[pairs[:, 0]] + tot[pairs[:, 1]] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _canonical(m):
    """A copy of a CSR matrix with sorted, duplicate-free rows (duplicates summed)."""
    m = m.copy()
    m.sum_duplicates()
    return m


@njit(cache=True, parallel=True)
def _shared_weight(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, left, right, n_cols):
    """Per pair, the sum of ``A[left] * B[right]`` over the columns both rows hold (sorted, duplicate-free rows), in
    the order and grouping of ``(A[left]).multiply(B[right]).sum(axis=1)``: the non-zero products in column order,
    the first plus NumPy's pairwise sum of the others (``np.add.reduceat``), so the same bits.

    The pairs are cut into runs on the cores; each run marks the columns of its current left row in an array of
    ``n_cols`` (pairs sorted by their left row mark each row once) and walks the right row's columns."""
    n = left.shape[0]
    out = np.zeros(n, np.float64)
    longest = 0
    for i in range(a_ptr.shape[0] - 1):
        longest = max(longest, a_ptr[i + 1] - a_ptr[i])
    n_runs = min(n, 64)
    for run in prange(n_runs):
        at = np.zeros(n_cols, np.int64)  # 1 + the column's position in the current left row, 0 off it
        buf = np.empty(longest, np.float64)
        current = -1
        for k in range(run * n // n_runs, (run + 1) * n // n_runs):
            if left[k] != current:
                if current >= 0:
                    for x in range(a_ptr[current], a_ptr[current + 1]):
                        at[a_idx[x]] = 0
                current = left[k]
                for x in range(a_ptr[current], a_ptr[current + 1]):
                    at[a_idx[x]] = x + 1
            m = 0
            for y in range(b_ptr[right[k]], b_ptr[right[k] + 1]):
                x = at[b_idx[y]]
                if x:
                    v = a_val[x - 1] * b_val[y]
                    if v != 0.0:
                        buf[m] = v
                        m += 1
            if m:
                out[k] = buf[0] + _pairwise_sum(buf, 1, m - 1)
    return out


@njit(cache=True)
def _pairwise_sum(v, start, n):
    """NumPy's pairwise summation of ``v[start:start + n]`` (``pairwise_sum`` of its float loops: blocks of up to
    128 values, each with 8 partial sums; a longer run is the sum of its halves), so a reduction gives NumPy's
    bits. The halves are walked with a stack of their own: numba's cache does not reload a recursive function."""
    if n <= 128:
        return _block_sum(v, start, n)
    part_start = np.empty(128, np.int64)  # the runs still open, their phase (0: left half next, 1: right, 2: add)
    part_n = np.empty(128, np.int64)
    phase = np.empty(128, np.int64)
    sums = np.empty(128, np.float64)  # the finished halves' sums, left before right
    part_start[0], part_n[0], phase[0] = start, n, 0
    top, n_sums = 1, 0
    while top:
        s, m = part_start[top - 1], part_n[top - 1]
        if m <= 128:
            sums[n_sums] = _block_sum(v, s, m)
            n_sums += 1
            top -= 1
        elif phase[top - 1] == 2:
            sums[n_sums - 2] = sums[n_sums - 2] + sums[n_sums - 1]
            n_sums -= 1
            top -= 1
        else:
            half = m // 2
            half -= half % 8
            right = phase[top - 1] == 1
            phase[top - 1] += 1
            part_start[top], part_n[top], phase[top] = (s + half, m - half, 0) if right else (s, half, 0)
            top += 1
    return sums[0]


@njit(cache=True)
def _block_sum(v, start, n):
    """:func:`_pairwise_sum` of at most 128 values."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += v[start + i]
        return res
    r0, r1, r2, r3 = v[start], v[start + 1], v[start + 2], v[start + 3]
    r4, r5, r6, r7 = v[start + 4], v[start + 5], v[start + 6], v[start + 7]
    i = 8
    while i < n - (n % 8):
        r0 += v[start + i]
        r1 += v[start + i + 1]
        r2 += v[start + i + 2]
        r3 += v[start + i + 3]
        r4 += v[start + i + 4]
        r5 += v[start + i + 5]
        r6 += v[start + i + 6]
        r7 += v[start + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += v[start + i]
        i += 1
    return res


def _coaction_groups(pairs, jac, n_acc, Ab, deg, acc_i, item_i, ts, min_size, min_jaccard):
    gcols = ["group_id", "n_accounts", "items", "support", "cohesion", "exclusivity",
             "time_spread_hours", "score"]
    if len(pairs) == 0:
        return pd.DataFrame(columns=gcols), pd.DataFrame({"acc": np.zeros(0, int), "group_id": np.zeros(0, int)})
    adj = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n_acc, n_acc))
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    big = np.flatnonzero(sizes >= min_size)
    big = big[np.argsort(-sizes[big], kind="stable")]
    gid = np.full(len(sizes), -1)
    gid[big] = np.arange(len(big))
    acc_gid = gid[comp]
    members = pd.DataFrame({"acc": np.flatnonzero(acc_gid >= 0)})
    members["group_id"] = acc_gid[members["acc"]]
    if not len(members):
        return pd.DataFrame(columns=gcols), members
    coh = pd.Series(jac).groupby(acc_gid[pairs[:, 0]]).mean()
    # group x item counts
    M = sp.csr_matrix((np.ones(len(members)), (members["group_id"], members["acc"])), shape=(len(big), n_acc))
    GI = (M @ Ab).tocoo()
    gsize = sizes[big]
    core = GI.data >= np.maximum(2, 0.5 * gsize[GI.row])
    cg, ci, cn = GI.row[core], GI.col[core], GI.data[core]
    items = [ci[cg == g] for g in range(len(big))]
    support = pd.Series(cn).groupby(cg).min().reindex(range(len(big)), fill_value=0)
    excl = pd.Series(cn / deg[ci]).groupby(cg).mean().reindex(range(len(big)), fill_value=0.0)
    # time spread of members' actions on their core items
    ev = pd.DataFrame({"g": acc_gid[acc_i], "i": item_i, "t": ts})
    ev = ev[ev["g"] >= 0]
    n_item = Ab.shape[1]
    ev = ev[np.isin(ev["g"].to_numpy(np.int64) * n_item + ev["i"].to_numpy(np.int64),
                    cg.astype(np.int64) * n_item + ci)]
    gi = ev.groupby(["g", "i"])["t"]
    span = (gi.max() - gi.min()).dt.total_seconds() / 3600
    spread = span.groupby(level=0).median().reindex(range(len(big)), fill_value=np.nan)
    g = pd.DataFrame({"group_id": np.arange(len(big)), "n_accounts": gsize, "items": items,
                      "support": support.to_numpy().astype(int), "cohesion": coh.reindex(range(len(big))).to_numpy(),
                      "exclusivity": excl.to_numpy(), "time_spread_hours": spread.to_numpy()})
    tconc = 1.0 / (1.0 + np.nan_to_num(g["time_spread_hours"].to_numpy(), nan=1e6) / 24.0)
    size_f = 1 - np.exp(-(g["n_accounts"] - 1) / 2)
    coh = np.clip((g["cohesion"] - min_jaccard) / (1 - min_jaccard), 0, 1)
    g["score"] = np.clip(size_f * (0.4 * coh + 0.4 * g["exclusivity"] + 0.2 * tconc), 0, 1)
    # a component whose members share no target (none used by half of them) is a chain of pairs, not a group of
    # co-actors: it is dropped (large's orders: 183,654 buyers of hot products, "co-acted on 0 shared targets")
    kept = np.flatnonzero(np.fromiter((len(x) > 0 for x in items), dtype=bool, count=len(items)))
    renumber = np.full(len(big), -1)
    renumber[kept] = np.arange(len(kept))
    g = g.iloc[kept].assign(group_id=np.arange(len(kept))).reset_index(drop=True)
    members = members.assign(group_id=renumber[members["group_id"].to_numpy()])
    members = members[members["group_id"] >= 0].reset_index(drop=True)
    return g[gcols], members
