"""Blacklists and graylists with scope, expiry and an append-only audit trail.

A :class:`ListStore` holds rows of the contract's ``list_entries`` table
(``entry_id, list_type, list_name, entity_type, entity_id, scope, reason,
added_at, expires_at``) plus ``removed_at``: removing an entry stamps it, so
the store can answer "what was listed at time t" for backtests. Every
:meth:`ListStore.add` and :meth:`ListStore.remove` appends a row to the audit
trail (who, when, what, why); the trail is never rewritten.

Scope follows NetEase's per-promotion lists: an entry scoped
``promotion:<id>`` applies only to events of that promotion, ``scene:<name>``
only in that scene, ``global`` everywhere.

Lists weighted by sharing
-------------------------
A threat feed is trusted whatever its entries are: an IP on it may be a
carrier NAT exit shared by a hundred honest users. :func:`weigh_lists` looks
at how each listed resource (ip, device, phone, address, account) is used in
the data before the list acts: how many accounts use it, how many of them look
honest (:func:`account_standing`: old accounts active on several days), and
whether the resource is shared infrastructure (steady use by many unrelated
accounts, decided from the data by :func:`fraudkit.capability.graphs.hot_entities`).
An entry's weight is ``1 - honest_share * sharing`` with ``sharing`` 1 for
infrastructure, 0.5 for another hot resource and 0 otherwise; entries below
``min_weight`` are suspended (left out of the store the rules read). The result
keeps the per-entry weights (:data:`WEIGHT_COLUMNS`) and the collateral of every
list (:data:`COLLATERAL_COLUMNS`): what each list would touch before it acts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dataclasses import dataclass, field

from fraudkit.capability.graphs import hot_entities_of
from fraudkit.data.atomic import write_parquet
from fraudkit.data.contract import ENTITY_TYPES, LIST_TYPES, TABLES
from fraudkit.data.sqlsource import distinct_days, open_source
from fraudkit.errors import FraudkitError

__all__ = ["ListStore", "ENTRY_COLUMNS", "AUDIT_COLUMNS", "row_scopes", "account_standing", "list_usage",
           "weigh_lists", "WeightedLists", "WEIGHT_COLUMNS", "COLLATERAL_COLUMNS"]

ENTRY_COLUMNS = TABLES["list_entries"].column_names + ("removed_at",)
"""Columns of :attr:`ListStore.entries`: the contract table plus ``removed_at``."""

AUDIT_COLUMNS = ("audit_id", "at", "actor", "op", "entry_id", "list_type", "list_name", "entity_type",
                 "entity_id", "scope", "reason")
"""Columns of the audit trail; ``op`` is ``add``, ``remove`` or ``load``."""


class ListStore:
    """Named blacklists and graylists over the ``list_entries`` table.

    Parameters
    ----------
    entries : pandas.DataFrame, optional
        Rows of the contract's ``list_entries`` table (``removed_at`` optional).
    audit : pandas.DataFrame, optional
        An existing audit trail (from :meth:`read`).

    Examples
    --------
    >>> store = ListStore()
    >>> _ = store.add("blacklist", "scalpers", "account", ["a1", "a2"], reason="confirmed ring",
    ...               actor="analyst", at="2024-11-01", scope="promotion:p11")
    >>> store.contains("scalpers", ["a1", "a3"], scope="promotion:p11", as_of="2024-11-11").tolist()
    [True, False]
    >>> store.contains("scalpers", ["a1"], scope="promotion:p12", as_of="2024-11-11").tolist()
    [False]
    """

    def __init__(self, entries: pd.DataFrame | None = None, audit: pd.DataFrame | None = None):
        self._entries = _normalise_entries(entries)
        self._audit = _empty_audit() if audit is None else audit[list(AUDIT_COLUMNS)].copy()
        self._audit["at"] = self._audit["at"].astype("datetime64[ns]")
        if entries is not None and audit is None and len(self._entries):
            self._log("load", self._entries, actor="system", at=pd.Timestamp.now().floor("s"))

    # --- construction and persistence ---------------------------------------------------------

    @classmethod
    def read(cls, path) -> "ListStore":
        """Read a store saved with :meth:`save` (``entries.parquet`` and ``audit.parquet``)."""
        path = Path(path)
        if not (path / "entries.parquet").is_file():
            raise FraudkitError(f"{path} is not a list store: {path / 'entries.parquet'} is missing; "
                                "create one with ListStore().save(path)")
        entries = pd.read_parquet(path / "entries.parquet")
        audit = pd.read_parquet(path / "audit.parquet") if (path / "audit.parquet").is_file() else None
        return cls(entries, audit if audit is not None else _empty_audit())

    def save(self, path) -> Path:
        """Write ``entries.parquet`` and ``audit.parquet`` under ``path``, each atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_parquet(self._entries, path / "entries.parquet")
        write_parquet(self._audit, path / "audit.parquet")
        return path

    @property
    def entries(self) -> pd.DataFrame:
        """Every entry ever added (a copy), removed ones included with ``removed_at``."""
        return self._entries.copy()

    @property
    def audit(self) -> pd.DataFrame:
        """The audit trail (a copy), oldest first."""
        return self._audit.copy()

    def to_frame(self) -> pd.DataFrame:
        """Entries not removed, in the contract's ``list_entries`` columns."""
        keep = self._entries["removed_at"].isna()
        return self._entries.loc[keep, list(TABLES["list_entries"].column_names)].reset_index(drop=True)

    def names(self) -> list:
        """Names of every list in the store."""
        return sorted(self._entries["list_name"].unique().tolist())

    def __len__(self) -> int:
        return int(self._entries["removed_at"].isna().sum())

    def __repr__(self) -> str:
        return f"ListStore({len(self)} entries in {len(self.names())} lists, {len(self._audit)} audit rows)"

    # --- changes ------------------------------------------------------------------------------

    def add(self, list_type, list_name, entity_type, values, *, reason, actor, at=None, scope="global",
            expires_at=None) -> np.ndarray:
        """List ``values``; return the new entry ids.

        Parameters
        ----------
        list_type : {"blacklist", "graylist"}
        list_name : str
            E.g. ``"proxy_ips"``, ``"scalper_addresses"``.
        entity_type : str
            One of :data:`fraudkit.data.contract.ENTITY_TYPES`.
        values : array-like
            Keys to list (stored as text).
        reason : str
            Why (kept with the entry and in the audit trail).
        actor : str
            Who (an analyst, ``"loop"``, ``"rules:R001"``).
        at : timestamp-like, optional
            When; default now.
        scope : str, default="global"
            ``global``, ``promotion:<id>`` or ``scene:<name>``.
        expires_at : timestamp-like, optional
            When the entries stop applying.
        """
        if list_type not in LIST_TYPES:
            raise FraudkitError(f"list_type must be one of {', '.join(LIST_TYPES)}, got {list_type!r}")
        if entity_type not in ENTITY_TYPES:
            raise FraudkitError(f"entity_type must be one of {', '.join(ENTITY_TYPES)}, got {entity_type!r}")
        _check_scope(scope)
        if not reason or not actor:
            raise FraudkitError("every list change needs a reason and an actor (who and why are audited)")
        at = pd.Timestamp.now().floor("s") if at is None else pd.Timestamp(at)
        exp = pd.NaT if expires_at is None else pd.Timestamp(expires_at)
        if exp is not pd.NaT and exp <= at:
            raise FraudkitError(f"expires_at {exp} is not after the time of adding {at}")
        vals = pd.Series(np.asarray(values, dtype=object)).astype(str)
        start = self._next_id()
        ids = np.array([f"L{start + i:08d}" for i in range(len(vals))], dtype=object)
        new = pd.DataFrame({
            "entry_id": ids, "list_type": list_type, "list_name": str(list_name), "entity_type": entity_type,
            "entity_id": vals.to_numpy(dtype=object), "scope": scope, "reason": str(reason),
            "added_at": at, "expires_at": exp, "removed_at": pd.NaT,
        }, columns=list(ENTRY_COLUMNS))
        with warnings.catch_warnings():  # all-NaT columns (removed_at) keep their dtype either way
            warnings.simplefilter("ignore", FutureWarning)
            both = pd.concat([self._entries, new], ignore_index=True) if len(self._entries) else new
        self._entries = _normalise_entries(both)
        self._log("add", new, actor=actor, at=at)
        return ids

    def remove(self, list_name, values, *, reason, actor, at=None, scope=None) -> int:
        """Remove the live entries of ``values`` from ``list_name``; return how many were removed.

        Removed entries stay in :attr:`entries` with ``removed_at`` set, so
        point-in-time queries before the removal still see them.
        """
        if not reason or not actor:
            raise FraudkitError("every list change needs a reason and an actor (who and why are audited)")
        at = pd.Timestamp.now().floor("s") if at is None else pd.Timestamp(at)
        e = self._entries
        mask = (e["list_name"] == list_name) & e["removed_at"].isna() \
            & e["entity_id"].isin(pd.Series(np.asarray(values, dtype=object)).astype(str))
        if scope is not None:
            mask &= e["scope"] == scope
        if not mask.any():
            return 0
        entries = e.copy()
        entries.loc[mask, "removed_at"] = at
        self._entries = entries
        gone = entries.loc[mask].assign(reason=str(reason))
        self._log("remove", gone, actor=actor, at=at)
        return int(mask.sum())

    # --- queries ------------------------------------------------------------------------------

    def active(self, as_of=None) -> pd.DataFrame:
        """Entries in force at ``as_of`` (default: now): added, not expired, not removed."""
        t = pd.Timestamp.now() if as_of is None else pd.Timestamp(as_of)
        e = self._entries
        live = (e["added_at"] <= t) & (e["expires_at"].isna() | (e["expires_at"] > t)) \
            & (e["removed_at"].isna() | (e["removed_at"] > t))
        return e.loc[live].reset_index(drop=True)

    def contains(self, list_name, values, *, list_type=None, entity_type=None, scope=None,
                 as_of=None) -> np.ndarray:
        """Vectorised membership: is each value on ``list_name`` at ``as_of`` within ``scope``?

        Parameters
        ----------
        list_name : str
        values : array-like of shape (n,)
            Keys to look up; compared as text with the listed ids.
        list_type : {"blacklist", "graylist"}, optional
            Restrict to one list type.
        entity_type : str, optional
            Restrict to entries of one entity type.
        scope : None, str, array of str, or a list of those
            The context of each value. ``None`` matches global entries only; a
            str (``"promotion:p1"``) applies to every value; an array gives each
            value its own scope (``None`` = no scope); a list combines several
            (a promotion per row plus a scene). A scoped entry applies only where
            its scope is among the value's scopes.
        as_of : timestamp-like or array-like of shape (n,), optional
            When each value is looked up: one time for every value, or one per
            value (an event's own ``ts``, so an entry that expired in the data's
            past still applies to the events before its expiry). Default now;
            a missing per-value time (NaT) also means now. An entry applies when
            ``added_at <= as_of < expires_at`` and it was not removed by then.

        Returns
        -------
        ndarray of bool, shape (n,)

        Examples
        --------
        >>> s = ListStore()
        >>> _ = s.add("blacklist", "proxy_ips", "ip", ["1.2.3.4"], reason="proxy", actor="analyst",
        ...           at="2024-06-01", expires_at="2024-06-03")
        >>> s.contains("proxy_ips", ["1.2.3.4"] * 3,
        ...            as_of=pd.to_datetime(["2024-05-31", "2024-06-02", "2024-06-04"])).tolist()
        [False, True, False]
        """
        vals = values if isinstance(values, (pd.Series, pd.Index)) else pd.Series(np.asarray(values, dtype=object)
                                                                                 if not isinstance(values, np.ndarray)
                                                                                 else values)
        n = len(vals)
        per_row = as_of is not None and not isinstance(as_of, (str, pd.Timestamp)) and np.ndim(as_of) == 1
        if per_row:
            times = pd.to_datetime(pd.Series(np.asarray(as_of)), cache=False).to_numpy(dtype="datetime64[ns]")
            if len(times) != n:
                raise FraudkitError(f"ListStore.contains: {len(times)} as_of times for {n} values; give one time "
                                    "or one per value")
            times = np.where(np.isnat(times), np.datetime64(pd.Timestamp.now(), "ns"), times)
            act = self._entries
        else:
            act = self.active(as_of)
        act = act[act["list_name"] == list_name]
        if list_type is not None:
            act = act[act["list_type"] == list_type]
        if entity_type is not None:
            act = act[act["entity_type"] == entity_type]
        out = np.zeros(n, dtype=bool)
        if act.empty or n == 0:
            return out
        scopes = [] if scope is None else (list(scope) if isinstance(scope, list) else [scope])
        for sc, grp in act.groupby("scope", sort=False):
            if sc == "global":
                applies = None
            else:
                applies = np.zeros(n, dtype=bool)
                for s in scopes:
                    if isinstance(s, str):
                        applies |= s == sc
                    else:
                        applies |= pd.Series(np.asarray(s, dtype=object)).eq(sc).to_numpy(dtype=bool)
                if not applies.any():
                    continue
            hit = _isin_as_text(vals, grp["entity_id"].to_numpy(dtype=object))
            if applies is not None:
                hit &= applies
            if per_row and hit.any():
                hit = _live_at(vals, hit, times, grp)
            out |= hit
        return out

    # --- private ------------------------------------------------------------------------------

    def _next_id(self) -> int:
        if not len(self._entries):
            return 1
        nums = pd.to_numeric(self._entries["entry_id"].astype(str).str.lstrip("L"), errors="coerce")
        return int(np.nanmax(nums.to_numpy(dtype=float), initial=0)) + 1 if nums.notna().any() \
            else len(self._entries) + 1

    def _log(self, op, rows, *, actor, at):
        start = len(self._audit)
        log = pd.DataFrame({
            "audit_id": np.arange(start, start + len(rows), dtype=np.int64),
            "at": pd.Timestamp(at), "actor": str(actor), "op": op,
            "entry_id": rows["entry_id"].astype(str).to_numpy(), "list_type": rows["list_type"].to_numpy(),
            "list_name": rows["list_name"].to_numpy(), "entity_type": rows["entity_type"].to_numpy(),
            "entity_id": rows["entity_id"].astype(str).to_numpy(), "scope": rows["scope"].to_numpy(),
            "reason": rows["reason"].to_numpy(),
        }, columns=list(AUDIT_COLUMNS))
        log["at"] = log["at"].astype("datetime64[ns]")
        self._audit = pd.concat([self._audit, log], ignore_index=True) if len(self._audit) else log


