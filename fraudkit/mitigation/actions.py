"""Risk mitigation: what is done to whom, and what it changes.

Seed 003 (community anti-cheating) says the same identification result gives very
different outcomes depending on *what* is governed: the **impact** (clean the fake
counts: the buyer only loses what they paid), the **supply chain** (ban the accounts
that deliver fake engagement: every ban burns devices, phones and IPs, so the price of
accounts and of the service goes up) and the **motive** (demote notes that bought
engagement and restrict their authors' commercial rights: cheating stops paying).
Seeds 001/004 add the scalper side: **personalised purchase limits** built from
accumulation factors, **lists scoped per promotion**, and **delayed interception**
(act at a later key step so attackers cannot learn the rule).

Every action is a pure function over run-directory artifacts (``accounts.parquet``,
``decisions.parquet``) and dataset tables. It returns a :class:`MitigationResult`: the
table of what it does (named columns), a summary dict of what it changes, the entities
it affects (for evaluation) and its parameters. Inputs are never modified.
:func:`mitigation_summary` puts the results side by side; it is the only function here
that reads the labels table, and only to evaluate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from fraudkit.capability.accumulators import Accumulator, compute, parse_window
from fraudkit.capability.lists import ListStore
from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES
from fraudkit.data.dataset import read_table
from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.mitigation.decisions import defer_decisions, key_steps

__all__ = [
    "MitigationResult",
    "clean_engagement",
    "ban_accounts",
    "demote_notes",
    "restrict_commerce",
    "PurchaseLimit",
    "DEFAULT_PURCHASE_LIMITS",
    "apply_purchase_limits",
    "lists_from_decisions",
    "delay_interception",
    "mitigation_summary",
]

ENGAGEMENT_ACTIONS = ("like", "collect", "comment", "share")
"""Actions that count as engagement on a note (views and follows are left out of demotion)."""

_RESOURCE_SOURCES = (
    ("logins", ("device_id", "ip")),
    ("interactions", ("device_id", "ip")),
    ("orders", ("device_id", "ip", "address", "receiver_phone")),
    ("coupon_claims", ("device_id", "ip")),
)
_RESOURCE_KIND = {"device_id": "device", "ip": "ip", "phone": "phone", "receiver_phone": "phone",
                  "address": "address"}


@dataclass(frozen=True)
class MitigationResult:
    """What one governance action does.

    Attributes
    ----------
    action : str
        ``clean_engagement``, ``ban_accounts``, ``demote_notes``, ``restrict_commerce``,
        ``purchase_limit``, ``lists`` or ``delayed``.
    table : pandas.DataFrame
        One row per entity the action looked at, with what it does to it.
    summary : dict
        What the action changes, in numbers (no labels read).
    affected : pandas.DataFrame
        ``entity_type, entity_id, account_id``: the entities the action hits, for
        :func:`mitigation_summary` (``account_id`` is the acting account, used when the
        entity itself has no label).
    params : dict
        The parameters that produced it.
    store : ListStore or None
        The updated list store (``lists_from_decisions`` only).
    """

    action: str
    table: pd.DataFrame
    summary: dict
    affected: pd.DataFrame
    params: dict = field(default_factory=dict)
    store: object = None

    def summary_frame(self) -> pd.DataFrame:
        """The summary as a one-row DataFrame (for notebooks)."""
        return pd.DataFrame([{"action": self.action, **self.summary}])

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in self.summary.items())
        return f"MitigationResult({self.action}: {body})"


# --- governance aimed at the impact -----------------------------------------------------------


def clean_engagement(interactions: pd.DataFrame, flagged_accounts, *, flagged="flagged_combined") -> MitigationResult:
    """Remove the engagement of flagged accounts from every note's counts.

    Parameters
    ----------
    interactions : pandas.DataFrame
        ``event_id``, ``account_id``, ``action``, ``target_id`` (the contract table).
    flagged_accounts : array-like or pandas.DataFrame
        Account keys, or an accounts table (``accounts.parquet``) with the ``flagged`` column.
    flagged : str, default="flagged_combined"
        Column used when ``flagged_accounts`` is a table.

    Returns
    -------
    MitigationResult
        ``table``: one row per ``(target_id, action)`` with ``raw_count``, ``fake_count``,
        ``clean_count``, ``fake_share``. ``affected``: the removed interactions.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"event_id": [1, 2, 3], "account_id": ["a", "b", "b"], "action": "like",
    ...                    "target_id": ["n1", "n1", "n2"]})
    >>> clean_engagement(ev, ["b"]).table[["target_id", "raw_count", "fake_count", "clean_count"]].values.tolist()
    [['n1', 2, 1, 1], ['n2', 1, 1, 0]]
    """
    _need(interactions, ("event_id", "account_id", "action", "target_id"), "interactions")
    bad = _keys(flagged_accounts, flagged)
    ev = interactions[["event_id", "account_id", "action", "target_id"]]
    fake = ev["account_id"].astype(str).isin(bad).to_numpy()
    g = ev.assign(fake=fake).groupby(["target_id", "action"], sort=True)["fake"]
    table = pd.DataFrame({"raw_count": g.size(), "fake_count": g.sum().astype(np.int64)}).reset_index()
    table["clean_count"] = table["raw_count"] - table["fake_count"]
    table["fake_share"] = table["fake_count"] / table["raw_count"]
    removed = ev[fake]
    engaged = table["action"].isin(ENGAGEMENT_ACTIONS)
    summary = {"n_interactions": int(len(ev)), "fake_removed": int(fake.sum()),
               "fake_share": float(fake.mean()) if len(ev) else float("nan"),
               "targets_touched": int(table.loc[table["fake_count"] > 0, "target_id"].nunique()),
               "engagement_removed": int(table.loc[engaged, "fake_count"].sum()),
               "flagged_accounts": int(len(bad))}
    affected = pd.DataFrame({"entity_type": "interaction", "entity_id": removed["event_id"].astype(str).to_numpy(),
                             "account_id": removed["account_id"].astype(str).to_numpy()})
    return MitigationResult("clean_engagement", table, summary, affected, {"flagged": flagged})


# --- governance aimed at the supply chain -----------------------------------------------------


def ban_accounts(accounts: pd.DataFrame, tables=None, *, flagged="flagged_combined", min_score=None,
                 score="score_combined", min_stages=1) -> MitigationResult:
    """Ban flagged accounts and count the resources the ban burns.

    An account is banned when ``flagged`` is true, at least ``min_stages`` stage flags
    agree and (with ``min_score``) ``score >= min_score``. The cost imposed on the
    attacker is the devices, phones, IPs and addresses of the banned accounts; a
    resource is *burned* when no account left unbanned uses it (a campus IP shared with
    honest students is not: it stays usable and must not be blacklisted).

    Parameters
    ----------
    accounts : pandas.DataFrame
        The run's ``accounts.parquet`` (``account_id``, ``flagged_<stage>``, ``score_combined``).
    tables : Dataset or dict of str to DataFrame, optional
        Where resources are read from (``accounts.phone``, logins, interactions, orders,
        coupon claims). Without it, only the ban list is returned.
    flagged : str, default="flagged_combined"
    min_score : float, optional
    score : str, default="score_combined"
    min_stages : int, default=1
        Number of ``flagged_<stage>`` columns (combined excluded) that must be true.

    Returns
    -------
    MitigationResult
        ``table``: ``account_id, score, n_stages, reason, n_device, n_ip, n_phone, n_address``.
        ``summary``: banned accounts and, per resource kind, distinct resources touched and burned.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": ["a", "b", "c"], "flagged_behaviour": [True, True, False],
    ...                     "flagged_graph": [True, False, False], "flagged_combined": [True, True, False],
    ...                     "score_combined": [0.9, 0.6, 0.1]})
    >>> ban_accounts(acc, min_stages=2).table["account_id"].tolist()
    ['a']
    """
    _need(accounts, ("account_id", flagged), "accounts")
    stage_cols = [c for c in accounts.columns if c.startswith("flagged_") and c != "flagged_combined" and c != flagged]
    n_stages = accounts[stage_cols].fillna(False).astype(bool).sum(axis=1).to_numpy() if stage_cols \
        else accounts[flagged].fillna(False).astype(bool).to_numpy().astype(int)
    keep = accounts[flagged].fillna(False).astype(bool).to_numpy() & (n_stages >= int(min_stages))
    sc = accounts[score].to_numpy(dtype=float) if score in accounts.columns else np.full(len(accounts), np.nan)
    if min_score is not None:
        if score not in accounts.columns:
            raise MissingInputError(f"ban_accounts: min_score needs the {score!r} column of accounts.parquet")
        keep &= sc >= float(min_score)
    reason = np.full(len(accounts), "", dtype=object)
    for c in stage_cols:
        hit = accounts[c].fillna(False).astype(bool).to_numpy()
        reason = np.where(hit, np.where(reason == "", c[len("flagged_"):], reason + "+" + c[len("flagged_"):]), reason)
    table = pd.DataFrame({"account_id": accounts["account_id"].astype(str).to_numpy(), "score": sc,
                          "n_stages": n_stages, "reason": reason})[keep].reset_index(drop=True)
    summary = {"banned": int(len(table))}
    if tables is not None:
        res = _account_resources(tables)
        banned = set(table["account_id"])
        res = res.assign(banned=res["account_id"].isin(banned))
        per = res[res["banned"]].groupby(["account_id", "kind"])["value"].nunique().unstack(fill_value=0)
        for kind in ("device", "ip", "phone", "address"):
            col = per[kind] if kind in per.columns else pd.Series(dtype=np.int64)
            table[f"n_{kind}"] = col.reindex(table["account_id"]).fillna(0).astype(np.int64).to_numpy()
            r = res[res["kind"] == kind]
            by_value = r.groupby("value")["banned"].agg(["any", "all"])
            summary[f"{kind}_touched"] = int(by_value["any"].sum())
            summary[f"{kind}_burned"] = int(by_value["all"].sum() if len(by_value) else 0)
    affected = pd.DataFrame({"entity_type": "account", "entity_id": table["account_id"].to_numpy(),
                             "account_id": table["account_id"].to_numpy()})
    return MitigationResult("ban_accounts", table, summary, affected,
                            {"flagged": flagged, "min_score": min_score, "min_stages": min_stages})


# --- governance aimed at the motive -----------------------------------------------------------


def demote_notes(clean_counts, *, fake_share=0.5, min_fake=3, floor=0.1,
                 actions=ENGAGEMENT_ACTIONS) -> MitigationResult:
    """Demote notes whose engagement is mostly fake: cheating earns less traffic than not cheating.

    Per note, over ``actions``: ``fake_share = fake / raw``. A note with
    ``fake_share >= fake_share`` and at least ``min_fake`` fake actions is demoted; its
    distribution weight becomes ``max(floor, 1 - fake_share) ** 2`` (squared so that
    buying engagement leaves the note *below* where its clean engagement alone would put it).

    Parameters
    ----------
    clean_counts : MitigationResult or pandas.DataFrame
        The result of :func:`clean_engagement` (or its table).
    fake_share : float, default=0.5
    min_fake : int, default=3
    floor : float, default=0.1
        Smallest weight (a demoted note is throttled, not deleted).
    actions : tuple of str

    Returns
    -------
    MitigationResult
        ``table``: per note ``note_id, raw_count, fake_count, fake_share, demoted, weight``.

    Examples
    --------
    >>> import pandas as pd
    >>> cc = pd.DataFrame({"target_id": ["n1", "n2"], "action": "like", "raw_count": [10, 10],
    ...                    "fake_count": [8, 1]})
    >>> t = demote_notes(cc).table
    >>> t["note_id"].tolist(), t["demoted"].tolist(), t["weight"].round(4).tolist()
    (['n1', 'n2'], [True, False], [0.04, 1.0])
    """
    cc = clean_counts.table if isinstance(clean_counts, MitigationResult) else clean_counts
    _need(cc, ("target_id", "action", "raw_count", "fake_count"), "clean_counts")
    if not 0 < fake_share <= 1:
        raise FraudkitError(f"demote_notes: fake_share must be in (0, 1], got {fake_share}")
    sub = cc[cc["action"].isin(actions)]
    g = sub.groupby("target_id", sort=True)[["raw_count", "fake_count"]].sum()
    table = g.reset_index().rename(columns={"target_id": "note_id"})
    table["fake_share"] = table["fake_count"] / table["raw_count"].where(table["raw_count"] > 0)
    table["demoted"] = (table["fake_share"] >= fake_share) & (table["fake_count"] >= min_fake)
    table["weight"] = np.where(table["demoted"], np.maximum(floor, 1 - table["fake_share"].fillna(0)) ** 2, 1.0)
    d = table[table["demoted"]]
    summary = {"notes": int(len(table)), "demoted": int(len(d)),
               "fake_engagement_on_demoted": int(d["fake_count"].sum()),
               "mean_weight_demoted": float(d["weight"].mean()) if len(d) else float("nan")}
    affected = pd.DataFrame({"entity_type": "note", "entity_id": d["note_id"].astype(str).to_numpy(),
                             "account_id": None})
    return MitigationResult("demote_notes", table, summary, affected,
                            {"fake_share": fake_share, "min_fake": min_fake, "floor": floor, "actions": list(actions)})


def restrict_commerce(notes: pd.DataFrame, demoted, *, min_demoted=1, min_share=0.0) -> MitigationResult:
    """Restrict the commercial rights of authors whose notes bought fake engagement.

    Parameters
    ----------
    notes : pandas.DataFrame
        ``note_id``, ``author_id`` (the contract table).
    demoted : MitigationResult or pandas.DataFrame
        :func:`demote_notes` result (``note_id``, ``demoted``, ``fake_count``).
    min_demoted : int, default=1
        Demoted notes an author needs before losing commercial rights.
    min_share : float, default=0.0
        And this share of their (engaged) notes must be demoted.

    Returns
    -------
    MitigationResult
        ``table``: per author with a demoted note: ``author_id, n_notes, n_demoted,
        demoted_share, fake_bought, restricted``.

    Examples
    --------
    >>> import pandas as pd
    >>> notes = pd.DataFrame({"note_id": ["n1", "n2", "n3"], "author_id": ["u", "u", "v"]})
    >>> dem = pd.DataFrame({"note_id": ["n1", "n2", "n3"], "demoted": [True, True, False], "fake_count": [5, 4, 0]})
    >>> restrict_commerce(notes, dem, min_demoted=2).table[["author_id", "n_demoted", "restricted"]].values.tolist()
    [['u', 2, True]]
    """
    _need(notes, ("note_id", "author_id"), "notes")
    dem = demoted.table if isinstance(demoted, MitigationResult) else demoted
    _need(dem, ("note_id", "demoted", "fake_count"), "demoted")
    n = notes[["note_id", "author_id"]].assign(note_id=notes["note_id"].astype(str))
    d = dem[["note_id", "demoted", "fake_count"]].assign(note_id=dem["note_id"].astype(str))
    m = n.merge(d, on="note_id", how="left")
    m["demoted"] = m["demoted"].eq(True)
    m["fake_count"] = m["fake_count"].fillna(0)
    g = m.groupby("author_id", sort=True)
    t = pd.DataFrame({"n_notes": g.size(), "n_demoted": g["demoted"].sum().astype(np.int64),
                      "fake_bought": g["fake_count"].sum().astype(np.int64)}).reset_index()
    t = t[t["n_demoted"] > 0].reset_index(drop=True)
    t["demoted_share"] = t["n_demoted"] / t["n_notes"]
    t["restricted"] = (t["n_demoted"] >= int(min_demoted)) & (t["demoted_share"] >= float(min_share))
    t = t[["author_id", "n_notes", "n_demoted", "demoted_share", "fake_bought", "restricted"]]
    r = t[t["restricted"]]
    summary = {"authors_with_demoted_notes": int(len(t)), "restricted": int(len(r)),
               "fake_bought_by_restricted": int(r["fake_bought"].sum())}
    affected = pd.DataFrame({"entity_type": "account", "entity_id": r["author_id"].astype(str).to_numpy(),
                             "account_id": r["author_id"].astype(str).to_numpy()})
    return MitigationResult("restrict_commerce", t, summary, affected,
                            {"min_demoted": min_demoted, "min_share": min_share})


# --- personalised purchase limits -------------------------------------------------------------

_SCOPES = ("all", "product", "category", "limited_stock")
_LIMIT_KEYS = ("account_id", "address", "device_id", "receiver_phone", "ip")


@dataclass(frozen=True)
class PurchaseLimit:
    """A personalised purchase limit, declared as data (YAML-friendly).

    Units bought per ``key`` within ``window`` (per product for ``product`` and
    ``limited_stock`` scopes) may not exceed the limit of the buyer's risk tier.

    Parameters
    ----------
    name : str
    key : {"account_id", "address", "device_id", "receiver_phone", "ip"}
        What the counter is kept per (an address catches many accounts shipping to one flat).
    scope : {"all", "product", "category", "limited_stock"}, default="limited_stock"
        Which orders count: all; the products in ``values`` (each its own counter); the
        categories in ``values`` (one counter per category); every limited-stock product
        (one counter per product).
    values : tuple, default=()
        Product ids or category names for the ``product`` / ``category`` scopes
        (``product`` with no values: every product, each its own counter).
    window : str or None, default="24h"
        Trailing window (``fraudkit.capability.accumulators`` syntax); None: no window.
    per_promotion : bool, default=False
        Count per promotion; orders outside a promotion are not limited.
    tiers : tuple of (str, float, int), default=(("low", 0.0, 5), ("medium", 0.5, 2), ("high", 0.8, 1))
        ``(tier, score_from, limit)``: a buyer whose risk score is ``>= score_from`` (the
        highest such row) gets ``limit`` units.

    Examples
    --------
    >>> lim = PurchaseLimit.from_dict({"name": "flash", "key": "address", "window": "24h",
    ...                                "tiers": [["low", 0, 5], ["high", 0.8, 2]]})
    >>> lim.tier_of([0.1, 0.9]).tolist(), lim.limit_of([0.1, 0.9]).tolist()
    (['low', 'high'], [5, 2])
    """

    name: str
    key: str = "address"
    scope: str = "limited_stock"
    values: tuple = ()
    window: str | None = "24h"
    per_promotion: bool = False
    tiers: tuple = (("low", 0.0, 5), ("medium", 0.5, 2), ("high", 0.8, 1))

    def __post_init__(self):

        if self.key not in _LIMIT_KEYS:
            raise FraudkitError(f"purchase limit {self.name!r}: key {self.key!r} is not one of {', '.join(_LIMIT_KEYS)}")
        if self.scope not in _SCOPES:
            raise FraudkitError(f"purchase limit {self.name!r}: scope {self.scope!r} is not one of {', '.join(_SCOPES)}")
        if self.scope == "category" and not self.values:
            raise FraudkitError(f"purchase limit {self.name!r}: scope 'category' needs values (category names)")
        object.__setattr__(self, "values", tuple(self.values))
        tiers = tuple((str(t), float(s), int(n)) for t, s, n in self.tiers)
        if not tiers or any(n < 0 for _, _, n in tiers):
            raise FraudkitError(f"purchase limit {self.name!r}: tiers must be (tier, score_from, limit>=0) rows")
        object.__setattr__(self, "tiers", tuple(sorted(tiers, key=lambda r: r[1])))
        try:
            parse_window(self.window)
        except ValueError as e:
            raise FraudkitError(f"purchase limit {self.name!r}: {e}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "PurchaseLimit":
        """Build from a dict (a YAML mapping); unknown keys are an error."""
        known = {"name", "key", "scope", "values", "window", "per_promotion", "tiers"}
        bad = sorted(set(d) - known)
        if bad:
            raise FraudkitError(f"purchase limit {d.get('name', '?')!r}: unknown field(s) {bad}; fields: {sorted(known)}")
        if "name" not in d:
            raise FraudkitError("purchase limit: every limit needs a name")
        d = dict(d)
        if "tiers" in d:
            d["tiers"] = tuple(tuple(t) for t in d["tiers"])
        if "values" in d:
            d["values"] = tuple(d["values"] or ())
        return cls(**d)

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples) for YAML."""
        d = asdict(self)
        d["values"] = list(self.values)
        d["tiers"] = [list(t) for t in self.tiers]
        return d

    def tier_of(self, scores) -> np.ndarray:
        """Tier name per risk score (a missing score is the lowest tier)."""
        return np.asarray([t for t, _, _ in self.tiers], dtype=object)[self._tier_index(scores)]

    def limit_of(self, scores) -> np.ndarray:
        """Unit limit per risk score."""
        return np.asarray([n for _, _, n in self.tiers], dtype=np.int64)[self._tier_index(scores)]

    def _tier_index(self, scores):
        s = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
        edges = np.asarray([f for _, f, _ in self.tiers])
        return np.maximum(np.searchsorted(edges, s, side="right") - 1, 0)


