"""What notebook 04 (risk mitigation) shows: every governance action of :mod:`fraudkit.mitigation.actions` on one run.

:func:`governance_actions` runs the actions on a run directory and its dataset
(impact, supply chain, motive, scalpers, delayed interception) and, when the
dataset has labels, :func:`fraudkit.mitigation.actions.mitigation_summary` — honest
collateral on look-alikes included. :func:`governance_changes`, :func:`clean_by_action`,
:func:`ban_resources`, :func:`limit_breakdown` and :func:`collateral_share` turn the
results into tables. The notebook's cells call one section function each
(:func:`layered_decisions`, :func:`governance_overview`, :func:`impact`, :func:`supply_chain`,
:func:`motive`, :func:`purchase_limits`, :func:`scoped_lists`, :func:`delayed_interception`,
:func:`honest_collateral`), which take the notebook's :class:`fraudkit.report.notebook.Context`
and return what the section shows (:mod:`fraudkit.report.display`) or why it is not
available. The actions run once per notebook run. Labels are read only through
:func:`fraudkit.mitigation.actions.mitigation_summary`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudkit.mitigation import actions as mg
from fraudkit.pipeline.resolution import resolve_tables
from fraudkit.report import keynumbers, plots
from fraudkit.report.display import Chart, Note, Shown, Table, Unavailable
from fraudkit.report.notebook import Context, read_artifact, read_table, write_artifact
from fraudkit.report.views import decision_breakdown, has_column, reason_counts

__all__ = [
    "Governance",
    "account_risk",
    "governance_actions",
    "governance_changes",
    "clean_by_action",
    "ban_resources",
    "limit_breakdown",
    "collateral_share",
    "limits_view",
    "delayed_view",
    "layered_decisions",
    "governance_overview",
    "impact",
    "supply_chain",
    "motive",
    "purchase_limits",
    "scoped_lists",
    "delayed_interception",
    "honest_collateral",
]


@dataclass(frozen=True)
class Governance:
    """Every governance action of :mod:`fraudkit.mitigation.actions` applied to one run. Notebook 04.

    Attributes
    ----------
    results : dict of str to MitigationResult
        ``clean_engagement``, ``ban_accounts``, ``demote_notes``, ``restrict_commerce``,
        ``purchase_limit``, ``lists``, ``delayed_key_step``, ``delayed_window_end`` — whichever
        the dataset's tables allow.
    skipped : dict of str to str
        Action -> why it could not run (a missing table).
    summary : DataFrame or None
        :func:`fraudkit.mitigation.actions.mitigation_summary` against the labels (None without labels).
    promotion_id : str or None
        The promotion the scoped lists were built for.
    """

    results: dict
    skipped: dict
    summary: pd.DataFrame | None
    promotion_id: str | None = None


def account_risk(accounts: pd.DataFrame) -> pd.DataFrame:
    """Risk score for purchase-limit tiers: ``account_id, risk``. Notebook 04.

    ``score_combined`` is a percentile rank (for ordering only), so it cannot place
    buyers in tiers: half of all accounts would sit above 0.5. The tiers follow the
    flags instead: not flagged 0.0 (``low``), flagged by one stage 0.6 (``medium``),
    corroborated by two or more stages (rules count as one) 0.9 (``high``) —
    matching the tier edges of :data:`fraudkit.mitigation.actions.DEFAULT_PURCHASE_LIMITS`.

    Examples
    --------
    >>> acc = pd.DataFrame({"account_id": ["a", "b", "c"], "flagged_graph": [True, True, False],
    ...                     "flagged_rules": [True, False, False], "flagged_combined": [True, True, False]})
    >>> account_risk(acc)["risk"].tolist()
    [0.9, 0.6, 0.0]
    """
    cols = [c for c in accounts.columns if c.startswith("flagged_") and c != "flagged_combined"]
    n = accounts[cols].fillna(False).astype(bool).sum(axis=1).to_numpy() if cols else np.zeros(len(accounts))
    risk = np.select([n >= 2, n == 1], [0.9, 0.6], 0.0)
    return pd.DataFrame({"account_id": accounts["account_id"].astype(str).to_numpy(), "risk": risk})


def governance_actions(run_dir, data_dir, *, ban_min_stages: int = 1, demote_fake_share: float = 0.5,
                       limits=None, list_decision: str = "verify") -> Governance:
    """Apply each governance action of :mod:`fraudkit.mitigation.actions` to a run. Notebook 04.

    Impact: :func:`~fraudkit.mitigation.actions.clean_engagement`. Supply chain:
    :func:`~fraudkit.mitigation.actions.ban_accounts` (accounts flagged by ``ban_min_stages``
    stages; resources touched and burned). Motive: :func:`~fraudkit.mitigation.actions.demote_notes`
    and :func:`~fraudkit.mitigation.actions.restrict_commerce`. Scalpers: personalised purchase
    limits (``limits``, default :data:`~fraudkit.mitigation.actions.DEFAULT_PURCHASE_LIMITS`, tiers
    from :func:`account_risk`), blacklists scoped to the promotion with the most
    intercepted orders, and delayed interception at the next key step and at the end of
    the promotion window. Labels are read only by the final
    :func:`~fraudkit.mitigation.actions.mitigation_summary`.

    Returns
    -------
    Governance
    """

    accounts = read_artifact(run_dir, "accounts")
    decisions = read_artifact(run_dir, "decisions")
    if accounts is None:
        raise KeyError(f"{run_dir} has no accounts.parquet: run `fraudkit score` first")
    results, skipped = {}, {}
    inter = read_table(data_dir, "interactions", columns=["event_id", "account_id", "action", "target_id"])
    if inter is not None:
        results["clean_engagement"] = mg.clean_engagement(inter, accounts)
        results["demote_notes"] = mg.demote_notes(results["clean_engagement"], fake_share=demote_fake_share)
        notes = read_table(data_dir, "notes", columns=["note_id", "author_id"])
        if notes is not None:
            results["restrict_commerce"] = mg.restrict_commerce(notes, results["demote_notes"])
        else:
            skipped["restrict_commerce"] = "the dataset has no notes table (note authors)"
        del inter
    else:
        for a in ("clean_engagement", "demote_notes", "restrict_commerce"):
            skipped[a] = "the dataset has no interactions table"
    # addresses and phones as entities, as the scoring run saw them (fraudkit.pipeline.resolution)
    resolved = resolve_tables({"accounts": read_table(data_dir, "accounts", columns=["account_id", "phone"]),
                               "orders": _int_ids(read_table(data_dir, "orders"), "promotion_id")})
    orders = resolved["orders"]
    tables = {"accounts": resolved["accounts"]}
    for name, cols in (("logins", ("device_id", "ip")), ("interactions", ("device_id", "ip")),
                       ("orders", ("device_id", "ip", "address", "receiver_phone")),
                       ("coupon_claims", ("device_id", "ip"))):
        have = [c for c in cols if has_column(data_dir, name, c)]
        if have:
            tables[name] = (orders[["account_id", *have]] if name == "orders" and orders is not None
                            else read_table(data_dir, name, columns=["account_id", *have]))
    results["ban_accounts"] = mg.ban_accounts(accounts, {k: v for k, v in tables.items() if v is not None},
                                              min_stages=ban_min_stages)
    del tables
    promotion = None
    if orders is None or not len(orders):
        for a in ("purchase_limit", "lists"):
            skipped[a] = "the dataset has no orders"
    else:
        products = read_table(data_dir, "products", columns=["product_id", "category", "limited_stock"])
        lims = mg.DEFAULT_PURCHASE_LIMITS if limits is None else limits
        if products is None and any(getattr(lim, "scope", "") in ("category", "limited_stock") for lim in lims):
            skipped["purchase_limit"] = "the dataset has no products table (limited-stock and category scopes)"
        else:
            results["purchase_limit"] = mg.apply_purchase_limits(orders, lims, risk=account_risk(accounts),
                                                                 products=products, score="risk")
        promotion = _busiest_promotion(orders, decisions)
        if promotion is None:
            skipped["lists"] = "no order inside a promotion was intercepted"
        else:
            results["lists"] = mg.lists_from_decisions(None, decisions, orders, promotion_id=promotion,
                                                       decision=list_decision)
    if decisions is not None and {"ts", "account_id"} <= set(decisions.columns):
        results["delayed_key_step"] = mg.delay_interception(decisions, at="key_step")
        promos = read_table(data_dir, "promotions")
        if promos is not None and len(promos):
            results["delayed_window_end"] = mg.delay_interception(decisions, at="window_end", window_end=promos)
    else:
        skipped["delayed"] = "the run has no decisions with times"
    labels = read_table(data_dir, "labels")
    summary = None
    if labels is not None:
        summary = mg.mitigation_summary(list(results.values()), labels)
        summary.insert(0, "step", list(results))
    return Governance(results, skipped, summary, None if promotion is None else _id_text(promotion))


def governance_changes(gov: Governance) -> pd.DataFrame:
    """One row per action: ``action, what it does, what it changes`` in words and numbers. Notebook 04."""
    rows = []
    for name, r in gov.results.items():
        s = r.summary
        change = {
            "clean_engagement": lambda: f"{s['fake_removed']:,} fake interactions removed "
                                        f"({s['fake_share']:.1%} of all) from {s['targets_touched']:,} notes/authors",
            "ban_accounts": lambda: f"{s['banned']:,} accounts banned; burned: " + ", ".join(
                f"{s.get(k + '_burned', 0):,} of {s.get(k + '_touched', 0):,} {k} touched"
                for k in ("device", "ip", "phone", "address") if k + "_touched" in s),
            "demote_notes": lambda: f"{s['demoted']:,} notes demoted (mean distribution weight "
                                    f"{s['mean_weight_demoted']:.2f}); {s['fake_engagement_on_demoted']:,} fake actions on them",
            "restrict_commerce": lambda: f"{s['restricted']:,} authors lose commercial rights "
                                         f"({s['fake_bought_by_restricted']:,} fake actions bought)",
            "purchase_limit": lambda: f"{s['orders_refused']:,} of {s['orders']:,} orders refused "
                                      f"({s['units_refused']:,} units, {s['accounts_refused']:,} buyers); "
                                      f"{s['orders_limited']:,} orders under a limit",
            "lists": lambda: f"{len(r.table):,} keys blacklisted, scoped to promotion {gov.promotion_id}",
        }.get(name, lambda: f"{s['events_leaked']:,} events leak while waiting (median lag "
                            f"{s['median_lag_hours']:.1f} h); {s['accounts_never_acted']:,} flagged accounts "
                            f"never acted on; {s['hidden_triggers']:,} refusals hidden from the trigger")
        rows.append({"action": name, "does": _ACTION_DOES.get(name, ""), "changes": change()})
    return pd.DataFrame(rows, columns=["action", "does", "changes"])


def clean_by_action(result) -> pd.DataFrame:
    """From :func:`fraudkit.mitigation.actions.clean_engagement`: per action, ``raw, fake, clean`` counts and the fake share."""
    g = result.table.groupby("action", sort=True)[["raw_count", "fake_count", "clean_count"]].sum().reset_index()
    g["fake_share"] = g["fake_count"] / g["raw_count"].where(g["raw_count"] > 0)
    return g.sort_values(["fake_count", "action"], ascending=[False, True], kind="stable").reset_index(drop=True)


def ban_resources(result) -> pd.DataFrame:
    """From :func:`fraudkit.mitigation.actions.ban_accounts`: ``resource, touched, burned, burned_share``. Notebook 04.

    *Touched*: used by a banned account; *burned*: used only by banned accounts (a
    campus IP shared with honest students is touched, not burned).
    """
    s = result.summary
    rows = [{"resource": k, "touched": int(s[f"{k}_touched"]), "burned": int(s.get(f"{k}_burned", 0))}
            for k in ("device", "ip", "phone", "address") if f"{k}_touched" in s]
    out = pd.DataFrame(rows, columns=["resource", "touched", "burned"])
    out["burned_share"] = out["burned"] / out["touched"].where(out["touched"] > 0)
    return out


def limit_breakdown(result) -> pd.DataFrame:
    """From :func:`fraudkit.mitigation.actions.apply_purchase_limits`: per tier and binding limit, orders and refusals.

    Columns ``tier, limit_name, orders, refused, units_refused, refused_share``. Notebook 04.
    """
    t = result.table[result.table["limit_name"] != ""]
    t = t.assign(refused=~t["allowed"], units_refused=np.where(~t["allowed"], t["quantity"], 0))
    g = t.groupby(["tier", "limit_name"], sort=True).agg(orders=("order_id", "size"), refused=("refused", "sum"),
                                                       units_refused=("units_refused", "sum")).reset_index()
    order = {"low": 0, "medium": 1, "high": 2}
    g = g.sort_values(["tier", "limit_name"], key=lambda c: c.map(order).fillna(9) if c.name == "tier" else c,
                      kind="stable").reset_index(drop=True)
    g["refused_share"] = g["refused"] / g["orders"]
    return g


def collateral_share(summary: pd.DataFrame) -> pd.DataFrame:
    """Per action: ``action`` (with what it counts), ``n_affected``, ``n_honest``, ``honest_share``. Notebook 04.

    The actions count different things (interactions, notes, accounts, orders), so
    the comparable number is the share of what each action hits that carries no
    fraud label — its honest collateral. From :func:`fraudkit.mitigation.actions.mitigation_summary`.
    """
    col = "step" if "step" in summary.columns else "action"
    unit = summary["entity_type"].astype(str).str.replace("+", " & ", regex=False) + "s"
    out = pd.DataFrame({"action": summary[col].astype(str) + " (" + unit + ")",
                        "n_affected": summary["n_affected"], "n_honest": summary["n_honest"]})
    out["honest_share"] = out["n_honest"] / out["n_affected"].where(out["n_affected"] > 0)
    return out.reset_index(drop=True)


def limits_view(limits) -> pd.DataFrame:
    """The declared purchase limits in words: ``limit, per, counts, window, units allowed by risk tier``.

    Examples
    --------
    >>> view = limits_view(mg.DEFAULT_PURCHASE_LIMITS[:1])
    >>> view.columns.tolist()[-1], "low" in view.iloc[0, -1]
    ('units allowed by risk tier', True)
    """
    rows = []
    for lim in limits:
        d = lim.to_dict()
        tiers = ", ".join(f"{t} (risk ≥ {float(f):g}): {int(n)}" for t, f, n in d["tiers"])
        scope = d.get("scope", "")
        if d.get("values"):
            scope += ": " + ", ".join(map(str, d["values"]))
        rows.append({"limit": d["name"], "per": str(d["key"]).replace("_", " "), "counts": scope.replace("_", " "),
                     "window": (d.get("window") or "none") + (", per promotion" if d.get("per_promotion") else ""),
                     "units allowed by risk tier": tiers})
    return pd.DataFrame(rows, columns=["limit", "per", "counts", "window", "units allowed by risk tier"])


def delayed_view(gov: Governance, flagged_accounts: int | None = None) -> pd.DataFrame:
    """Immediate against delayed interception, one row per way of delaying. Notebook 04.

    ``accounts_flagged`` of :func:`fraudkit.mitigation.actions.delay_interception` counts accounts with at
    least one event a layer would stop (verify or block) — rules and lists stop events of accounts
    no stage flagged, so it is not the report's *flagged accounts*; ``flagged_accounts``
    (:func:`fraudkit.report.keynumbers.flagged_accounts`) is shown beside it.
    """
    names = {"delayed_key_step": "at the next key step", "delayed_window_end": "at the end of the promotion"}
    rows = []
    for k, when in names.items():
        if k in gov.results:
            s = gov.results[k].summary
            rows.append({"act": when, "accounts_flagged": s["accounts_flagged"],
                         **({"flagged accounts (combined)": flagged_accounts} if flagged_accounts is not None else {}),
                         **{c: v for c, v in s.items() if c != "accounts_flagged"}})
    return pd.DataFrame(rows)


# --- the notebook's sections -------------------------------------------------------------------------


def layered_decisions(ctx: Context) -> Shown | Unavailable:
    """Each event's decision by the layer that produced it, delayed interceptions, and the reasons behind them."""
    decisions = ctx.artifact("decisions")
    if decisions is None or not len(decisions):
        return Unavailable("layered decisions", "the run has no decisions.parquet")
    by = decision_breakdown(decisions)
    shown = [Table(by, caption="Decisions by layer"),
             Chart(plots.bar(by, x="layer", y="events", hue="decision", title="Decisions by layer",
                             xlabel="layer that decided", ylabel="events"))]
    if "delayed" in decisions.columns and decisions["delayed"].any():
        shown.append(Note(f"{int(decisions['delayed'].sum()):,} events were let through now and intercepted later "
                          "at a key step (delayed interception)."))
    if "reasons" in decisions.columns:
        shown.append(Table(reason_counts(decisions[decisions["decision"] != "pass"], column="reasons"),
                           caption="Most frequent reasons behind verify and block"))
    return Shown(*shown)