WEIGHT_COLUMNS = ("entry_id", "list_type", "list_name", "entity_type", "entity_id", "scope", "n_accounts",
                  "n_look_honest", "n_unknown", "honest_share", "sharing", "weight", "acts", "reason")
"""Columns of :attr:`WeightedLists.weights`, one row per entry in force: the accounts that used the resource in
the data (``n_accounts``, of which ``n_look_honest`` and ``n_unknown``), ``honest_share`` (look honest / all),
``sharing`` (1 shared infrastructure, 0.5 another hot resource, 0 not shared beyond its type's usual degree),
``weight = 1 - honest_share * sharing``, ``acts`` (weight >= min_weight) and the ``reason`` in words."""

COLLATERAL_COLUMNS = ("list_type", "list_name", "entity_type", "n_entries", "n_entries_seen", "accounts_touched",
                      "accounts_look_honest", "accounts_unknown", "n_entries_shared", "n_entries_suspended",
                      "accounts_touched_acting", "accounts_look_honest_acting")
"""Columns of :attr:`WeightedLists.collateral`, one row per list and entity type: entries in force
(``n_entries``), entries whose resource appears in the data (``n_entries_seen``), distinct accounts those entries
touch (``accounts_touched``) and of them ``accounts_look_honest`` / ``accounts_unknown`` (see
:func:`account_standing`), entries on shared resources (``n_entries_shared``: sharing > 0), entries suspended
(weight below ``min_weight``), and the accounts the list still touches once weighted
(``accounts_touched_acting``, of which ``accounts_look_honest_acting``)."""

