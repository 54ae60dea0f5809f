"""The key numbers of a scored run, for the report's index page.

:func:`summarise_run` reads a run directory (``accounts.parquet``,
``decisions.parquet``, stage artifacts) and, when the dataset has labels,
:func:`fraudkit.evaluation.evaluate_run` — the only code that reads labels.
Whatever is missing becomes a "not available" note, never a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .contract import STAGES

__all__ = ["RunSummary", "summarise_run"]


@dataclass
class RunSummary:
    """What the index shows: ``cards`` (value, label), ``notes``, ``figures`` (data URIs), ``tables`` (title, html)."""

    cards: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def card(self, key: str, value, label: str, fmt: str = "{:,}") -> None:
        self.numbers[key] = value
        self.cards.append({"value": fmt.format(value), "label": label})


def summarise_run(run_dir, data_dir) -> RunSummary:
    """Key numbers of a run: flagged accounts, decisions, precision/recall, leakage, top communities.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``fraudkit score``.
    data_dir : path
        The scored dataset (its labels table, if any, is read by evaluation only).

    Returns
    -------
    RunSummary
    """
    from .plots import bar, heatmap, to_data_uri
    from .nbtools import mask_frame, require, table_path
    from .runviews import find_communities

    run_dir = Path(run_dir)
    s = RunSummary()
    acc_path = run_dir / "accounts.parquet"
    if acc_path.exists():
        acc = pd.read_parquet(acc_path)
        s.card("accounts_scored", len(acc), "accounts scored")
        if "flagged_combined" in acc.columns:
            n = int(acc["flagged_combined"].sum())
            s.card("accounts_flagged", n, "accounts flagged (combined)")
            s.card("flagged_share", n / max(len(acc), 1), "share of accounts flagged", "{:.2%}")
        per_stage = [(st, int(acc[f"flagged_{st}"].sum())) for st in STAGES if f"flagged_{st}" in acc.columns]
        if per_stage:
            df = pd.DataFrame(per_stage, columns=["stage", "flagged"])
            s.figures.append({"alt": "Accounts flagged by each identification stage", "uri": to_data_uri(
                bar(df, x="stage", y="flagged", title="Accounts flagged by identification stage",
                    xlabel="stage", ylabel="accounts flagged", value_format=",.0f", figsize=(6.5, 3.0)))})
    else:
        s.notes.append("Not available: flagged accounts — the run has no accounts.parquet (scoring did not run).")
    dec_path = run_dir / "decisions.parquet"
    if dec_path.exists():
        dec = pd.read_parquet(dec_path, columns=["decision"])
        counts = dec["decision"].value_counts()
        for d in ("block", "verify"):
            s.card(f"decisions_{d}", int(counts.get(d, 0)), f"events decided: {d}")
    evaluate_run = require("fraudkit.evaluation", "evaluate_run", show_note=False)
    if evaluate_run is None:
        s.notes.append("Not available: precision, recall and leakage — fraudkit.evaluation is not part of this "
                       "installation yet.")
    elif table_path(data_dir, "labels") is None:
        s.notes.append("Not available: precision, recall and leakage — the dataset has no labels table.")
    elif acc_path.exists():
        _add_evaluation(s, evaluate_run(run_dir, data=data_dir), heatmap, to_data_uri)
    comm = find_communities(run_dir)
    if comm is not None:
        name, df, score_col = comm
        top = mask_frame(df.sort_values(score_col, ascending=False, kind="stable").head(10))
        s.tables.append((f"Top-risk communities ({name}, by {score_col})",
                         top.to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0)))
    else:
        s.notes.append("Not available: top-risk communities — the run has no community artifact "
                       "(the graph stage did not run or found none).")
    return s


def _add_evaluation(s: RunSummary, table: pd.DataFrame, heatmap, to_data_uri) -> None:
    from .runviews import metric_grid

    if table is None or not len(table) or int(table["n_labelled"].fillna(0).sum()) == 0:
        s.notes.append("Not available: precision and recall — the dataset has no labels.")
        return
    overall = table.set_index("typology")
    if "all_fraud" in overall.index and "recall_combined" in overall.columns:
        row = overall.loc["all_fraud"]
        n = int(row["n_labelled"]) if pd.notna(row["n_labelled"]) else 0
        if n:
            caught = int(round(n * float(row["recall_combined"])))
            if "precision_combined" in overall.columns and pd.notna(row["precision_combined"]):
                s.card("precision", float(row["precision_combined"]), "precision (combined)", "{:.1%}")
            s.card("recall_combined", caught / n, "fraud recall (combined)", "{:.1%}")
            s.card("leakage", n - caught, "fraudulent accounts leaked")
            s.card("leakage_rate", (n - caught) / n, "leakage rate (accounts)", "{:.1%}")
    look = metric_grid(table, "fpr_")
    if len(look):
        s.card("lookalike_fpr_max", float(look.max().max()), "worst honest look-alike FPR", "{:.1%}")
    grid = metric_grid(table, "recall_")
    if len(grid):
        s.figures.append({"alt": "Recall per typology and stage", "uri": to_data_uri(heatmap(
            grid, title="Recall per typology and stage", xlabel="identification stage", ylabel="attacker typology"))})