def governance_overview(ctx: Context) -> Table | Unavailable:
    """One row per governance action applied to the run: what it does and what it changes.

    See :func:`governance_changes`; written to ``RUN/report/mitigation/changes.parquet`` for the summary page.
    """
    gov = _governance(ctx)
    if isinstance(gov, Unavailable):
        return gov
    changes = governance_changes(gov)
    write_artifact(ctx.run_dir, "mitigation", "changes", changes)
    return Table(changes, caption="What each action does and what it changes", max_rows=20)


def impact(ctx: Context) -> Table | Unavailable:
    """Fake engagement removed from the counts, by action (:func:`clean_by_action`)."""
    r = _result(ctx, "clean_engagement")
    if isinstance(r, Unavailable):
        return r
    return Table(clean_by_action(r), caption="Fake engagement removed, by action: raw, fake and clean counts")


def supply_chain(ctx: Context) -> Table | Unavailable:
    """Resources of the banned accounts: touched and burned (:func:`ban_resources`)."""
    r = _result(ctx, "ban_accounts")
    if isinstance(r, Unavailable):
        return r
    return Table(ban_resources(r),
                 caption=f"Resources of the {r.summary['banned']:,} banned accounts: touched and burned")


def motive(ctx: Context) -> Shown:
    """Demoted notes and the authors whose commercial rights are restricted, most fake engagement first."""
    shown = []
    for name, flag, sort, caption in (
            ("demote_notes", "demoted", "fake_count", "Demoted notes: fake share and distribution weight"),
            ("restrict_commerce", "restricted", "fake_bought", "Authors whose commercial rights are restricted")):
        r = _result(ctx, name)
        if isinstance(r, Unavailable):
            shown.append(r)
            continue
        t = r.table[r.table[flag]]
        shown.append(Table(t.sort_values(sort, ascending=False, kind="stable"), caption=f"{caption} ({len(t):,})",
                           max_rows=8))
    return Shown(*shown)


