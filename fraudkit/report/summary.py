"""The key numbers of a scored run, for the report's index page.

:func:`summarise_run` reads a run directory (``accounts.parquet``,
``decisions.parquet``, stage artifacts, and what the step notebooks wrote under
``report/``) and, when the dataset has labels, :func:`fraudkit.evaluation.metrics.evaluate_run`
— the only code that reads labels. Whatever is missing becomes a "not available"
note, never a made-up number.

What a stakeholder sees first, in order: the key numbers (accounts flagged,
precision and recall, leakage and interception rate; each against the previous
report when there is one), then what happened, what to do (each governance action
of step 4 with what it touches, the fraud it removes and the honest collateral it
costs) and what to watch (early warnings, typologies whose recall fell or is low),
then the arms-race table, the closed-loop recall and the top-risk communities.
Every key number comes from :mod:`fraudkit.report.keynumbers`, the one source the
step pages use too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.dataset import table_path
from fraudkit.report import keynumbers
from fraudkit.report.masking import mask_frame
from fraudkit.report.notebook import read_artifact
from fraudkit.report.plots import line_over_time, to_data_uri
from fraudkit.report.tables import format_frame
from fraudkit.report.views import arms_race_view, find_communities, loop_recall_long, training_note

__all__ = ["RunSummary", "summarise_run", "action_plan", "LOOP_RECALL_ARTIFACT", "MITIGATION_ARTIFACTS",
           "EVALUATION_ARTIFACT"]

LOOP_RECALL_ARTIFACT = "report/evaluation/loop_recall"
"""Where notebook 05 writes the closed loop's per-iteration recall (read back for the index)."""

LOOP_FLAGS_ARTIFACT = "report/evaluation/loop_flags"
"""Where notebook 05 writes the closed loop's per-iteration flags on a dataset without labels."""

MITIGATION_ARTIFACTS = ("report/mitigation/summary", "report/mitigation/changes")
"""Where notebook 04 writes each action's affected entities by label and what it changes (read back for the index)."""

EVALUATION_ARTIFACT = "report/evaluation/evaluation_table"
"""Where notebook 05 writes the evaluation table (a later report reads it to see which recall fell)."""

_COMMUNITY_COLUMNS = ("view", "community", "size", "density", "device_sharing", "address_sharing",
                      "new_account_share", "discounted_share", "score", "risk_score", "reason")


@dataclass
class RunSummary:
    """What the index shows.

    Attributes
    ----------
    cards : list of dict
        ``value``, ``label`` (and ``hint``): the key numbers.
    notes : list of dict
        ``kind`` (info, ok, warn, na) and ``text``.
    sections : list of dict
        In order: ``title``, ``intro`` (text), and ``html`` (a table the kit built, every value escaped) or
        ``uri`` + ``alt`` (a figure).
    numbers : dict
        The raw key numbers (for tests and the manifest).
    """

    cards: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    sections: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def card(self, key: str, value, label: str, fmt: str = "{:,}", hint: str = "", *, previous=None,
             better: str = "") -> None:
        """A key number; with ``previous`` its change, and with ``better`` (``up`` / ``down``) whether it is good."""
        self.numbers[key] = value
        trend, kind = "", ""
        if previous is not None and np.isfinite(float(previous)):
            d = float(value) - float(previous)
            pct = "%" in fmt
            step = f"{d * 100:+.1f} pts" if pct else f"{d:+,.0f}"
            trend = f"{step} vs previous report ({fmt.format(previous)})" if d else "unchanged vs previous report"
            if d and better:
                kind = "good" if (d > 0) == (better == "up") else "bad"
        self.cards.append({"value": fmt.format(value), "label": label, "hint": hint, "trend": trend, "kind": kind})

    def note(self, text: str, kind: str = "na") -> None:
        self.notes.append({"kind": kind, "text": text})


