"""The scoring contract every fraudkit detector follows (after PyOD's ``BaseDetector`` and scikit-learn).

Rules, models, group mining, dense sub-graphs, community screening, propagation and the statistical
tests all hand back scores where higher means riskier, on the same entity keys, through the same
fitted attributes, set by one shared method (:meth:`BaseScorer._set_scores`):

``decision_scores_`` : ndarray of shape (n_entities,)
    Risk score of each entity seen in ``fit``; higher is riskier.
``threshold_`` : float
    Scores strictly above it are flagged.
``labels_`` : ndarray of shape (n_entities,), dtype int
    ``1`` where flagged (``decision_scores_ > threshold_``), ``0`` elsewhere.
``entity_ids_`` : ndarray of shape (n_entities,)
    The keys the scores belong to (account_id, device_id, group id, node index, ...).
``reasons_`` : ndarray of shape (n_entities,), dtype object
    One explanation string per entity, ``""`` where there is none.

Every detector is a scikit-learn estimator (:class:`BaseScorer` subclasses
:class:`sklearn.base.BaseEstimator`): ``__init__`` only stores its keyword arguments,
``fit`` validates, learns and returns ``self``, learned attributes end in ``_``, and
``get_params`` / ``set_params`` / :func:`sklearn.base.clone` / ``repr`` work. Using a
detector before ``fit`` raises :class:`NotFittedError`.

So one detector can be swapped for another without reading its code, and
:func:`score_frame` turns any of them into the common table written to a run
directory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sklearn.exceptions
from sklearn.base import BaseEstimator

__all__ = ["BaseScorer", "wilson_bounds", "NotFittedError", "SCORE_COLUMNS", "score_frame", "check_is_fitted",
           "threshold_for_precision", "inclusive_threshold"]

SCORE_COLUMNS = ("entity_type", "entity_id", "stage", "method", "score", "flagged", "reason")
"""Columns of a score table: one row per (entity, stage, method)."""


class NotFittedError(sklearn.exceptions.NotFittedError):
    """The detector was used before ``fit`` (also a scikit-learn ``NotFittedError``)."""


def check_is_fitted(est, attributes=("decision_scores_",)) -> None:
    """Raise :class:`NotFittedError` unless ``est`` has the fitted attributes.

    Examples
    --------
    >>> class Toy(BaseScorer):
    ...     def __init__(self, *, contamination=None, threshold=0.5):
    ...         self.contamination, self.threshold = contamination, threshold
    >>> check_is_fitted(Toy())
    Traceback (most recent call last):
    ...
    fraudkit.identification.base.NotFittedError: This Toy is not fitted yet; call fit() first (missing decision_scores_).
    """
    missing = [a for a in attributes if not hasattr(est, a)]
    if missing:
        raise NotFittedError(
            f"This {type(est).__name__} is not fitted yet; call fit() first (missing {', '.join(missing)})."
        )


def inclusive_threshold(value) -> float:
    """The threshold under which ``score > threshold`` flags exactly the scores ``>= value``.

    Rule sets verify from their ``verify`` score on, and the statistical tests call a score of 0.5
    family-wise significant; the contract flags strictly above ``threshold_``, so such detectors
    store the largest float below ``value``. Infinite values are returned unchanged.

    Examples
    --------
    >>> t = inclusive_threshold(0.5)
    >>> 0.5 > t, t > 0.4999999999
    (True, True)
    """
    value = float(value)
    return value if not np.isfinite(value) else float(np.nextafter(value, -np.inf))


class BaseScorer(BaseEstimator):
    """Base class of every fraudkit detector: one set of fitted attributes, scikit-learn's habits.

    Subclasses list their parameters in ``__init__`` (keyword-only, stored as given), implement
    ``fit`` and end it with ``return self._set_scores(entity_ids, scores, reasons)``.

    Parameters
    ----------
    contamination : float or None, default=None
        When given, ``threshold_`` is the ``1 - contamination`` quantile of the scores (flag this
        share of the highest scores) and ``threshold`` is ignored.
    threshold : float or None
        A fixed score threshold. Each detector documents its default; ``None`` means the
        detector's own rule (a validated threshold for the supervised models, ``1 / n`` for
        personalised PageRank, the rule set's ``verify`` score for rules).

    Examples
    --------
    >>> from sklearn.base import clone
    >>> class Toy(BaseScorer):
    ...     def __init__(self, *, contamination=None, threshold=0.5):
    ...         self.contamination, self.threshold = contamination, threshold
    ...     def fit(self, x):
    ...         return self._set_scores(["a", "b"], x)
    >>> est = Toy(threshold=0.3).fit([0.9, 0.1])
    >>> est.labels_.tolist(), est.reasons_.tolist(), clone(est)
    ([1, 0], ['', ''], Toy(threshold=0.3))
    """

    entity_type = "account"
    stage = "behaviour"

    def __init__(self, *, contamination=None, threshold=None):
        self.contamination = contamination
        self.threshold = threshold

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "decision_scores_")

    def score_frame(self) -> pd.DataFrame:
        """This detector's results as a score table (see :data:`SCORE_COLUMNS`)."""
        check_is_fitted(self)
        return score_frame(
            self.entity_ids_,
            self.decision_scores_,
            self.labels_,
            entity_type=getattr(self, "entity_type_", self.entity_type),
            stage=self.stage,
            method=type(self).__name__,
            reasons=self.reasons_,
        )

    def _set_scores(self, entity_ids, scores, reasons=None):
        """Set the fitted attributes of the contract from per-entity scores; return ``self``."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 1 or len(scores) != len(entity_ids):
            raise ValueError(f"{type(self).__name__}: got {len(scores)} scores for {len(entity_ids)} entities")
        if np.isnan(scores).any():
            raise ValueError(f"{type(self).__name__}: scores contain NaN; fill missing features before scoring")
        if reasons is not None and len(reasons) != len(scores):
            raise ValueError(f"{type(self).__name__}: got {len(reasons)} reasons for {len(scores)} entities")
        self.entity_ids_ = np.asarray(entity_ids)
        self.decision_scores_ = scores
        if self.contamination is not None:
            if not 0 < self.contamination < 0.5:
                raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
            self.threshold_ = float(np.quantile(scores, 1 - self.contamination)) if len(scores) else np.inf
        elif self.threshold is not None:
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(self._default_threshold())
        self.labels_ = (scores > self.threshold_).astype(int)
        if reasons is None:
            self.reasons_ = np.full(len(scores), "", dtype=object)
        else:
            r = pd.Series(np.asarray(reasons, dtype=object))
            self.reasons_ = r.where(r.notna(), "").astype(str).to_numpy(dtype=object)
        return self

    def _default_threshold(self) -> float:
        """``threshold_`` when neither ``contamination`` nor ``threshold`` is given."""
        return 0.5


def score_frame(entity_ids, scores, flagged, *, entity_type, stage, method, reasons=None) -> pd.DataFrame:
    """Build a score table with the common columns.

    Examples
    --------
    >>> score_frame([1, 2], [0.9, 0.1], [1, 0], entity_type="account", stage="behaviour",
    ...             method="rules").shape
    (2, 7)
    """
    n = len(entity_ids)
    return pd.DataFrame(
        {
            "entity_type": np.full(n, entity_type, dtype=object),
            "entity_id": np.asarray(entity_ids),
            "stage": np.full(n, stage, dtype=object),
            "method": np.full(n, method, dtype=object),
            "score": np.asarray(scores, dtype=float),
            "flagged": np.asarray(flagged, dtype=bool),
            "reason": np.full(n, "", dtype=object) if reasons is None else np.asarray(reasons, dtype=object),
        },
        columns=list(SCORE_COLUMNS),
    )


def wilson_bounds(p, n, *, z: float = 1.959963984540054):
    """Wilson's score interval ``(low, high)`` of a share ``p`` seen on ``n`` cases, clipped to [0, 1]: the one
    formula the kit's precision bounds, label-based estimates and review estimates use.

    Parameters
    ----------
    p, n : float or array-like
        Shares and the number of cases each was seen on (``n`` may be an effective, fractional sample size;
        it must be positive).
    z : float, default 1.96
        Normal quantile: 1.96 for a two-sided 95 % interval, ``norm.ppf(c)`` for a one-sided bound at ``c``.

    Returns
    -------
    tuple of float, or of ndarray when ``p`` or ``n`` is an array

    Examples
    --------
    >>> [round(x, 3) for x in wilson_bounds(0.9, 50)]
    [0.786, 0.957]
    >>> [b.round(3).tolist() for b in wilson_bounds(np.array([0.0, 1.0]), np.array([4, 4]))]
    [[0.0, 0.51], [0.49, 1.0]]
    """
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    z2 = z * z
    spread = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = np.clip((p + z2 / (2 * n) - spread) / (1 + z2 / n), 0.0, 1.0)
    high = np.clip((p + z2 / (2 * n) + spread) / (1 + z2 / n), 0.0, 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def threshold_for_precision(scores, y_true, precision: float, *, label_frequency: float = 1.0) -> float:
    """Lowest threshold whose flagged set (``score > t``) reaches ``precision`` on labelled data.

    Used to set operating points on validation data only. Returns ``inf``
    (flag nothing) when no threshold reaches the target.

    ``label_frequency`` (``c``, in (0, 1]) is the share of fraud that is labelled. With ``c < 1`` the labels
    are positive-unlabelled (an unlabelled entity may be fraud): under the usual assumption that the labelled
    fraud is a random part of all fraud, ``k`` flagged entities holding ``m`` labelled ones hold about ``m / c``
    fraud, and precision is estimated as ``min(1, m / c / k)``.

    Examples
    --------
    >>> round(threshold_for_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 0, 0], 0.9), 3)
    0.85
    >>> round(threshold_for_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 0, 0], 0.9, label_frequency=0.3), 3)
    0.4
    """
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(y_true, dtype=int)
    order = np.argsort(-scores, kind="stable")
    s, yy = scores[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, len(s) + 1)
    # only cut between distinct scores
    last_of_run = np.r_[s[1:] != s[:-1], True]
    prec = np.minimum(1.0, tp / float(label_frequency) / k)
    ok = np.flatnonzero(last_of_run & (prec >= precision))
    if len(ok) == 0:
        return float("inf")
    i = ok[-1]
    # threshold just below s[i]: everything >= s[i] is flagged
    below = s[i + 1] if i + 1 < len(s) else -np.inf
    return float((s[i] + below) / 2) if np.isfinite(below) else float(np.nextafter(s[i], -np.inf))