def purchase_limits(ctx: Context) -> Shown | Unavailable:
    """The declared purchase limits, and the orders under each limit and refusals by risk tier.

    See :func:`limit_breakdown`.
    """
    r = _result(ctx, "purchase_limit")
    if isinstance(r, Unavailable):
        return r
    return Shown(Table(limits_view(mg.DEFAULT_PURCHASE_LIMITS), caption="The limits"),
                 Table(limit_breakdown(r), caption="Orders under each limit and refusals, by risk tier"))


def scoped_lists(ctx: Context) -> Table | Unavailable:
    """Keys blacklisted for the promotion with the most intercepted orders, for that promotion only."""
    r = _result(ctx, "lists")
    if isinstance(r, Unavailable):
        return r
    return Table(r.table.drop(columns=["entry_id"], errors="ignore"),
                 caption=f"Keys listed for promotion {_governance(ctx).promotion_id}", max_rows=10)


def delayed_interception(ctx: Context) -> Shown | Unavailable:
    """Immediate against delayed interception (at the next key step, at the end of the promotion window).

    Per action: the lag, the events leaked while waiting and the triggers hidden from attackers.
    """
    gov = _governance(ctx)
    if isinstance(gov, Unavailable):
        return Unavailable("delayed interception", gov.why)
    if not any(k in gov.results for k in ("delayed_key_step", "delayed_window_end")):
        return Unavailable("delayed interception", gov.skipped.get("delayed", "no delayed interception was applied"))
    flagged = keynumbers.flagged_accounts(ctx.run_dir)
    view = delayed_view(gov, flagged.flagged if flagged else None)
    n = int(view["accounts_flagged"].iloc[0])
    relation = (f"{n:,} accounts had at least one event a layer would verify or block; "
                + (f"{flagged.flagged:,} accounts are flagged (combined) — the key number on the summary. "
                   if flagged else "")
                + "They differ because the blacklist, rules and graylist layers stop events of accounts no stage "
                  "flagged, and some flagged accounts had no event to stop.")
    return Shown(Table(view, caption="Immediate vs delayed interception: lag, events leaked while waiting, "
                                     "triggers hidden"), Note(relation))