_MEDIA = {  # entity type -> [(table, column, time column)] where accounts use it
    "ip": [("logins", "ip", "ts"), ("interactions", "ip", "ts"), ("orders", "ip", "ts"), ("coupon_claims", "ip", "ts")],
    "device": [("logins", "device_id", "ts"), ("interactions", "device_id", "ts"), ("orders", "device_id", "ts"),
               ("coupon_claims", "device_id", "ts")],
    "phone": [("accounts", "phone", "registered_at"), ("orders", "receiver_phone", "ts")],
    "address": [("orders", "address", "ts")],
    "account": [("accounts", "account_id", "registered_at")],
}


@dataclass(frozen=True)
class WeightedLists:
    """A list store weighted by how its entries' resources are shared and used (see :func:`weigh_lists`).

    Parameters
    ----------
    store : ListStore
        The entries that act (suspended ones left out); what the rules read.
    weights : pandas.DataFrame
        :data:`WEIGHT_COLUMNS`, one row per entry in force.
    collateral : pandas.DataFrame
        :data:`COLLATERAL_COLUMNS`, one row per list and entity type.
    params : dict
    """

    store: "ListStore"
    weights: pd.DataFrame
    collateral: pd.DataFrame
    params: dict = field(default_factory=dict)


def account_standing(data, *, as_of=None, min_age_days=90, min_active_days=3) -> pd.Series:
    """Whether each account looks honest without labels: ``"honest"`` or ``"unknown"``.

    An account looks honest when it was registered at least ``min_age_days`` before ``as_of`` and was active
    (an interaction, order or login) on at least ``min_active_days`` distinct days of the data: the long,
    ordinary history a bulk-registered or throw-away account lacks. It is a collateral estimate, not a
    verdict: nurtured accounts are built to pass it.

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
    as_of : timestamp-like, optional
        Default: the data's end.
    min_age_days, min_active_days : int

    Returns
    -------
    pandas.Series
        Indexed by account id (every account of the accounts table), values ``honest`` / ``unknown``.

    Examples
    --------
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2020-01-01", "2024-05-30"])})
    >>> it = pd.DataFrame({"account_id": [1, 1, 1, 2], "ts": pd.to_datetime(
    ...     ["2024-06-01", "2024-06-02", "2024-06-03", "2024-06-03"])})
    >>> account_standing({"accounts": acc, "interactions": it}).to_dict()
    {1: 'honest', 2: 'unknown'}
    """
    with open_source(data, as_of=as_of) as src:
        if not src.has("accounts"):
            return pd.Series(dtype=object)
        ref = src.reference_time()
        days = [f"SELECT account_id, CAST(ts AS DATE) AS d FROM {getattr(src.t, n)}"
                for n in ("interactions", "orders", "logins") if src.has(n)]
        union = f"({' UNION ALL '.join(days)}) u"
        active = (f"(SELECT account_id, {distinct_days('d', src.day_range(union, 'd'))} AS n FROM {union} "
                  "GROUP BY account_id)" if days else "(SELECT NULL AS account_id, 0 AS n WHERE false)")
        f = src.df(f"""SELECT a.account_id,
                (epoch(TIMESTAMP '{pd.Timestamp(ref)}' - CAST(a.registered_at AS TIMESTAMP)) / 86400.0 >= {float(min_age_days)})
                AND coalesce(x.n, 0) >= {int(min_active_days)} AS ok
            FROM {src.t.accounts} a LEFT JOIN {active} x ON a.account_id = x.account_id""")
    return pd.Series(np.where(f["ok"].fillna(False).to_numpy(dtype=bool), "honest", "unknown"),
                     index=f["account_id"].to_numpy(), name="standing")


