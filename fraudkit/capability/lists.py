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
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.atomic import write_parquet
from fraudkit.data.contract import ENTITY_TYPES, LIST_TYPES, TABLES
from fraudkit.errors import FraudkitError

__all__ = ["ListStore", "ENTRY_COLUMNS", "AUDIT_COLUMNS", "row_scopes"]

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
            times = pd.to_datetime(pd.Series(np.asarray(as_of))).to_numpy(dtype="datetime64[ns]")
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
        out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
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