def honest_collateral(ctx: Context) -> Shown | Unavailable:
    """Per action, the share of what it hits that is not fraud, by typology and look-alike group.

    Writes the summary to ``RUN/report/mitigation/summary.parquet``.
    """
    gov = _governance(ctx)
    if isinstance(gov, Unavailable):
        return Unavailable("honest collateral", gov.why)
    if gov.summary is None:
        return _estimated_collateral(ctx, gov)
    write_artifact(ctx.run_dir, "mitigation", "summary", gov.summary)
    return Shown(Chart(plots.bar(collateral_share(gov.summary), x="action", y="honest_share",
                                 title="Honest collateral: share of what each action hits that is not fraud",
                                 xlabel="governance action (what it counts)", ylabel="share not fraud",
                                 value_format=".1%", figsize=(9.0, 4.2))),
                 Table(gov.summary.drop(columns=["action"]),
                       caption="Entities affected per action, by typology and look-alike group"))


def estimated_collateral(gov: Governance, review) -> pd.DataFrame:
    """Per action, the fraud it removes and the honest collateral it costs, estimated from a review.

    Each entity an action hits counts as its acting account; the fraud share of those accounts
    (:meth:`fraudkit.report.keynumbers.ReviewNumbers.share`) times the entities hit gives the estimates. With
    ``review`` None only what each action touches is filled.

    Returns
    -------
    pandas.DataFrame
        ``step, entity_type, n_affected, n_fraud, n_honest, honest_share, honest_share_low, honest_share_high,
        reviewed, estimated`` (the first five as :func:`fraudkit.mitigation.actions.mitigation_summary`, so the
        summary page's action plan reads either).
    """
    rows = []
    for name, r in gov.results.items():
        a = r.affected
        n = len(a)
        row = {"step": name, "entity_type": "+".join(sorted(a["entity_type"].astype(str).unique())) if n else "",
               "n_affected": n, "estimated": True}
        if review is not None and n and "account_id" in a.columns:
            e = review.share(a["account_id"].dropna().map(_id_text))
            if pd.notna(e.share):
                fraud = int(round(n * e.share))
                row.update(n_fraud=fraud, n_honest=n - fraud, honest_share=1 - e.share, honest_share_low=1 - e.high,
                           honest_share_high=1 - e.low, reviewed=e.reviewed)
        rows.append(row)
    return pd.DataFrame(rows)