DEFAULT_PURCHASE_LIMITS = (
    PurchaseLimit("limited_per_address_24h", key="address", scope="limited_stock", window="24h"),
    PurchaseLimit("limited_per_device_24h", key="device_id", scope="limited_stock", window="24h"),
    PurchaseLimit("promo_per_receiver_phone", key="receiver_phone", scope="all", window=None, per_promotion=True,
                  tiers=(("low", 0.0, 10), ("medium", 0.5, 4), ("high", 0.8, 2))),
)
"""Limits in the spirit of seed 004: limited-stock items per address and device per day, and
units per receiver phone per promotion, each tiered by the buyer's risk."""


def apply_purchase_limits(orders: pd.DataFrame, limits=DEFAULT_PURCHASE_LIMITS, *, risk=None, products=None,
                          score="score_combined") -> MitigationResult:
    """Evaluate personalised purchase limits on an order stream, order by order.

    Counters come from :func:`fraudkit.capability.accumulators.compute`: for each order, the units
    bought under the same key (and product / category / promotion) within the window,
    **this order included**. An order is refused when that count exceeds the limit of
    the buyer's tier under any applicable limit. Units of refused attempts still count
    (an attacker retrying does not reset the counter), which is conservative for honest
    buyers who stop after a refusal.

    Parameters
    ----------
    orders : pandas.DataFrame
        The contract's orders table.
    limits : sequence of PurchaseLimit or dict
        Dicts are read with :meth:`PurchaseLimit.from_dict`.
    risk : pandas.DataFrame, optional
        Per account risk: ``account_id`` and ``score`` (e.g. ``accounts.parquet``). Accounts
        without a score are in the lowest tier; without ``risk`` everyone is.
    products : pandas.DataFrame, optional
        ``product_id, category, limited_stock``; needed for the category and limited-stock scopes.
    score : str, default="score_combined"
        Risk column of ``risk``.

    Returns
    -------
    MitigationResult
        ``table``: one row per order (none dropped): ``order_id, account_id, quantity,
        tier, limit_name, limit, used, allowed, reason``. ``used`` is the binding
        counter's value (NaN when no limit applies).

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"order_id": [1, 2, 3], "account_id": ["a", "b", "c"], "address": "flat 1",
    ...                   "product_id": 7, "quantity": 1, "ts": pd.date_range("2024-06-01", periods=3, freq="h")})
    >>> lim = PurchaseLimit("p", key="address", scope="product", tiers=[("low", 0, 2)])
    >>> apply_purchase_limits(o, [lim]).table["allowed"].tolist()
    [True, True, False]
    """

    _need(orders, ("order_id", "account_id", "product_id", "quantity", "ts"), "orders")
    limits = tuple(x if isinstance(x, PurchaseLimit) else PurchaseLimit.from_dict(x) for x in limits)
    if not limits:
        raise FraudkitError("apply_purchase_limits: no limits given")
    names = [lim.name for lim in limits]
    if len(set(names)) != len(names):
        raise FraudkitError(f"apply_purchase_limits: duplicate limit names {names}")
    if orders["order_id"].duplicated().any():
        raise FraudkitError("apply_purchase_limits: orders.order_id has duplicates, e.g. "
                            f"{orders.loc[orders['order_id'].duplicated(), 'order_id'].iloc[0]!r}")
    acct = orders["account_id"].astype(str)
    if risk is not None:
        _need(risk, ("account_id", score), "risk")
        rs = pd.Series(risk[score].to_numpy(dtype=float), index=risk["account_id"].astype(str).to_numpy())
        rs = rs[~rs.index.duplicated()]
        s = rs.reindex(acct).to_numpy()
    else:
        s = np.full(len(orders), np.nan)
    need_products = any(lim.scope in ("category", "limited_stock") for lim in limits)
    if need_products:
        if products is None:
            raise MissingInputError("apply_purchase_limits: category and limited_stock scopes need the products table "
                                    "(products=ds.to_pandas('products'))")
        _need(products, ("product_id", "category", "limited_stock"), "products")
    cols = [c for c in ("order_id", "ts", "account_id", "product_id", "quantity", "promotion_id", "address",
                        "device_id", "receiver_phone", "ip") if c in orders.columns]
    src = orders[cols]
    n = len(orders)
    pos_of = pd.Index(orders["order_id"])
    best_head = np.full(n, np.inf)
    out_used = np.full(n, np.nan)
    out_limit = np.full(n, np.nan)
    out_name = np.full(n, "", dtype=object)
    out_tier = np.full(n, "", dtype=object)
    refused = np.zeros(n, dtype=bool)
    reasons = [[] for _ in range(n)]
    for lim in limits:
        if lim.key not in orders.columns or (lim.per_promotion and "promotion_id" not in orders.columns):
            raise MissingInputError(f"purchase limit {lim.name!r}: orders have no {lim.key!r}"
                                    f"{' or promotion_id' if lim.per_promotion else ''} column")
        for acc_name, key, where in _limit_counters(lim, products):
            a = Accumulator(acc_name, key=key, value="quantity", window=lim.window, agg="sum", where=where)
            c = compute([a], {"orders": src})
            pos = pos_of.get_indexer(c["order_id"])
            used = np.full(n, np.nan)
            used[pos] = c[acc_name].to_numpy()
            applies = ~np.isnan(used)
            if where:
                applies &= orders["product_id"].isin(where["product_id"]).to_numpy()
            lim_units = lim.limit_of(s).astype(float)
            head = np.where(applies, lim_units - used, np.inf)
            tighter = applies & (head < best_head)
            best_head = np.where(tighter, head, best_head)
            out_used = np.where(tighter, used, out_used)
            out_limit = np.where(tighter, lim_units, out_limit)
            out_name = np.where(tighter, lim.name, out_name)
            out_tier = np.where(tighter, lim.tier_of(s), out_tier)
            over = applies & (used > lim_units)
            refused |= over
            for i in np.flatnonzero(over):
                reasons[i].append(f"{lim.name}: {used[i]:g} units > {int(lim_units[i])} ({lim.tier_of(s[i:i + 1])[0]})")
    reason = np.asarray(["; ".join(r) if r else ("within limit" if out_name[i] else "no limit applies")
                         for i, r in enumerate(reasons)], dtype=object)
    table = pd.DataFrame({"order_id": orders["order_id"].to_numpy(), "account_id": acct.to_numpy(),
                          "quantity": orders["quantity"].to_numpy(), "tier": out_tier, "limit_name": out_name,
                          "limit": out_limit, "used": out_used, "allowed": ~refused, "reason": reason})
    q = orders["quantity"].to_numpy()
    summary = {"orders": int(n), "orders_limited": int((out_name != "").sum()), "orders_refused": int(refused.sum()),
               "units_refused": int(q[refused].sum()), "accounts_refused": int(acct[refused].nunique())}
    affected = pd.DataFrame({"entity_type": "order", "entity_id": orders["order_id"].astype(str).to_numpy()[refused],
                             "account_id": acct.to_numpy()[refused]})
    return MitigationResult("purchase_limit", table, summary, affected,
                            {"limits": [lim.to_dict() for lim in limits], "score": score})


