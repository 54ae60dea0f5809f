"""Training on the analyst's own labels: the data's earlier part, its labels, and a held-out check.

``fraudkit score DATA --labels LABELS --train-until T [--label-delay D]`` needs nothing simulated. The
training dataset is DATA cut at ``T`` (every timed row before it, :func:`fraudkit.data.slicing.slice_tables`)
with the label store's verdicts known by ``T + D`` (``D``: how long a verdict takes to arrive, so the
activity just before ``T`` has had time to be judged). The stage-1 models are fitted and every method's
operating point is set on it, exactly as on a simulated training world (``score_dataset(train=)``); the
whole of DATA is then scored.

How each method uses the labels:

* **few or one-class labels** (only bans, a blacklist): accounts without a verdict count as honest when the
  models are fitted and thresholds are set (biased positive-unlabelled learning: the unlabelled set holds
  some fraud, so the precision a threshold reaches on the training part is a lower bound, and thresholds err
  on the strict side). Honest verdicts (reviews, appeals) are kept as honest; an honest verdict that names a
  look-alike typology keeps it, so its false-positive rate is measured.
* **seed propagation**: the fraud verdicts known at the cut join the run's seed pool (with ``--seed-pool``'s
  seeds), so the graph stage propagates from them.
* **too few to train on** (fewer than :data:`MIN_FRAUD_TO_TRAIN` fraud verdicts): no model is fitted and no
  threshold set on them; each method keeps its unsupervised flag, the verdicts seed propagation and check
  the run. The share of fraud the labels cover is estimated (:mod:`fraudkit.identification.pu`) or stated
  (``--label-coverage``); when it cannot be told, precision is computed as if unlabelled accounts were honest
  (a lower bound: strict thresholds).
* **noisy labels**: the latest verdict per account wins (a reversed ban counts as honest); the held-out
  check below says how far the run can be trusted.

**Held-out check** (:func:`heldout_check`): the verdicts that became known after ``T + D`` on accounts
the training part did not label. Among the run's flagged accounts, the share with a later fraud verdict
(a lower bound of precision when unlabelled accounts may be fraud) and, when later honest verdicts exist,
the precision among flagged accounts with a later verdict, each with a 95 % Wilson interval; and the recall
of the later fraud verdicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.dataset import Dataset
from fraudkit.data.labels import labels_as_of, read_labels, to_contract_labels
from fraudkit.data.slicing import slice_tables
from fraudkit.errors import FraudkitError
from fraudkit.identification.base import wilson_bounds

__all__ = ["OwnLabels", "own_training_dataset", "own_seeds", "heldout_check", "wilson_interval",
           "MIN_FRAUD_TO_TRAIN"]

MIN_FRAUD_TO_TRAIN = 30
"""Fraud verdicts below which no model is fitted and no threshold is set on them: the run keeps each method's
unsupervised flag, and the verdicts only seed the graph stage and check the run."""



@dataclass(frozen=True)
class OwnLabels:
    """The analyst's labels a run trains on.

    Parameters
    ----------
    path : path
        The label store (see :mod:`fraudkit.data.labels`).
    train_until : str or Timestamp, optional
        Train on the data before this time (default: the data's end: every label, none held out).
    label_delay : str, default="0D"
        How long a verdict takes to arrive (a pandas offset such as ``"7D"``).
    label_coverage : float, optional
        Share of the fraud the labels cover, when the analyst knows it (e.g. from a review's prevalence
        estimate); default: estimated from the training part (:mod:`fraudkit.identification.pu`).
    """

    path: Path
    train_until: pd.Timestamp | None = None
    label_delay: pd.Timedelta = pd.Timedelta(0)
    label_coverage: float | None = None

    @classmethod
    def of(cls, path, *, train_until=None, label_delay=None, label_coverage=None) -> "OwnLabels":
        try:
            until = None if train_until is None else pd.Timestamp(train_until)
        except (ValueError, TypeError):
            raise FraudkitError(f"--train-until {train_until!r} is not a date; write e.g. 2026-11-15") from None
        try:
            delay = pd.Timedelta(label_delay or "0D")
        except (ValueError, TypeError):
            raise FraudkitError(f"--label-delay {label_delay!r} is not a duration; write e.g. 7D or 12h") from None
        if delay < pd.Timedelta(0):
            raise FraudkitError(f"--label-delay must not be negative, got {label_delay!r}")
        if label_coverage is not None and not 0 < float(label_coverage) <= 1:
            raise FraudkitError(f"--label-coverage is the share of fraud your labels cover, in (0, 1]; "
                                f"got {label_coverage!r}")
        return cls(Path(path), until, delay, None if label_coverage is None else float(label_coverage))

    def describe(self) -> str:
        cut = "the data's end" if self.train_until is None else str(self.train_until)
        return (f"own labels {self.path} (data before {cut}, verdicts known {self.label_delay} after it)")


def own_training_dataset(ds, own: OwnLabels, *, end) -> tuple:
    """The training dataset of an own-labels run, and the verdicts it was given.

    Parameters
    ----------
    ds : Dataset
        The scored dataset.
    own : OwnLabels
    end : Timestamp
        The data's end (the cut when ``own.train_until`` is None).

    Returns
    -------
    tuple of (Dataset, pandas.DataFrame, pandas.DataFrame)
        The training dataset (its fingerprint derived from the data's, the label store's content and the cut),
        the training verdicts (latest per account known by the cut plus the delay) and every verdict.
    """
    verdicts = read_labels(own.path)
    cut = pd.Timestamp(end) if own.train_until is None else own.train_until
    known = labels_as_of(verdicts, cut + own.label_delay)
    tables = {name: ds.to_pandas(name) for name in ds.tables if name != "labels"}
    if "accounts" not in tables:
        raise FraudkitError("--labels needs the accounts table: labels name accounts")
    sl = slice_tables(tables, cut)
    accounts = sl["accounts"]["account_id"]
    # accounts that register after the cut cannot be trained on: their labels stay out
    labels = to_contract_labels(known, accounts)
    n_fraud = int((known["label"] == "fraud").sum())
    if n_fraud == 0:
        raise FraudkitError(f"{own.path}: no fraud verdict is known by {cut + own.label_delay} on an account "
                            "of the data; the models need some. Fix: label a few accounts (e.g. past bans), move "
                            "--train-until later, or score without --labels (unsupervised defaults)")
    if labels.empty or not len(labels):
        raise FraudkitError(f"{own.path}: none of its account ids is an account of the data before {cut} "
                            f"(e.g. {known['entity_id'].iloc[0]!r}). Fix: write the ids as the data does")
    sl["labels"] = labels
    digest = hashlib.sha256()
    digest.update(str(ds.fingerprint).encode())
    digest.update(pd.util.hash_pandas_object(verdicts.astype(str), index=False).to_numpy().tobytes())
    digest.update(f"{cut}|{own.label_delay}".encode())
    train = Dataset.from_tables(sl, validate=False, fingerprint=digest.hexdigest()[:16])
    return train, known, verdicts


def own_seeds(known: pd.DataFrame) -> pd.DataFrame:
    """The training verdicts' fraud accounts as seeds of the graph stage's propagation (``SeedPool.update`` rows)."""
    fraud = known[known["label"] == "fraud"]
    return pd.DataFrame({"entity_type": "account", "entity_id": fraud["entity_id"].astype(str).to_numpy(),
                         "source": ("own labels: " + fraud["source"].astype(str)).to_numpy(), "score": 1.0})


def heldout_check(accounts: pd.DataFrame, verdicts: pd.DataFrame, own: OwnLabels, *, end) -> dict:
    """How the run fares on the verdicts it did not train on (see the module docstring).

    Returns
    -------
    dict
        ``n_heldout_fraud, n_heldout_honest, n_flagged, flagged_with_later_fraud, precision_lower_bound``
        (with ``_low``/``_high``), ``precision_reviewed`` (with its interval; NaN without later honest
        verdicts), ``recall`` (with its interval) and ``note``.
    """
    cut = (pd.Timestamp(end) if own.train_until is None else own.train_until) + own.label_delay
    trained = set(labels_as_of(verdicts, cut)["entity_id"])
    later = labels_as_of(verdicts)
    later = later[(later["time"] > cut) & ~later["entity_id"].isin(trained)]
    fraud = set(later.loc[later["label"] == "fraud", "entity_id"])
    honest = set(later.loc[later["label"] == "honest", "entity_id"])
    acc = accounts.assign(account_id=accounts["account_id"].astype(str))
    acc = acc[~acc["account_id"].isin(trained)]
    flagged = set(acc.loc[acc["flagged_combined"].astype(bool), "account_id"])
    tp, fp = len(flagged & fraud), len(flagged & honest)
    out = {"cut": str(cut), "n_heldout_fraud": len(fraud), "n_heldout_honest": len(honest),
           "n_flagged": len(flagged), "flagged_with_later_fraud": tp, "flagged_with_later_honest": fp}
    lb = wilson_interval(tp, len(flagged))
    out.update(precision_lower_bound=lb[0], precision_lower_bound_low=lb[1], precision_lower_bound_high=lb[2])
    pr = wilson_interval(tp, tp + fp) if honest else (np.nan,) * 3
    out.update(precision_reviewed=pr[0], precision_reviewed_low=pr[1], precision_reviewed_high=pr[2])
    rc = wilson_interval(tp, len(fraud & set(acc["account_id"])))
    out.update(recall=rc[0], recall_low=rc[1], recall_high=rc[2])
    out = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}
    out["note"] = ("no verdict after the cut: pass --train-until before the data's end to hold some out"
                   if not len(later) else
                   "precision_lower_bound counts flagged accounts without a later verdict as honest")
    return out


def wilson_interval(k, n) -> tuple:
    """``(k/n, low, high)``: the share and its 95 % Wilson interval (NaN when ``n`` is 0).

    Examples
    --------
    >>> [round(x, 3) for x in wilson_interval(45, 50)]
    [0.9, 0.786, 0.957]
    """
    if n == 0:
        return (np.nan, np.nan, np.nan)
    return (float(k / n), *wilson_bounds(k / n, n))