def list_usage(data, entries) -> pd.DataFrame:
    """The accounts that used each listed resource in the data: ``entity_type``, ``entity_id``, ``account_id``.

    IPs and devices from every event table, phones from the accounts' own and the orders' receiver phones,
    addresses from orders, an account from itself; ids compared as text, distinct rows.

    Examples
    --------
    >>> lg = pd.DataFrame({"account_id": [1, 2, 2], "ip": ["9.9.9.9", "9.9.9.9", "8.8.8.8"],
    ...                    "ts": pd.to_datetime(["2024-06-01"] * 3)})
    >>> e = pd.DataFrame({"entity_type": ["ip"], "entity_id": ["9.9.9.9"]})
    >>> list_usage({"logins": lg}, e)["account_id"].tolist()
    [1, 2]
    """
    cols = ["entity_type", "entity_id", "account_id"]
    e = entries[["entity_type", "entity_id"]].drop_duplicates()
    e = e.assign(entity_id=e["entity_id"].astype(str).to_numpy(dtype=object))
    if not len(e):
        return pd.DataFrame({c: [] for c in cols})
    with open_source(data) as src:
        listed = src.register("listed", e)
        selects = []
        for etype, uses in _MEDIA.items():
            if etype not in set(e["entity_type"]):
                continue
            for table, col, _ in uses:
                if not src.has(table) or col in src.missing_columns.get(table, ()):
                    continue
                selects.append(f"SELECT '{etype}' AS entity_type, CAST({col} AS VARCHAR) AS entity_id, account_id "
                               f"FROM {getattr(src.t, table)} WHERE CAST({col} AS VARCHAR) IN "
                               f"(SELECT entity_id FROM {listed} WHERE entity_type = '{etype}')")
        out = (src.df(f"SELECT DISTINCT * FROM ({' UNION ALL '.join(selects)}) ORDER BY entity_type, entity_id, "
                      "account_id") if selects else pd.DataFrame({c: [] for c in cols}))
        src.unregister(listed)
    return out[cols]