# --- lists scoped per promotion ---------------------------------------------------------------


def lists_from_decisions(store, decisions: pd.DataFrame, orders: pd.DataFrame, *, promotion_id,
                         entity_types=("address", "device"), min_accounts=2, min_blocked_share=0.5,
                         decision="block", list_type="blacklist", list_name=None, expires_at=None,
                         at=None, actor="mitigation", reason=None) -> MitigationResult:
    """List the addresses / devices / phones behind blocked orders of one promotion, scoped to it.

    A key is listed when at least ``min_accounts`` accounts with a ``decision`` order in
    the promotion used it, and they are at least ``min_blocked_share`` of every account
    that used it in the promotion (a campus address shared with honest students is not
    listed). Entries are scoped ``promotion:<id>``: other promotions never see them. The
    store passed in is not changed; the result's ``store`` is a copy with the new entries
    (audited with ``actor`` and ``reason``).

    Parameters
    ----------
    store : ListStore or None
    decisions : pandas.DataFrame
        ``decisions.parquet`` (``entity_type, entity_id, account_id, decision``).
    orders : pandas.DataFrame
        The contract's orders table.
    promotion_id
        The promotion.
    entity_types : tuple of {"address", "device", "phone", "account"}
    min_accounts : int, default=2
    min_blocked_share : float, default=0.5
    decision : {"block", "verify"}, default="block"
        ``verify`` lists keys behind verify-or-block orders.
    list_type : {"blacklist", "graylist"}, default="blacklist"
    list_name : str, optional
        Default ``"<promotion>_scalper_<kind>s"``-style: ``scalper_addresses``, ``scalper_devices``.
    expires_at : timestamp-like, optional
        Default: the promotion's last order time + 7 days (lists outlive the sale a little:
        late orders and returns).
    at : timestamp-like, optional
        When the entries are added; default the last order of the promotion.
    actor, reason : str

    Returns
    -------
    MitigationResult
        ``table``: the listed keys with ``entity_type, entity_id, n_accounts, n_blocked,
        blocked_share, entry_id``; ``store``: the new ListStore.
    """

    _need(decisions, ("entity_type", "entity_id", "account_id", "decision"), "decisions")
    _need(orders, ("order_id", "account_id", "promotion_id"), "orders")
    if decision not in ("block", "verify"):
        raise FraudkitError(f"lists_from_decisions: decision must be 'block' or 'verify', got {decision!r}")
    col_of = {"address": "address", "device": "device_id", "phone": "receiver_phone", "account": "account_id"}
    bad = [e for e in entity_types if e not in col_of]
    if bad:
        raise FraudkitError(f"lists_from_decisions: entity type(s) {bad} cannot be listed from orders; "
                            f"use {', '.join(col_of)}")
    promo = orders[orders["promotion_id"].astype("string") == str(promotion_id)]
    if promo.empty:
        known = orders["promotion_id"].dropna().astype(str).unique()[:5].tolist()
        raise FraudkitError(f"lists_from_decisions: no orders in promotion {promotion_id!r}; promotions with "
                            f"orders include {known}")
    d = decisions[decisions["entity_type"] == "order"]
    sev = {"verify": {"verify", "block"}, "block": {"block"}}[decision]
    hit_orders = set(d.loc[d["decision"].isin(sev), "entity_id"].astype(str))
    hit = promo["order_id"].astype(str).isin(hit_orders).to_numpy()
    hit_accounts = set(promo.loc[hit, "account_id"].astype(str))
    at = pd.Timestamp(promo["ts"].max()) if at is None and "ts" in promo.columns else (
        pd.Timestamp(at) if at is not None else pd.Timestamp.now().floor("s"))
    expires_at = at + pd.Timedelta(days=7) if expires_at is None else pd.Timestamp(expires_at)
    new_store = ListStore() if store is None else ListStore(store.entries, store.audit)
    scope = f"promotion:{promotion_id}"
    rows = []
    for etype in entity_types:
        col = col_of[etype]
        if col not in promo.columns:
            raise MissingInputError(f"lists_from_decisions: orders have no {col!r} column to list {etype}s")
        u = promo[[col, "account_id"]].dropna().assign(account_id=lambda f: f["account_id"].astype(str))
        u = u.drop_duplicates()
        u["blocked"] = u["account_id"].isin(hit_accounts)
        g = u.groupby(col, sort=True)["blocked"].agg(["size", "sum"]).rename(columns={"size": "n_accounts",
                                                                                      "sum": "n_blocked"})
        g["blocked_share"] = g["n_blocked"] / g["n_accounts"]
        g = g[(g["n_blocked"] >= min_accounts) & (g["blocked_share"] >= min_blocked_share)].reset_index()
        if g.empty:
            continue
        name = list_name or {"address": "scalper_addresses", "device": "scalper_devices",
                             "phone": "scalper_phones", "account": "scalper_accounts"}[etype]
        why = reason or (f"{int(min_accounts)}+ accounts with {decision}ed orders in promotion {promotion_id} "
                         f"({etype} shared by a blocked group)")
        ids = new_store.add(list_type, name, etype, g[col].astype(str).to_numpy(), reason=why, actor=actor, at=at,
                            scope=scope, expires_at=expires_at)
        rows.append(pd.DataFrame({"entity_type": etype, "entity_id": g[col].astype(str).to_numpy(),
                                  "n_accounts": g["n_accounts"].to_numpy(), "n_blocked": g["n_blocked"].to_numpy(),
                                  "blocked_share": g["blocked_share"].to_numpy(), "list_name": name,
                                  "scope": scope, "expires_at": expires_at, "entry_id": ids}))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["entity_type", "entity_id", "n_accounts", "n_blocked", "blocked_share", "list_name", "scope",
                 "expires_at", "entry_id"])
    # the accounts of this promotion whose orders use a listed key: who the lists act on
    users = []
    for etype, grp in table.groupby("entity_type"):
        col = col_of[etype]
        users.append(promo.loc[promo[col].astype(str).isin(set(grp["entity_id"])), "account_id"].astype(str))
    acc = pd.Index(pd.concat(users) if users else pd.Series(dtype=object)).unique()
    summary = {"promotion_id": str(promotion_id), "listed": int(len(table)),
               **{f"listed_{e}": int((table["entity_type"] == e).sum()) for e in entity_types},
               "accounts_covered": int(len(acc)), "blocked_accounts": int(len(hit_accounts))}
    affected = pd.DataFrame({"entity_type": "account", "entity_id": acc.to_numpy(dtype=object),
                             "account_id": acc.to_numpy(dtype=object)})
    return MitigationResult("lists", table, summary, affected,
                            {"promotion_id": str(promotion_id), "entity_types": list(entity_types),
                             "min_accounts": min_accounts, "min_blocked_share": min_blocked_share,
                             "list_type": list_type, "expires_at": str(expires_at)}, store=new_store)