# --- private ------------------------------------------------------------------


def _estimated_collateral(ctx: Context, gov: Governance) -> Shown:
    """Honest collateral on a dataset without labels: estimated from the review, else what each action touches."""
    est = keynumbers.review_numbers(ctx.run_dir)
    table = estimated_collateral(gov, est)
    if est is None or "n_fraud" not in table.columns:
        return Shown(Table(table[["step", "entity_type", "n_affected"]].rename(columns={"step": "action"}),
                           caption="What each action touches"),
                     Note("This dataset has no labels table: each action's honest collateral is estimated from your "
                          "review. Label the review sample of step 5 and pass it to the next report (`--review "
                          "FILE`); until then, weigh each action by what it touches.", kind="info"))
    write_artifact(ctx.run_dir, "mitigation", "summary", table)
    shown = table.drop(columns=["estimated"]).rename(columns={"step": "action", "n_fraud": "fraud (estimated)",
                                                             "n_honest": "honest collateral (estimated)"})
    return Shown(Chart(plots.bar(collateral_share(table), x="action", y="honest_share",
                                 title="Estimated honest collateral: share of what each action hits that is not fraud",
                                 xlabel="governance action (what it counts)", ylabel="share not fraud (estimated)",
                                 value_format=".1%", figsize=(9.0, 4.2))),
                 Table(shown, caption="Per action: fraud removed and honest collateral, estimated from your review "
                                      "(95% interval of the honest share)"),
                 Note("Estimated from the review's verdicts on the acting accounts of what each action hits "
                      "(stratified, so it holds for all of them, not only the reviewed ones).", kind="info"))