def summarise_run(run_dir, data_dir, previous_run_dir=None) -> RunSummary:
    """Key numbers, what happened, what to do, what to watch, the arms-race table, the loop, the communities.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``fraudkit score`` (and the report's step notebooks).
    data_dir : path
        The scored dataset (its labels table, if any, is read by evaluation only).
    previous_run_dir : path, optional
        The previous report's run directory: key numbers get a trend, typologies whose recall fell are listed.

    Returns
    -------
    RunSummary
    """

    run_dir = Path(run_dir)
    prev = Path(previous_run_dir) if previous_run_dir else None
    s = RunSummary()
    flagged = keynumbers.flagged_accounts(run_dir)
    prev_flagged = keynumbers.flagged_accounts(prev) if prev else None
    if flagged is not None:
        s.card("accounts_flagged", flagged.flagged, "accounts flagged (combined)",
               hint=f"of {flagged.scored:,} scored ({flagged.flagged / max(flagged.scored, 1):.1%}); "
                    + keynumbers.DEFINITIONS["flagged_accounts"],
               previous=prev_flagged.flagged if prev_flagged else None)
        s.numbers["accounts_scored"] = flagged.scored
    else:
        s.note("Not available: flagged accounts — the run has no accounts.parquet (scoring did not run).")
    kind, text = training_note(run_dir)
    s.note(text, kind)
    acc = None
    prev_table = read_artifact(prev, EVALUATION_ARTIFACT) if prev else None
    review = keynumbers.review_numbers(run_dir) if flagged is not None else None
    if table_path(data_dir, "labels") is None:
        if review is not None:
            _add_estimates(s, review)
        else:
            s.note("This dataset has no labels table: precision and recall will be estimated from your review of "
                   "the sample below (see \"What to review\").", "info")
    elif flagged is not None:
        acc = keynumbers.accuracy(run_dir, data_dir)
        if acc is None:
            s.note("Not available: precision and recall — no account carries a fraud label.")
        else:
            _add_accuracy(s, acc, prev_table)
    ev = keynumbers.events(run_dir, data_dir if acc is not None else None)
    _add_events(s, ev, keynumbers.events(prev) if prev else None)
    if acc is not None:
        _add_lookalikes(s, acc.table)
    _add_happened(s, flagged, ev, acc, prev is not None)
    _add_actions(s, run_dir)
    _add_watch(s, run_dir, data_dir, acc, prev_table, prev is not None)
    _add_review(s, run_dir, review)
    if acc is not None:
        _add_arms_race(s, acc.table)
    _add_loop(s, run_dir, acc)
    _add_communities(s, run_dir)
    return s


def action_plan(summary: pd.DataFrame, changes: pd.DataFrame | None = None, *, max_honest_share: float = 0.1
                ) -> pd.DataFrame:
    """What to do: one row per governance action of step 4, most fraud removed first.

    From :func:`fraudkit.mitigation.actions.mitigation_summary` (``summary``, with its ``step``
    column) and :func:`fraudkit.report.mitigation_views.governance_changes` (``changes``).
    Columns: ``recommendation`` (*apply* when the honest collateral is at most
    ``max_honest_share`` of what it touches, *review the collateral first* otherwise; the delayed
    interceptions are trade-offs, *consider*), ``action``, ``touches``, ``fraud_removed``,
    ``honest_collateral``, ``honest_share``, ``what_it_changes``.

    Examples
    --------
    >>> summ = pd.DataFrame({"step": ["ban_accounts", "demote_notes"], "entity_type": ["account", "note"],
    ...                      "n_affected": [100, 10], "n_fraud": [95, 4], "n_honest": [5, 6]})
    >>> action_plan(summ)[["recommendation", "action", "fraud_removed"]].values.tolist()
    [['apply', 'ban accounts', 95], ['review the collateral first', 'demote notes', 4]]
    """
    col = "step" if "step" in summary.columns else "action"
    rows = []
    what = {} if changes is None else dict(zip(changes["action"], changes["changes"]))
    for _, r in summary.iterrows():
        name = str(r[col])
        unit = str(r.get("entity_type", "")).replace("+", " & ")
        n = int(r["n_affected"])
        known = pd.notna(r.get("n_fraud")) and pd.notna(r.get("n_honest"))
        fraud, honest = (int(r["n_fraud"]), int(r["n_honest"])) if known else (0, 0)
        share = honest / n if n and known else float("nan")
        delayed = name.startswith("delayed")
        if delayed:
            rec = "consider (hides the trigger, leaks events while waiting)"
        elif not known:
            rec = "review the collateral first"
        else:
            rec = "apply" if n and share <= max_honest_share else "review the collateral first"
        rows.append({"recommendation": rec, "action": name.replace("_", " "),
                     "touches": f"{n:,} {unit}{'s' if n != 1 and unit else ''}"
                                + (" leaked while waiting" if delayed else ""),
                     "fraud_removed": 0 if delayed else fraud, "honest_collateral": honest, "honest_share": share,
                     "what_it_changes": what.get(name, ""), "_order": (delayed, not rec.startswith("apply"), -fraud)})
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    out = out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    return out