def weigh_lists(store, data, *, as_of=None, min_weight=0.5, standing=None, hot_fence=3.0,
                hot_min_accounts=5) -> WeightedLists:
    """Weigh every entry in force by how many accounts share its resource and how honestly it is used.

    Parameters
    ----------
    store : ListStore
    data : fraudkit.data.dataset.Dataset or dict of str to DataFrame
        Where the resources are used.
    as_of : timestamp-like, optional
        Entries in force at this time (default: the data's end).
    min_weight : float, default=0.5
        Entries weighing less are suspended: not in :attr:`WeightedLists.store`.
    standing : pandas.Series, optional
        ``honest`` / ``unknown`` per account id (default :func:`account_standing` of ``data``).
    hot_fence, hot_min_accounts
        Passed to :func:`fraudkit.capability.graphs.hot_entities` (which resources are widely shared).

    Returns
    -------
    WeightedLists

    Examples
    --------
    >>> acc = pd.DataFrame({"account_id": range(40), "registered_at": pd.Timestamp("2020-01-01")})
    >>> ts = pd.Timestamp("2024-06-01") + pd.to_timedelta(np.arange(40 * 14) * 37, unit="min")
    >>> nat = pd.DataFrame({"account_id": np.arange(40 * 14) % 40, "ip": "10.0.0.1", "ts": ts,
    ...                     "device_id": np.arange(40 * 14) % 40})
    >>> home = pd.DataFrame({"account_id": np.arange(40), "ip": [f"10.1.{i // 2}.1" for i in range(40)],
    ...                      "ts": pd.Timestamp("2024-06-02"), "device_id": np.arange(40)})
    >>> s = ListStore()
    >>> _ = s.add("blacklist", "feed", "ip", ["10.0.0.1", "10.1.3.1"], reason="feed", actor="intel", at="2024-05-01")
    >>> w = weigh_lists(s, {"accounts": acc, "logins": pd.concat([nat, home])}, as_of="2024-06-20")
    >>> w.weights[["entity_id", "n_accounts", "weight", "acts"]].values.tolist()
    [['10.0.0.1', 40, 0.0, False], ['10.1.3.1', 2, 1.0, True]]
    >>> len(w.store)
    1
    """
    live = store.active(as_of if as_of is not None else _data_end(data))
    params = {"min_weight": min_weight, "as_of": None if as_of is None else str(as_of), "hot_fence": hot_fence,
              "hot_min_accounts": hot_min_accounts}
    if not len(live):
        return WeightedLists(store=store, weights=pd.DataFrame({c: [] for c in WEIGHT_COLUMNS}),
                             collateral=pd.DataFrame({c: [] for c in COLLATERAL_COLUMNS}), params=params)
    if standing is None:
        standing = account_standing(data, as_of=as_of)
    use = list_usage(data, live)
    use = use.assign(standing=standing.reindex(use["account_id"].to_numpy()).fillna("unknown").to_numpy())
    per = use.assign(honest=use["standing"].eq("honest").to_numpy(np.int64)).groupby(["entity_type", "entity_id"]) \
        .agg(n_accounts=("account_id", "nunique"), n_look_honest=("honest", "sum")).reset_index()
    per["n_unknown"] = per["n_accounts"] - per["n_look_honest"]
    sharing = _sharing(data, live, hot_fence=hot_fence, hot_min_accounts=hot_min_accounts)
    w = live[["entry_id", "list_type", "list_name", "entity_type", "entity_id", "scope"]].merge(
        per, on=["entity_type", "entity_id"], how="left")
    for c in ("n_accounts", "n_look_honest", "n_unknown"):
        w[c] = pd.to_numeric(w[c], errors="coerce").fillna(0).astype(np.int64)
    w["honest_share"] = np.where(w["n_accounts"] > 0, w["n_look_honest"] / w["n_accounts"].clip(lower=1), 0.0)
    key = list(zip(w["entity_type"], w["entity_id"]))
    w["sharing"] = [sharing.get(k, (0.0, ""))[0] for k in key]
    w["weight"] = (1.0 - w["honest_share"] * w["sharing"]).round(6)
    w["acts"] = w["weight"] >= min_weight
    w["reason"] = [
        (f"{n} accounts use it, {h} look honest; " + (sharing[k][1] if k in sharing else "not widely shared")
         + f"; weight {wt:.2f}" + ("" if a else f" < {min_weight:g}: suspended"))
        for n, h, k, wt, a in zip(w["n_accounts"], w["n_look_honest"], key, w["weight"], w["acts"])]
    w = w[list(WEIGHT_COLUMNS)].reset_index(drop=True)
    kept = store.entries
    kept = kept[~kept["entry_id"].isin(w.loc[~w["acts"], "entry_id"])]
    acting = ListStore(kept, audit=store.audit)
    return WeightedLists(store=acting, weights=w, collateral=_collateral(w, use), params=params)