def _governance(ctx: Context) -> Governance | Unavailable:
    """:func:`governance_actions` on the notebook's run, computed once per notebook run."""
    def compute():
        if ctx.artifact("accounts", columns=["account_id"]) is None:
            return Unavailable("governance actions", "the run has no accounts.parquet")
        return governance_actions(ctx.run_dir, ctx.data_dir)

    return ctx.memo("governance", compute)


def _result(ctx: Context, name: str):
    """The result of one governance action, or why it is not available."""
    gov = _governance(ctx)
    if isinstance(gov, Unavailable):
        return Unavailable(name, gov.why)
    if name not in gov.results:
        return Unavailable(name, gov.skipped.get(name, "the action did not run"))
    return gov.results[name]


def _busiest_promotion(orders: pd.DataFrame, decisions: pd.DataFrame | None):
    """The promotion with the most intercepted (verify or block) orders, or None."""
    if decisions is None or "promotion_id" not in orders.columns:
        return None
    hit = decisions.loc[(decisions["entity_type"] == "order") & (decisions["decision"] != "pass"), "entity_id"]
    o = orders[orders["order_id"].astype(str).isin(set(hit.astype(str))) & orders["promotion_id"].notna()]
    if o.empty:
        return None
    counts = o["promotion_id"].value_counts()
    return counts.sort_index().sort_values(ascending=False, kind="stable").index[0]


def _int_ids(df: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    """A copy of ``df`` whose float id column (integral ids read back with nulls) is a nullable integer."""
    if df is None or column not in df.columns or not pd.api.types.is_float_dtype(df[column]):
        return df
    v = df[column]
    if not (v.dropna() == v.dropna().round()).all():
        return df
    return df.assign(**{column: v.astype("Int64")})


def _id_text(value) -> str:
    """An id as text; integral floats (ids read back from a nullable column) lose their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_ACTION_DOES = {
    "clean_engagement": "removes flagged accounts' likes, collects, comments and shares from the counts (impact)",
    "ban_accounts": "bans flagged accounts; the devices, IPs, phones and addresses only they used are burned (supply chain)",
    "demote_notes": "lowers the distribution weight of notes whose engagement is mostly fake (motive)",
    "restrict_commerce": "removes the commercial rights of authors whose notes bought engagement (motive)",
    "purchase_limit": "caps units per address, device and receiver phone by the buyer's risk tier (scalpers)",
    "lists": "blacklists addresses and devices behind intercepted orders, for one promotion only (scalpers)",
    "delayed_key_step": "flags now, acts at the account's next key step (order, comment, share, follow)",
    "delayed_window_end": "flags now, acts when the promotion window closes",
}