# --- private ------------------------------------------------------------------


def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(float(v)) else f"{float(v):.1%}"


def _add_accuracy(s: RunSummary, acc, prev_table) -> None:
    prev = _all_fraud(prev_table)
    if np.isfinite(acc.precision):
        s.card("precision", acc.precision, "precision (combined)", "{:.1%}",
               hint=keynumbers.DEFINITIONS["precision"],
               previous=prev.get("precision_combined") if prev is not None else None, better="up")
    s.card("recall_combined", acc.recall, "fraud recall (combined)", "{:.1%}",
           hint=f"{acc.caught:,} of {acc.n_fraud:,} fraudulent accounts (counts accounts)",
           previous=prev.get("recall_combined") if prev is not None else None, better="up")
    s.numbers["leakage_accounts"] = acc.n_fraud - acc.caught


def _all_fraud(table):
    if table is None or not len(table) or "typology" not in table.columns:
        return None
    t = table.set_index("typology")
    return t.loc["all_fraud"] if "all_fraud" in t.index else None


def _add_lookalikes(s: RunSummary, table: pd.DataFrame) -> None:
    t = table.set_index("typology")
    look = t[t.index.str.startswith("honest_")]
    if "fpr_combined" in look.columns and look["fpr_combined"].notna().any():
        worst = look["fpr_combined"].astype(float).idxmax()
        s.card("lookalike_fpr_max", float(look.loc[worst, "fpr_combined"]), "worst honest look-alike FPR",
               "{:.1%}",
               hint=worst.removeprefix("honest_").replace("_", " ") + ": share of its honest accounts flagged")


def _add_estimates(s: RunSummary, review) -> None:
    """Key numbers of a dataset without labels: precision, recall and prevalence estimated from the review."""
    p, q = review.precision, review.prevalence
    if np.isfinite(p.share):
        s.card("estimated_precision", p.share, "precision (estimated from your review)", "{:.1%}",
               hint=f"95% interval {p.low:.1%} to {p.high:.1%}, {p.reviewed:,} reviewed flagged accounts; "
                    + keynumbers.DEFINITIONS["estimated_precision"])
    r, lo, hi = review.recall
    if np.isfinite(r):
        s.card("estimated_recall", r, "fraud recall (estimated)", "{:.1%}",
               hint=f"95% interval {lo:.1%} to {hi:.1%}; " + keynumbers.DEFINITIONS["estimated_recall"]
                    + f"; fraud among all accounts {q.share:.1%} (95% interval {q.low:.1%} to {q.high:.1%})")
    s.note("This dataset has no labels table: precision and recall are estimated from your verdicts on a "
           f"stratified review sample ({int(review.review['verdict'].isin(('fraud', 'honest')).sum()):,} verdicts), "
           "which stands for every account of the run.", "info")


