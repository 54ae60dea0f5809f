"""The report's key numbers: one definition and one source function each, used by every page.

The index (:mod:`fraudkit.report.summary`) and the step pages
(:mod:`fraudkit.report.mitigation_views`, :mod:`fraudkit.report.evaluation_views`) call
these functions and nothing else for the numbers below, so a number reads the same
everywhere; :data:`DEFINITIONS` says what each one counts, and the pages quote it
where two related figures meet (leakage counts *events*, recall counts *accounts*).

=========================  ===========================================================
``flagged_accounts``       accounts flagged by any stage (``flagged_combined``)
``precision``              flagged accounts that carry a fraud label
``recall``                 fraud-labelled accounts that are flagged
``leakage_rate``           events (orders, interactions) of fraud-labelled accounts that passed
``interception_rate``      events verified or blocked, of all decided events
``early_warning``          days whose interception rate fell below its band
``estimated_precision``    flagged accounts that are fraud, estimated from a review sample
``estimated_prevalence``   accounts that are fraud, estimated from a review sample
``estimated_recall``       estimated fraud flagged / estimated fraud among all accounts
=========================  ===========================================================

On data without labels the precision, prevalence and recall come from the analyst's
verdicts on a stratified review sample (:func:`review_numbers`, with
:func:`fraudkit.evaluation.review.estimate_share`): the report draws the sample
(:data:`QUEUE_FILE`), the analyst labels it, and the next report reads it back
(``fraudkit report --review FILE``, copied to :data:`REVIEW_FILE`).

Labels are read only through :func:`fraudkit.evaluation.metrics.evaluate_run` and
:func:`fraudkit.report.views.decision_events`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudkit.data.dataset import table_path
from pathlib import Path

from fraudkit.evaluation.metrics import evaluate_run, interception_rate_by_day, leakage
from fraudkit.evaluation.review import ShareEstimate, estimate_recall, estimate_share, read_review
from fraudkit.report.notebook import QUEUE_FILE, REVIEW_FILE, read_artifact
from fraudkit.report.views import EarlyWarning, decision_events, early_warning

__all__ = ["DEFINITIONS", "RELATION", "Flagged", "Accuracy", "Events", "flagged_accounts", "accuracy", "events",
           "run_early_warning", "daily_interception", "ReviewNumbers", "review_numbers", "QUEUE_FILE",
           "REVIEW_FILE", "has_labels"]



DEFINITIONS = {
    "flagged_accounts": "accounts flagged by any identification stage (combined)",
    "precision": "share of flagged accounts that carry a fraud label (counts accounts)",
    "recall": "share of fraud-labelled accounts that are flagged (counts accounts)",
    "leakage_rate": "share of the events (orders, interactions) of fraud-labelled accounts that the layered "
                    "decision passed (counts events)",
    "interception_rate": "share of all decided events that were verified or blocked (counts events)",
    "early_warning": "days whose share of intercepted events fell below the band around the previous days' median",
    "estimated_precision": "share of flagged accounts that are fraud, estimated from the analyst's verdicts on a "
                           "stratified review sample (95% interval)",
    "estimated_prevalence": "share of all accounts that are fraud, estimated from the same review sample",
    "estimated_recall": "estimated fraud among flagged accounts divided by estimated fraud among all accounts",
}
"""What each key number counts, quoted by the pages that show it."""

RELATION = ("Recall and precision count accounts; leakage counts events. A caught account's events before it was "
            "caught, and every event of a missed account, are leakage: a high account recall can sit beside a "
            "sizeable event leakage when the missed accounts are the busy ones.")
"""How recall and leakage relate (shown where both appear)."""


@dataclass(frozen=True)
class Flagged:
    """``flagged`` of ``scored`` accounts (``flagged_combined``)."""

    flagged: int
    scored: int


@dataclass(frozen=True)
class Accuracy:
    """Account-level precision and recall over all fraud (the ``all_fraud`` row of the evaluation table)."""

    precision: float
    recall: float
    caught: int
    n_fraud: int
    table: pd.DataFrame


@dataclass(frozen=True)
class Events:
    """Decided events: intercepted (verify or block) of all; fraud events passed (leaked) of all fraud events."""

    n_events: int
    intercepted: int
    n_fraud_events: int | None = None
    leaked: int | None = None

    @property
    def interception_rate(self) -> float:
        return self.intercepted / self.n_events if self.n_events else float("nan")

    @property
    def leakage_rate(self) -> float:
        return self.leaked / self.n_fraud_events if self.n_fraud_events else float("nan")


@dataclass(frozen=True)
class ReviewNumbers:
    """What the analyst's review says about this run (:func:`review_numbers`).

    Attributes
    ----------
    precision, prevalence : ShareEstimate
        Fraud share among the flagged accounts and among all accounts.
    recall : tuple of float
        ``(estimate, low, high)``: estimated fraud flagged over estimated fraud among all accounts
        (:func:`fraudkit.evaluation.review.estimate_recall`; NaN when either is unknown).
    by_stage : pandas.DataFrame
        ``stage, flagged, estimated_precision, low, high, reviewed`` per stage flag and combined.
    review : pandas.DataFrame
        The filled review itself.
    """

    precision: ShareEstimate
    prevalence: ShareEstimate
    recall: tuple
    by_stage: pd.DataFrame
    review: pd.DataFrame

    def share(self, accounts) -> ShareEstimate:
        """The fraud share of any set of this run's accounts (e.g. the accounts an action touches)."""
        return estimate_share(self.review, accounts)