# --- delayed interception ---------------------------------------------------------------------


def delay_interception(decisions: pd.DataFrame, *, at="key_step", delay=None, key_step=None,
                       window_end=None) -> MitigationResult:
    """What delayed interception would have done to a run's decisions: flag now, act later.

    The rule is :func:`fraudkit.mitigation.decisions.defer_decisions` (the one ``decide(...,
    policy=DecisionPolicy(delayed=True))`` applies): a non-``pass`` event that is not a key step
    (nor blacklisted, ``layer == "blacklist"``) passes now; the account's key steps from the
    **effective time** on get the most severe decision deferred so far. What it costs: the
    deferred events an immediate decision would have stopped now pass (``leaked``). What it
    hides: the attacker no longer sees a refusal at the action that triggered it, so the rule
    cannot be probed (``hidden_triggers``).

    Parameters
    ----------
    decisions : pandas.DataFrame
        ``decisions.parquet`` rows: ``entity_type, entity_id, account_id, ts, decision`` (and
        ``action``, ``layer`` when present). Not modified.
    at : {"key_step", "delay", "window_end"}, default="key_step"
        ``key_step``: at the account's next key step at or after the deferred event (default key
        steps: orders, and comments, shares and follows) — an account with no later key step is
        never acted on within the data; ``delay``: key steps from the event's time + ``delay``;
        ``window_end``: key steps after the end of the campaign window the event falls in.
    delay : str or Timedelta, optional
        For ``at="delay"`` (e.g. ``"6h"``).
    key_step : str, optional
        Boolean column of ``decisions`` marking key steps (overrides the default).
    window_end : pandas.DataFrame, optional
        For ``at="window_end"``: ``starts_at, ends_at`` rows (e.g. the promotions table);
        an event outside every window is due at once.

    Returns
    -------
    MitigationResult
        ``table``: one row per event (none dropped): the input columns plus
        ``decision_immediate``, ``decision_delayed``, ``flagged_at``, ``effective_at``, ``leaked``.
        ``summary``: accounts flagged (with a deferred event), acted on, never acted on, median
        lag (hours), events intercepted immediately and delayed, events leaked, hidden triggers.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"entity_type": ["interaction", "interaction", "order"], "entity_id": [1, 2, 3],
    ...                   "account_id": "a", "decision": ["block", "block", "pass"],
    ...                   "ts": pd.to_datetime(["2024-06-01 10:00", "2024-06-01 11:00", "2024-06-01 12:00"])})
    >>> delay_interception(d).table["decision_delayed"].tolist()
    ['pass', 'pass', 'block']
    """
    _need(decisions, ("entity_type", "entity_id", "account_id", "ts", "decision"), "decisions")
    if at not in ("key_step", "delay", "window_end"):
        raise FraudkitError(f"delay_interception: at must be key_step, delay or window_end, got {at!r}")
    d = decisions.reset_index(drop=True)
    if pd.to_datetime(d["ts"]).isna().any():
        raise FraudkitError("delay_interception: decisions.ts has missing times; every event needs one to be ordered")
    sev = d["decision"].map({"pass": 0, "verify": 1, "block": 2})
    if sev.isna().any():
        raise FraudkitError(f"delay_interception: unknown decision {d.loc[sev.isna(), 'decision'].iloc[0]!r}; "
                            "use pass, verify or block")
    if at == "window_end" and window_end is not None:
        _need(window_end, ("starts_at", "ends_at"), "window_end")
    sev = sev.to_numpy(dtype=np.int8)
    acct = d["account_id"].astype(str).to_numpy()
    exempt = d["layer"].eq("blacklist").to_numpy(dtype=bool) if "layer" in d.columns else None
    r = defer_decisions(sev, account=acct, ts=d["ts"], key=key_steps(d, key_step=key_step), exempt=exempt,
                        at=at, delay=delay, windows=window_end)
    label = np.array(["pass", "verify", "block"], dtype=object)
    leaked = (sev > 0) & (r.decision == 0)
    table = d.assign(decision_immediate=label[sev], decision_delayed=label[r.decision],
                     flagged_at=pd.to_datetime(r.flagged_at), effective_at=pd.to_datetime(r.effective_at),
                     leaked=leaked)
    per_account = pd.DataFrame({"account": acct, "flag": r.flagged_at, "eff": r.effective_at}).drop_duplicates("account")
    flagged = per_account["flag"].notna().to_numpy()
    acted = flagged & per_account["eff"].notna().to_numpy()
    lag_h = ((per_account["eff"] - per_account["flag"]).dt.total_seconds() / 3600).to_numpy()[acted]
    triggers = sev > 0
    summary = {"accounts_flagged": int(flagged.sum()), "accounts_acted_on": int(acted.sum()),
               "accounts_never_acted": int((flagged & ~acted).sum()),
               "median_lag_hours": float(np.median(lag_h)) if len(lag_h) else float("nan"),
               "events_intercepted_immediate": int(triggers.sum()),
               "events_intercepted_delayed": int((r.decision > 0).sum()),
               "events_leaked": int(leaked.sum()), "hidden_triggers": int((triggers & (r.decision == 0)).sum())}
    affected = pd.DataFrame({"entity_type": d["entity_type"].astype(str).to_numpy()[leaked],
                             "entity_id": d["entity_id"].astype(str).to_numpy()[leaked],
                             "account_id": acct[leaked]})
    return MitigationResult("delayed", table, summary, affected,
                            {"at": at, "delay": None if delay is None else str(delay), "key_step": key_step})