def _add_review(s: RunSummary, run_dir: Path, review) -> None:
    """What to review: the sample the report drew, and what the last review estimated."""
    path = run_dir / keynumbers.QUEUE_FILE
    if not path.is_file():
        return
    queue = pd.read_csv(path, usecols=["stratum"], encoding="utf-8-sig")
    counts = queue["stratum"].value_counts()
    parts = ", ".join(f"{int(counts.get(k, 0)):,} {k.replace('_', ' ')}" for k in
                      ("top_risk", "uncertain", "random_flagged", "random_unflagged"))
    text = (f"The report drew {len(queue):,} accounts for your analysts to label ({parts}). Their verdicts "
            "estimate precision, prevalence and recall with 95% intervals, and train the next run "
            "(`fraudkit review`, `fraudkit label`, then `fraudkit report --review … --labels …`; step 5 shows how).")
    if review is not None and np.isfinite(review.precision.share):
        text += (f" The review given to this report estimates the precision of this run's flagged accounts at "
                 f"{review.precision.share:.1%} (95% interval {review.precision.low:.1%} to "
                 f"{review.precision.high:.1%}).")
    s.sections.append({"title": "What to review", "intro": text})


def _add_events(s: RunSummary, ev, prev_ev) -> None:
    if ev is None:
        s.note("Not available: leakage and interception rates — the run has no decisions.parquet.")
        return
    if ev.n_fraud_events:
        s.card("leakage_rate", ev.leakage_rate, "leakage rate (fraud events passed)", "{:.1%}",
               hint=f"{ev.leaked:,} of {ev.n_fraud_events:,} events of fraudulent accounts (counts events)",
               previous=prev_ev.leakage_rate if prev_ev is not None and prev_ev.n_fraud_events else None,
               better="down")
    s.card("interception_rate", ev.interception_rate, "interception rate (events verify or block)", "{:.1%}",
           hint=f"{ev.intercepted:,} of {ev.n_events:,} orders and interactions",
           previous=prev_ev.interception_rate if prev_ev is not None else None)
    if ev.n_fraud_events:
        s.note(keynumbers.RELATION, "info")


def _add_happened(s: RunSummary, flagged, ev, acc, has_previous: bool) -> None:
    parts = []
    if flagged is not None:
        parts.append(f"{flagged.scored:,} accounts were scored and {flagged.flagged:,} flagged "
                     f"({flagged.flagged / max(flagged.scored, 1):.1%}).")
    if ev is not None:
        parts.append(f"{ev.n_events:,} orders and interactions were decided; {ev.intercepted:,} "
                     f"({ev.interception_rate:.1%}) were verified or blocked.")
        if ev.n_fraud_events:
            parts.append(f"{ev.leaked:,} of the {ev.n_fraud_events:,} events of fraudulent accounts passed "
                         f"(leakage {ev.leakage_rate:.1%}).")
    if acc is not None:
        parts.append(f"{acc.caught:,} of {acc.n_fraud:,} fraudulent accounts were flagged (recall {acc.recall:.1%}); "
                     f"{acc.precision:.1%} of the flagged accounts are fraud (precision).")
    parts.append("The key numbers above show the change against the previous report." if has_previous else
                 "There is no earlier report with its run data in this reports folder, so there is no trend yet.")
    s.sections.append({"title": "What happened", "intro": " ".join(parts)})


def _add_actions(s: RunSummary, run_dir: Path) -> None:
    summ, changes = (read_artifact(run_dir, a) for a in MITIGATION_ARTIFACTS)
    if summ is None or not len(summ):
        changes_html = ""
        if changes is not None and len(changes):
            changes_html = format_frame(changes).to_html(index=False, border=0, classes="fk-actions", escape=True)
            s.sections.append({"title": "What to do", "html": f'<div class="fk-table">{changes_html}</div>',
                               "intro": "Each governance action of step 4 and what it changes on this run. Their "
                                        "honest collateral is estimated once you label the review sample (see "
                                        "\"What to review\"): until then, weigh each by what it touches."})
            return
        s.sections.append({"title": "What to do", "intro": "", "na": (
            "Not available: recommended actions — step 4 did not run.")})
        return
    plan = action_plan(summ, changes)
    s.numbers["actions"] = plan
    estimated = "estimated" in summ.columns
    if estimated:
        plan = plan.rename(columns={"fraud_removed": "estimated_fraud_removed",
                                    "honest_collateral": "estimated_honest_collateral",
                                    "honest_share": "estimated_honest_share"})
    table = format_frame(plan).to_html(index=False, border=0, classes="fk-actions", escape=True)
    if estimated:
        s.sections.append({"title": "What to do", "html": f'<div class="fk-table">{table}</div>', "intro": (
            "Each governance action of step 4, applied to this run's flags and decisions: what it touches, and the "
            "fraud it removes and the honest collateral it costs as estimated from your review sample (this dataset "
            "has no labels). Apply the actions whose estimated collateral is at most 10% of what they touch; review "
            "the others in step 4 first, where each estimate has its 95% interval.")})
        return
    s.sections.append({"title": "What to do", "html": f'<div class="fk-table">{table}</div>', "intro": (
        "Each governance action of step 4, applied to this run's flags and decisions: what it touches, the fraud "
        "it removes (entities carrying a fraud label among them) and the honest collateral it costs (entities "
        "without one). Apply the actions whose collateral is at most 10% of what they touch; review the others "
        "in step 4 first. Delayed interception removes nothing: it hides which action tripped a rule, and its "
        "cost is the events that pass while it waits. Details in step 4.")})