def has_labels(data_dir) -> bool:
    """Whether the scored dataset has a labels table (the evaluation reads it)."""
    return data_dir is not None and table_path(data_dir, "labels") is not None


def review_numbers(run_dir) -> ReviewNumbers | None:
    """Precision, prevalence and recall of the run estimated from the filled review it was given; else None.

    The review (:data:`REVIEW_FILE`) may come from an earlier run on the same accounts: every set is estimated
    by :func:`~fraudkit.evaluation.review.estimate_share` over the review's strata.
    """
    path = Path(run_dir) / REVIEW_FILE
    acc = read_artifact(run_dir, "accounts", columns=None)
    if not path.is_file() or acc is None or "flagged_combined" not in acc.columns:
        return None
    review = read_review(path)
    ids = acc["account_id"].astype(str)
    flagged = ids[acc["flagged_combined"].fillna(False).astype(bool).to_numpy()]
    is_flagged = acc["flagged_combined"].fillna(False).astype(bool).to_numpy()
    precision = estimate_share(review, flagged)
    prevalence = estimate_share(review, ids)
    recall = estimate_recall(precision, estimate_share(review, ids[~is_flagged]))
    rows = []
    for col in [c for c in acc.columns if c.startswith("flagged_")]:
        members = ids[acc[col].fillna(False).astype(bool).to_numpy()]
        e = estimate_share(review, members)
        rows.append({"stage": col.removeprefix("flagged_"), "flagged": len(members),
                     "estimated_precision": e.share, "low": e.low, "high": e.high, "reviewed": e.reviewed})
    return ReviewNumbers(precision, prevalence, recall, pd.DataFrame(rows), review)


def flagged_accounts(run_dir) -> Flagged | None:
    """Accounts flagged (combined) and scored, from ``RUN/accounts.parquet``; None without it."""
    acc = read_artifact(run_dir, "accounts", columns=None)
    if acc is None or "flagged_combined" not in acc.columns:
        return None
    return Flagged(int(acc["flagged_combined"].fillna(False).astype(bool).sum()), len(acc))


def accuracy(run_dir, data_dir) -> Accuracy | None:
    """Precision and recall of the combined decision over all fraud; None without labels or accounts."""
    if table_path(data_dir, "labels") is None or read_artifact(run_dir, "accounts", columns=["account_id"]) is None:
        return None
    table = evaluate_run(run_dir, data=data_dir)
    t = table.set_index("typology")
    if "all_fraud" not in t.index or "recall_combined" not in t.columns:
        return None
    row = t.loc["all_fraud"]
    n = int(row["n_labelled"]) if pd.notna(row["n_labelled"]) else 0
    if not n:
        return None
    caught = int(round(n * float(row["recall_combined"])))
    has_precision = "precision_combined" in t.columns and pd.notna(row["precision_combined"])
    prec = float(row["precision_combined"]) if has_precision else float("nan")
    return Accuracy(prec, caught / n, caught, n, table)


def events(run_dir, data_dir=None) -> Events | None:
    """Decided events, intercepted ones and (with labels) fraud events leaked; None without decisions."""
    dec = read_artifact(run_dir, "decisions", columns=None)
    if dec is None or not len(dec):
        return None
    stopped = int((dec["decision"] != "pass").sum())
    if data_dir is None or table_path(data_dir, "labels") is None:
        return Events(len(dec), stopped)
    ev = decision_events(dec, data_dir)
    leak = leakage(ev["decision"].to_numpy(), ev["is_fraud"].to_numpy())
    return Events(len(dec), stopped, int(leak["n_fraud"]), int(leak["leakage"]))


def run_early_warning(run_dir, data_dir, **options) -> EarlyWarning | None:
    """The run's early warning: days whose interception rate of all decided events fell below its band.

    The daily rate is :func:`fraudkit.evaluation.metrics.interception_rate_by_day` of the run's
    decisions; the rule is :func:`fraudkit.report.views.early_warning` (no labels needed). None without decisions.
    """
    daily = daily_interception(run_dir, data_dir)
    return None if daily is None else early_warning(daily, **options)


def daily_interception(run_dir, data_dir) -> pd.DataFrame | None:
    """Per day: interception rate of the run's decided events (the series the early warning watches), and with
    labels the leakage rate."""
    dec = read_artifact(run_dir, "decisions", columns=None)
    if dec is None or not len(dec):
        return None
    ev = decision_events(dec, data_dir)
    return interception_rate_by_day(ev["decision"], ev["ts"], ev["is_fraud"] if has_labels(data_dir) else None)