def row_scopes(kind, values) -> np.ndarray:
    """Per-row scope text ``"<kind>:<id>"`` (``None`` where the id is missing).

    Integer ids read into a float column because of nulls (``7.0``) are written ``7``, so they
    match entries scoped ``promotion:7``.

    Examples
    --------
    >>> row_scopes("promotion", pd.Series([7.0, None, 8.0])).tolist()
    ['promotion:7', None, 'promotion:8']
    """
    v = pd.Series(values)
    if pd.api.types.is_float_dtype(v.dtype) and v.dropna().apply(float.is_integer).all():
        v = v.astype("Int64")
    return (f"{kind}:" + v.astype("string")).to_numpy(dtype=object, na_value=None)


def _data_end(data):
    with open_source(data) as src:
        return src.reference_time()


def _sharing(data, live, *, hot_fence, hot_min_accounts) -> dict:
    """``(entity_type, entity_id) -> (sharing, reason)`` for listed resources that are hot in their type."""
    out = {}
    for etype in sorted(set(live["entity_type"]) & set(_MEDIA) - {"account"}):
        table, col, time = _MEDIA[etype][0]
        link = "device_id" if etype in ("ip", "address") else None
        h = hot_entities_of(data, entity=col, tables=tuple(t for t, c, _ in _MEDIA[etype] if c == col), time=time,
                            link=link, entity_type=etype, fence=hot_fence, min_accounts=hot_min_accounts,
                            steady=link is not None)
        listed = set(live.loc[live["entity_type"] == etype, "entity_id"].astype(str))
        for eid, steady, reason in zip(h["entity_id"], h["steady"], h["reason"]):
            if eid in listed:
                out[(etype, eid)] = (1.0 if steady else 0.5, ("shared infrastructure: " if steady else "hot: ") + reason)
    return out


