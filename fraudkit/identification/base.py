"""The scoring contract every fraudkit scorer follows (after PyOD's ``BaseDetector``).

Rules, models, group mining, community screening and propagation all hand back
scores where higher means riskier, on the same entity keys, through the same
three fitted attributes:

``decision_scores_`` : ndarray of shape (n_entities,)
    Risk score of each entity seen in ``fit``; higher is riskier.
``threshold_`` : float
    Scores strictly above it are flagged.
``labels_`` : ndarray of shape (n_entities,), dtype int
    ``1`` where flagged, ``0`` elsewhere.
``entity_ids_`` : ndarray of shape (n_entities,)
    The keys the scores belong to (account_id, device_id, ...).

So one scorer can be swapped for another without reading its code, and
:func:`score_frame` turns any of them into the common table written to a run
directory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BaseScorer", "SCORE_COLUMNS", "score_frame", "check_is_fitted", "threshold_for_precision"]

SCORE_COLUMNS = ("entity_type", "entity_id", "stage", "method", "score", "flagged", "reason")
"""Columns of a score table: one row per (entity, stage, method)."""


class NotFittedError(ValueError, AttributeError):
    """The scorer was used before ``fit``."""


def check_is_fitted(est, attributes=("decision_scores_",)) -> None:
    """Raise :class:`NotFittedError` unless ``est`` has the fitted attributes."""
    missing = [a for a in attributes if not hasattr(est, a)]
    if missing:
        raise NotFittedError(
            f"This {type(est).__name__} is not fitted yet; call fit() first (missing {', '.join(missing)})."
        )


class BaseScorer:
    """Base class: stores keyword arguments, fixes the fitted attributes.

    Subclasses implement ``fit`` and call :meth:`_set_scores` at its end.

    Parameters
    ----------
    contamination : float or None, default=None
        When ``threshold`` is None, flag this share of the highest scores.
    threshold : float or None, default=None
        A fixed score threshold; takes precedence over ``contamination``.
    """

    entity_type = "account"
    stage = "behaviour"

    def __init__(self, *, contamination=None, threshold=None):
        self.contamination = contamination
        self.threshold = threshold

    def get_params(self) -> dict:
        """The constructor's keyword arguments as set (for run manifests)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def _set_scores(self, entity_ids, scores, reasons=None):
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 1 or len(scores) != len(entity_ids):
            raise ValueError(f"{type(self).__name__}: got {len(scores)} scores for {len(entity_ids)} entities")
        if np.isnan(scores).any():
            raise ValueError(f"{type(self).__name__}: scores contain NaN; fill missing features before scoring")
        self.entity_ids_ = np.asarray(entity_ids)
        self.decision_scores_ = scores
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif self.contamination is not None:
            if not 0 < self.contamination < 0.5:
                raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
            self.threshold_ = float(np.quantile(scores, 1 - self.contamination)) if len(scores) else np.inf
        else:
            self.threshold_ = self._default_threshold()
        self.labels_ = (scores > self.threshold_).astype(int)
        self.reasons_ = None if reasons is None else np.asarray(reasons, dtype=object)
        return self

    def _default_threshold(self) -> float:
        return 0.5

    def score_frame(self) -> pd.DataFrame:
        """This scorer's results as a score table (see :data:`SCORE_COLUMNS`)."""
        check_is_fitted(self)
        return score_frame(
            self.entity_ids_,
            self.decision_scores_,
            self.labels_,
            entity_type=self.entity_type,
            stage=self.stage,
            method=type(self).__name__,
            reasons=self.reasons_,
        )


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


def threshold_for_precision(scores, y_true, precision: float) -> float:
    """Lowest threshold whose flagged set (``score > t``) reaches ``precision`` on labelled data.

    Used to set operating points on validation data only. Returns ``inf``
    (flag nothing) when no threshold reaches the target.
    """
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(y_true, dtype=int)
    order = np.argsort(-scores, kind="stable")
    s, yy = scores[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, len(s) + 1)
    # only cut between distinct scores
    last_of_run = np.r_[s[1:] != s[:-1], True]
    prec = tp / k
    ok = np.flatnonzero(last_of_run & (prec >= precision))
    if len(ok) == 0:
        return float("inf")
    i = ok[-1]
    # threshold just below s[i]: everything >= s[i] is flagged
    below = s[i + 1] if i + 1 < len(s) else -np.inf
    return float((s[i] + below) / 2) if np.isfinite(below) else float(np.nextafter(s[i], -np.inf))