def _add_watch(s: RunSummary, run_dir: Path, data_dir, acc, prev_table, has_previous: bool) -> None:
    items = []
    warn = keynumbers.run_early_warning(run_dir, data_dir)
    if warn is not None:
        s.numbers["early_warning_days"] = list(warn.days)
        items.append(f"Early warning on {len(warn.days)} day(s): {', '.join(warn.days)} — the share of intercepted "
                     "events fell below its band; check for a rule that broke or attackers who found a way round."
                     if warn.days else "No early warning: no day's share of intercepted events fell below its band.")
    if acc is not None:
        t = acc.table.set_index("typology")
        fraud = t[~t.index.str.startswith("honest_") & (t.index != "all_fraud") & (t["n_labelled"].fillna(0) > 0)]
        if prev_table is not None and "recall_combined" in prev_table.columns:
            p = prev_table.set_index("typology")["recall_combined"]
            fell = [(ty, float(p[ty]), float(r)) for ty, r in fraud["recall_combined"].items()
                    if ty in p.index and pd.notna(p[ty]) and pd.notna(r) and float(r) < float(p[ty]) - 1e-9]
            s.numbers["recall_fell"] = [ty for ty, _, _ in fell]
            items.append("Recall fell for " + "; ".join(f"{ty.replace('_', ' ')} ({a:.1%} → {b:.1%})"
                                                          for ty, a, b in fell) + "." if fell else
                         "No typology's recall fell against the previous report.")
        elif not has_previous:
            items.append("Recall per typology cannot be compared yet: no earlier report in this folder.")
        low = fraud[fraud["recall_combined"].astype(float) < 0.5]
        if len(low):
            items.append("Typologies with recall under 50%: " + "; ".join(
                f"{ty.replace('_', ' ')} {float(r):.1%} of {int(n):,}" for ty, r, n in
                zip(low.index, low["recall_combined"], low["n_labelled"])) + ".")
    if not items:
        s.sections.append({"title": "What to watch", "intro": "", "na": (
            "Not available: early warnings — the run has no decisions.")})
        return
    s.sections.append({"title": "What to watch", "intro": "", "points": items})


def _add_arms_race(s: RunSummary, table: pd.DataFrame) -> None:

    view = arms_race_view(table)
    if not len(view):
        return
    stages = [c for c in view.columns if c not in ("typology", "measure", "n_labelled")]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ("typology", "measure", "labelled", *stages))
    rows = []
    for _, r in view.iterrows():
        cls = ' class="fk-lookalike"' if r["measure"] != "recall" else ""
        cells = "".join(f"<td{_heat(r[c], r['measure'])}>{_pct(r[c])}</td>" for c in stages)
        rows.append(f"<tr{cls}><td>{html.escape(str(r['typology']).replace('_', ' '))}</td>"
                    f"<td>{html.escape(str(r['measure']))}</td>"
                    f"<td>{int(r['n_labelled']):,}</td>{cells}</tr>")
    table = (f'<div class="fk-table"><table class="fk-arms"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table></div>')
    s.sections.append({"title": "The arms-race table", "html": table, "intro": (
        "Recall per attacker typology for each identification stage and combined (flagged by any stage); "
        "for honest look-alike groups, the false-positive rate (lower is better). Each stage is the answer "
        "to attackers adapting to the previous one.")})