def _collateral(w, use) -> pd.DataFrame:
    rows = []
    for (lt, ln, et), g in w.groupby(["list_type", "list_name", "entity_type"], sort=True):
        u = use.merge(g[["entity_type", "entity_id", "acts"]], on=["entity_type", "entity_id"])
        acc = u.drop_duplicates("account_id")
        act = u[u["acts"]].drop_duplicates("account_id")
        rows.append({"list_type": lt, "list_name": ln, "entity_type": et, "n_entries": len(g),
                     "n_entries_seen": int((g["n_accounts"] > 0).sum()), "accounts_touched": len(acc),
                     "accounts_look_honest": int((acc["standing"] == "honest").sum()),
                     "accounts_unknown": int((acc["standing"] != "honest").sum()),
                     "n_entries_shared": int((g["sharing"] > 0).sum()), "n_entries_suspended": int((~g["acts"]).sum()),
                     "accounts_touched_acting": len(act),
                     "accounts_look_honest_acting": int((act["standing"] == "honest").sum())})
    return pd.DataFrame(rows, columns=list(COLLATERAL_COLUMNS))


def _empty_audit():
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "audit_id" else "datetime64[ns]" if c == "at"
                                      else "object") for c in AUDIT_COLUMNS})


def _normalise_entries(entries):
    if entries is None:
        entries = pd.DataFrame({c: pd.Series(dtype="object") for c in ENTRY_COLUMNS})
    missing = [c for c in TABLES["list_entries"].column_names if c not in entries.columns]
    if missing:
        raise FraudkitError(f"list entries lack column(s) {', '.join(missing)}; expected the contract's "
                            "list_entries table")
    out = entries.copy()
    if "removed_at" not in out.columns:
        out["removed_at"] = pd.NaT
    for c in ("added_at", "expires_at", "removed_at"):
        out[c] = pd.to_datetime(out[c], cache=False).astype("datetime64[ns]")
    for c in ("entry_id", "entity_id"):
        out[c] = out[c].astype(str).astype(object)
    bad = ~out["list_type"].isin(LIST_TYPES)
    if bad.any():
        raise FraudkitError(f"list_entries.list_type has unknown value {out.loc[bad, 'list_type'].iloc[0]!r}; "
                            f"use one of {', '.join(LIST_TYPES)}")
    for s in out["scope"].unique():
        _check_scope(s)
    return out[list(ENTRY_COLUMNS) + [c for c in out.columns if c not in ENTRY_COLUMNS]].reset_index(drop=True)


