"""The key numbers of a scored run, for the report's index page.

:func:`summarise_run` reads a run directory (``accounts.parquet``,
``decisions.parquet``, stage artifacts, and what the step notebooks wrote under
``report/``) and, when the dataset has labels, :func:`fraudkit.evaluation.metrics.evaluate_run`
— the only code that reads labels. Whatever is missing becomes a "not available"
note, never a made-up number.

What a stakeholder sees first, in order: the key numbers (accounts flagged,
precision and recall, leakage and interception rate), where the models and
thresholds came from, the arms-race table, the closed-loop recall, the
top-risk communities.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.dataset import table_path
from fraudkit.evaluation.metrics import evaluate_run, leakage
from fraudkit.report.masking import mask_frame
from fraudkit.report.notebook import read_artifact
from fraudkit.report.plots import line_over_time, to_data_uri
from fraudkit.report.views import arms_race_view, decision_events, find_communities, loop_recall_long, training_note

__all__ = ["RunSummary", "summarise_run", "LOOP_RECALL_ARTIFACT"]

LOOP_RECALL_ARTIFACT = "report/evaluation/loop_recall"
"""Where notebook 05 writes the closed loop's per-iteration recall (read back for the index)."""

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

    def card(self, key: str, value, label: str, fmt: str = "{:,}", hint: str = "") -> None:
        self.numbers[key] = value
        self.cards.append({"value": fmt.format(value), "label": label, "hint": hint})

    def note(self, text: str, kind: str = "na") -> None:
        self.notes.append({"kind": kind, "text": text})


def summarise_run(run_dir, data_dir) -> RunSummary:
    """Key numbers, the arms-race table, the closed-loop figure and the top-risk communities of a run.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``fraudkit score`` (and the report's step notebooks).
    data_dir : path
        The scored dataset (its labels table, if any, is read by evaluation only).

    Returns
    -------
    RunSummary
    """

    run_dir = Path(run_dir)
    s = RunSummary()
    acc = read_artifact(run_dir, "accounts")
    if acc is not None and "flagged_combined" in acc.columns:
        n = int(acc["flagged_combined"].sum())
        s.card("accounts_flagged", n, "accounts flagged (combined)", hint=f"of {len(acc):,} scored ({n / max(len(acc), 1):.1%})")
        s.numbers["accounts_scored"] = len(acc)
    else:
        s.note("Not available: flagged accounts — the run has no accounts.parquet (scoring did not run).")
    kind, text = training_note(run_dir)
    s.note(text, kind)
    table = None
    if table_path(data_dir, "labels") is None:
        s.note("Not available: precision, recall and leakage — the dataset has no labels table.")
    elif acc is not None:
        table = evaluate_run(run_dir, data=data_dir)
        _add_accuracy(s, table)
    _add_events(s, run_dir, data_dir, labelled=table is not None)
    if table is not None:
        _add_arms_race(s, table)
    _add_loop(s, run_dir)
    _add_communities(s, run_dir)
    return s


# --- private ------------------------------------------------------------------


def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(float(v)) else f"{float(v):.1%}"


def _add_accuracy(s: RunSummary, table: pd.DataFrame) -> None:
    if not len(table) or int(table["n_labelled"].fillna(0).sum()) == 0:
        s.note("Not available: precision and recall — the dataset has no labels.")
        return
    t = table.set_index("typology")
    if "all_fraud" in t.index and "recall_combined" in t.columns:
        row = t.loc["all_fraud"]
        n = int(row["n_labelled"]) if pd.notna(row["n_labelled"]) else 0
        if n:
            if "precision_combined" in t.columns and pd.notna(row["precision_combined"]):
                s.card("precision", float(row["precision_combined"]), "precision (combined)", "{:.1%}",
                       hint="flagged accounts that are fraud")
            caught = int(round(n * float(row["recall_combined"])))
            s.card("recall_combined", caught / n, "fraud recall (combined)", "{:.1%}",
                   hint=f"{caught:,} of {n:,} fraudulent accounts")
            s.numbers["leakage_accounts"] = n - caught
    look = t[t.index.str.startswith("honest_")]
    if "fpr_combined" in look.columns and look["fpr_combined"].notna().any():
        worst = look["fpr_combined"].astype(float).idxmax()
        s.card("lookalike_fpr_max", float(look.loc[worst, "fpr_combined"]), "worst honest look-alike FPR",
               "{:.1%}", hint=worst.removeprefix("honest_").replace("_", " "))


def _add_events(s: RunSummary, run_dir: Path, data_dir, *, labelled: bool) -> None:

    dec = read_artifact(run_dir, "decisions", columns=None)
    if dec is None or not len(dec):
        s.note("Not available: leakage and interception rates — the run has no decisions.parquet.")
        return
    stopped = dec["decision"] != "pass"
    if labelled:
        try:
            ev = decision_events(dec, data_dir)
        except KeyError:
            ev = None
        if ev is not None:

            leak = leakage(ev["decision"].to_numpy(), ev["is_fraud"].to_numpy())
            if leak["n_fraud"]:
                s.card("leakage_rate", leak["leakage_rate"], "leakage rate (fraud events passed)", "{:.1%}",
                       hint=f"{leak['leakage']:,} of {leak['n_fraud']:,} events of fraudulent accounts")
    s.card("interception_rate", float(stopped.mean()), "interception rate (events verify or block)", "{:.1%}",
           hint=f"{int(stopped.sum()):,} of {len(dec):,} orders and interactions")


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
    table = f'<table class="fk-arms"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
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


def _add_loop(s: RunSummary, run_dir: Path) -> None:

    rec = read_artifact(run_dir, LOOP_RECALL_ARTIFACT)
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
        f"by window. After {int(last['iteration']) + 1} windows the loop's recall is {_pct(last['recall_loop'])} "
        f"against {_pct(last['recall_pipeline'])} for the same runs without it, at precision "
        f"{_pct(last.get('precision_loop'))} (vs {_pct(last.get('precision_pipeline'))}). Most of the rise over "
        "iterations is more history per account, which the runs without the loop see too; the gap between the "
        "two recall lines is what the loop's memory and sunk keys add. The loop's runs use rules and unsupervised "
        "stages only. Details in step 5.")})


def _add_communities(s: RunSummary, run_dir: Path) -> None:

    comm = find_communities(run_dir)
    if comm is None:
        s.sections.append({"title": "Top-risk communities", "intro": "", "na": (
            "Not available: top-risk communities — the run has no community artifact (the graph stage did not "
            "run or found none).")})
        return
    name, df, score_col = comm
    top = df.sort_values(score_col, ascending=False, kind="stable").head(8)
    top = mask_frame(top[[c for c in _COMMUNITY_COLUMNS if c in top.columns]])
    table = top.to_html(index=False, float_format=lambda v: f"{v:,.2f}", border=0, classes="fk-communities",
                        escape=True)
    s.sections.append({"title": "Top-risk communities", "html": f'<div class="fk-scroll">{table}</div>', "intro": (
        f"The graph stage's communities ({name}), riskiest first by {score_col}, with the profile that makes "
        "them suspicious. Step 3 draws the top one.")})