def _heat(v, measure: str) -> str:
    """A background shade: good cells green, bad red (recall high is good, FPR high is bad)."""
    if v is None or not np.isfinite(float(v)):
        return ""
    good = float(v) if measure == "recall" else 1 - min(1.0, float(v) * 10)
    hue = int(round(120 * max(0.0, min(1.0, good))))
    return f' style="background:hsl({hue},60%,90%)"'


def _add_loop(s: RunSummary, run_dir: Path, acc=None) -> None:

    rec = read_artifact(run_dir, LOOP_RECALL_ARTIFACT)
    flags = read_artifact(run_dir, LOOP_FLAGS_ARTIFACT)
    if (rec is None or "recall_loop" not in rec.columns) and flags is not None and len(flags):
        last = flags.sort_values("iteration").iloc[-1]
        s.sections.append({"title": "The closed loop", "intro": (
            f"Labelling → interception → product identification → data sinking → re-scan → label update, window by "
            f"window, with rules and unsupervised stages only. After {int(last['iteration']) + 1} windows the loop's "
            f"runs flag {int(last['flagged_loop']):,} accounts against {int(last['flagged_pipeline']):,} for the "
            f"same runs without its memory ({int(last.get('n_seeds', 0)):,} seeds, "
            f"{int(last.get('watched_products', 0)):,} watched products). Without labels its recall is not "
            "measured; details in step 5.")})
        return
    if rec is None or not len(rec) or "recall_loop" not in rec.columns:
        s.sections.append({"title": "The closed loop", "intro": "", "na": (
            "Not available: closed-loop recall — step 5 did not run the loop (loop_windows 0) or the dataset "
            "has no labels.")})
        return
    fig = line_over_time(loop_recall_long(rec), x="iteration", y="value", hue="measure",
                         title="Closed loop: recall and precision by iteration", xlabel="loop iteration (window)",
                         ylabel="share of accounts", figsize=(8.0, 3.4))
    fig.axes[0].set_xticks(sorted(rec["iteration"].unique()))
    last = rec.sort_values("iteration").iloc[-1]
    s.sections.append({"title": "The closed loop", "uri": to_data_uri(fig),
                       "alt": "Closed loop recall and precision by iteration", "intro": (
        f"Labelling → interception → product identification → data sinking → re-scan → label update, window "
        f"by window. The loop re-scores the data window by window with rules and unsupervised stages only (no "
        f"trained model), so its figures describe those runs, not this report's run"
        + (f" (whose precision is {_pct(acc.precision)} and recall {_pct(acc.recall)}, the key numbers above)"
           if acc is not None else "")
        + f". After {int(last['iteration']) + 1} windows the loop's runs reach recall {_pct(last['recall_loop'])} "
        f"against {_pct(last['recall_pipeline'])} for the same runs without the loop's memory, at loop-run "
        f"precision {_pct(last.get('precision_loop'))} (vs {_pct(last.get('precision_pipeline'))}). Most of the rise "
        "over iterations is more history per account, which the runs without the loop see too; the gap between the "
        "two recall lines is what the loop's memory and sunk keys add. Details in step 5.")})


def _add_communities(s: RunSummary, run_dir: Path) -> None:

    comm = find_communities(run_dir)
    if comm is None:
        s.sections.append({"title": "Top-risk communities", "intro": "", "na": (
            "Not available: top-risk communities — the run has no community artifact (the graph stage did not "
            "run or found none).")})
        return
    name, df, score_col = comm
    top = df.sort_values(score_col, ascending=False, kind="stable").head(8)
    top = format_frame(mask_frame(top[[c for c in _COMMUNITY_COLUMNS if c in top.columns]]))
    table = top.to_html(index=False, border=0, classes="fk-communities", escape=True)
    s.sections.append({"title": "Top-risk communities", "html": f'<div class="fk-table">{table}</div>', "intro": (
        f"The graph stage's communities, riskiest first by {score_col.replace('_', ' ')}, with the profile that makes "
        "them suspicious. Step 3 draws the top one.")})