def _check_scope(scope):
    if not (scope == "global" or (isinstance(scope, str) and scope.startswith(("promotion:", "scene:"))
                                  and scope.split(":", 1)[1])):
        raise FraudkitError(f"bad list scope {scope!r}; use global, promotion:<id> or scene:<name>")


def _live_at(vals, hit, times, entries):
    """Narrow ``hit`` to rows whose value has an entry live at the row's own time."""
    rows = np.flatnonzero(hit)
    v = pd.Series(vals).iloc[rows]
    text = v.astype(str).to_numpy(dtype=object) if not (pd.api.types.is_float_dtype(v.dtype)) \
        else v.map(lambda x: str(int(x)) if float(x).is_integer() else str(x)).to_numpy(dtype=object)
    pairs = pd.DataFrame({"row": rows, "entity_id": text, "t": times[rows]}).merge(
        entries[["entity_id", "added_at", "expires_at", "removed_at"]], on="entity_id", how="inner")
    live = (pairs["added_at"] <= pairs["t"]) & (pairs["expires_at"].isna() | (pairs["expires_at"] > pairs["t"])) \
        & (pairs["removed_at"].isna() | (pairs["removed_at"] > pairs["t"]))
    out = np.zeros(len(hit), dtype=bool)
    out[pairs.loc[live, "row"].to_numpy()] = True
    return out


def _isin_as_text(vals: pd.Series, listed: np.ndarray) -> np.ndarray:
    """``vals.isin(listed)`` comparing as text without converting millions of values to str."""
    s = pd.Series(vals) if not isinstance(vals, pd.Series) else vals
    if isinstance(s.dtype, pd.CategoricalDtype):  # each distinct value compared once (a run's account ids)
        codes = s.cat.codes.to_numpy()
        hit = _isin_as_text(pd.Series(s.cat.categories), listed)
        return (codes >= 0) & hit[np.maximum(codes, 0)] if len(hit) else np.zeros(len(s), dtype=bool)
    if s.dtype == object and len(s) and not isinstance(s.iloc[0], str):
        s = s.astype(str)
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
        nums = pd.to_numeric(pd.Series(listed), errors="coerce").dropna()
        hit = s.isin(nums.to_numpy())
        # keep exact textual matches only (e.g. '7' but not '7.0' for an int column)
        return hit.to_numpy(dtype=bool)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(str).isin(listed).to_numpy(dtype=bool)
    return s.astype("string").isin(listed).fillna(False).to_numpy(dtype=bool) if s.dtype != object \
        else s.isin(listed).to_numpy(dtype=bool)