# --- the tidy summary -------------------------------------------------------------------------


def mitigation_summary(results, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per action: entities affected, fraud by typology, honest collateral.

    Labels are read only here, to evaluate. An affected entity takes the label of the
    entity itself (an order, a note, an interaction) or else of its account. *Fraud* is
    any fraud typology; *honest* is everything else, look-alikes counted separately.
    For ``delayed`` the affected entities are the events leaked by the delay (its cost).

    Parameters
    ----------
    results : sequence of MitigationResult
    labels : pandas.DataFrame, optional
        The labels table; without it only ``n_affected`` and the action's own numbers are filled.

    Returns
    -------
    pandas.DataFrame
        ``action, entity_type, n_affected, n_fraud, n_honest, precision, fake_engagement_removed,
        units_refused, <typology>...`` (one count column per fraud typology and look-alike).

    Examples
    --------
    >>> import pandas as pd
    >>> r = ban_accounts(pd.DataFrame({"account_id": ["a", "b"], "flagged_combined": [True, True]}))
    >>> lab = pd.DataFrame({"entity_type": "account", "entity_id": ["a"], "typology": ["device_farm"]})
    >>> mitigation_summary([r], lab)[["action", "n_affected", "n_fraud", "n_honest", "device_farm"]].values.tolist()
    [['ban_accounts', 2, 1, 1, 1]]
    """
    rows = []
    lab = None
    if labels is not None:
        _need(labels, ("entity_type", "entity_id", "typology"), "labels")
        lab = labels.assign(entity_id=labels["entity_id"].astype(str))
        fraud_first = lab.assign(_f=~lab["typology"].isin(FRAUD_TYPOLOGIES))
        lab = fraud_first.sort_values(["_f", "typology"], kind="stable").drop_duplicates(["entity_type", "entity_id"])
        lab = lab.set_index(["entity_type", "entity_id"])["typology"]
    for r in results:
        if not isinstance(r, MitigationResult):
            raise FraudkitError(f"mitigation_summary: expected MitigationResult objects, got {type(r).__name__}")
        a = r.affected
        etypes = a["entity_type"].astype(str).unique().tolist() if len(a) else []
        row = {"action": r.action, "entity_type": "+".join(sorted(etypes)) or "",
               "n_affected": int(len(a)),
               "fake_engagement_removed": r.summary.get("fake_removed", r.summary.get("fake_engagement_on_demoted",
                                                                                     np.nan)),
               "units_refused": r.summary.get("units_refused", np.nan)}
        if lab is not None:
            own = pd.MultiIndex.from_arrays([a["entity_type"].astype(str), a["entity_id"].astype(str)])
            typ = pd.Series(lab.reindex(own).to_numpy(), dtype=object)
            if "account_id" in a.columns:
                acc = a["account_id"].astype(object).where(a["account_id"].notna(), None)
                via = pd.MultiIndex.from_arrays([np.full(len(a), "account", dtype=object),
                                                 acc.astype(str).to_numpy()])
                by_acc = pd.Series(lab.reindex(via).to_numpy(), dtype=object)
                by_acc[acc.isna().to_numpy()] = None
                use_acc = typ.isna() | (~typ.isin(FRAUD_TYPOLOGIES) & by_acc.isin(FRAUD_TYPOLOGIES))
                typ = typ.where(~use_acc, by_acc)
            is_fraud = typ.isin(FRAUD_TYPOLOGIES)
            row["n_fraud"] = int(is_fraud.sum())
            row["n_honest"] = int((~is_fraud).sum())
            row["precision"] = float(is_fraud.mean()) if len(a) else float("nan")
            counts = typ.value_counts()
            for t in (*FRAUD_TYPOLOGIES, *HONEST_LOOKALIKES):
                row[t] = int(counts.get(t, 0))
        rows.append(row)
    cols = ["action", "entity_type", "n_affected", "n_fraud", "n_honest", "precision", "fake_engagement_removed",
            "units_refused", *FRAUD_TYPOLOGIES, *HONEST_LOOKALIKES]
    out = pd.DataFrame(rows)
    return out.reindex(columns=[c for c in cols if c in out.columns or lab is not None])


# --- private helpers --------------------------------------------------------------------------


def _need(df, cols, what):
    if not isinstance(df, pd.DataFrame):
        raise FraudkitError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingInputError(f"{what} lacks column(s) {', '.join(map(repr, missing))}; it has "
                                f"{', '.join(map(str, df.columns)) or 'no columns'}")


def _keys(x, column):
    """Account keys (as text) from an array-like or an accounts table with a flag column."""
    if isinstance(x, pd.DataFrame):
        _need(x, ("account_id", column), "flagged_accounts")
        return set(x.loc[x[column].fillna(False).astype(bool), "account_id"].astype(str))
    if isinstance(x, MitigationResult):
        return set(x.affected.loc[x.affected["entity_type"] == "account", "entity_id"].astype(str))
    return set(pd.Series(list(x), dtype=object).astype(str))



def _account_resources(tables) -> pd.DataFrame:
    """Long table ``account_id, kind, value``: every resource each account used."""
    parts = []
    acc = read_table(tables, "accounts", ["account_id", "phone"])
    if acc is not None and "phone" in acc.columns:
        a = acc.dropna(subset=["phone"])
        parts.append(pd.DataFrame({"account_id": a["account_id"].astype(str).to_numpy(), "kind": "phone",
                                   "value": a["phone"].astype(str).to_numpy()}))
    for name, cols in _RESOURCE_SOURCES:
        t = read_table(tables, name, ["account_id", *cols])
        if t is None:
            continue
        for c in cols:
            if c not in t.columns:
                continue
            u = t[["account_id", c]].dropna().drop_duplicates()
            parts.append(pd.DataFrame({"account_id": u["account_id"].astype(str).to_numpy(),
                                       "kind": _RESOURCE_KIND[c], "value": u[c].astype(str).to_numpy()}))
    if not parts:
        return pd.DataFrame({"account_id": pd.Series(dtype=object), "kind": pd.Series(dtype=object),
                             "value": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def _limit_counters(lim, products):
    """``(accumulator name, key, where)`` for each counter a limit keeps."""
    import re

    key = (lim.key,) + (("promotion_id",) if lim.per_promotion else ())
    base = "acc_limit_" + re.sub(r"[^a-z0-9_]", "_", lim.name.lower())
    if lim.scope == "all":
        return [(base, key, None)]
    if lim.scope == "product":
        where = {"product_id": pd.Series(lim.values).tolist()} if lim.values else None
        return [(base, key + ("product_id",), where)]
    if lim.scope == "limited_stock":
        ids = products.loc[products["limited_stock"].fillna(False).astype(bool), "product_id"].tolist()
        return [(base, key + ("product_id",), {"product_id": ids})] if ids else []
    out = []
    for i, cat in enumerate(lim.values):
        ids = products.loc[products["category"].astype(str) == str(cat), "product_id"].tolist()
        if ids:
            out.append((f"{base}_{i}", key, {"product_id": ids}))
    return out
