"""Supervised scoring of behaviour features: logistic regression and gradient boosting.

Both scorers follow :class:`fraudkit.identification.base.BaseScorer` (higher = riskier):
``fit(X, y)`` learns on one period's labelled entities, ``decision_function``
scores new ones, ``reasons`` says which features drove a score.

The operating threshold is chosen on *validation* data, never on the rows it is
judged on: ``fit`` holds out a stratified, seeded ``validation_fraction`` of the
training rows, fits on the rest, and sets ``threshold_`` with
:func:`fraudkit.identification.base.threshold_for_precision` for ``target_precision`` on the
held-out rows. The fitted model is the one whose threshold was validated (no
refit on all rows, so the threshold stays calibrated to it).

:func:`time_split` builds an honest train/test split from one dataset: train on
earlier days, test on later ones, with a label delay.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudkit.capability.features import account_behaviour, first_activity
from fraudkit.data.contract import CUSTOM_FRAUD_PREFIX, FRAUD_TYPOLOGIES
from fraudkit.data.sqlsource import open_source
from fraudkit.errors import ConvergenceWarning, MissingInputError
from fraudkit.identification.base import BaseScorer, check_is_fitted, threshold_for_precision, wilson_bounds
from fraudkit.randomness import check_random_state

__all__ = ["LogisticScorer", "BoostingScorer", "TimeSplit", "time_split", "labels_for", "union_thresholds",
           "ENTITY_KEYS"]

ENTITY_KEYS = ("account_id", "device_id", "ip", "ip24", "phone", "address", "order_id", "entity_id")
"""Column names treated as the entity key when they are the first column of X."""

_QUANTISE_BLOCK = 1 << 15  # values rounded at a time by _quantise
_PREDICT_BLOCK = 1 << 16  # rows predicted at a time by BoostingScorer
PARALLEL_ROWS = 1 << 15
"""Rows a :class:`BoostingScorer` prediction call needs to run on more than one thread."""

DEFAULT_POSITIVES = tuple(t for t in FRAUD_TYPOLOGIES if t != "engagement_buyer")
"""Typologies that make an account positive (engagement buyers label notes/authors, not actors); with these
defaults a custom ``fraud:<name>`` typology is positive too."""


class _SupervisedScorer(BaseScorer):
    """Shared fit / threshold / scoring logic; subclasses build and explain the estimator."""

    def __init__(self, *, target_precision=0.9, precision_confidence=0.9, validation_fraction=0.25, seed=None,
                 n_threads=1, contamination=None, threshold=None, label_frequency=1.0):
        super().__init__(contamination=contamination, threshold=threshold)
        self.label_frequency = label_frequency
        self.target_precision = target_precision
        self.precision_confidence = precision_confidence
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.n_threads = n_threads

    def _threads(self):
        import sklearn.ensemble  # noqa: F401 - load OpenMP and BLAS first: limits reach loaded libraries only
        import sklearn.linear_model  # noqa: F401
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads)

    def _scoring_threads(self):
        """The thread limit while scoring: the fitting one unless the scorer says otherwise."""
        return self._threads()

    def fit(self, X, y):
        """Fit on labelled entities; set the threshold on a held-out validation part.

        Parameters
        ----------
        X : pandas.DataFrame
            Features; the first column is the key when named as in
            :data:`ENTITY_KEYS`, otherwise the index is. Non-numeric columns
            are ignored; booleans count as 0/1.
        y : array-like of shape (n_entities,)
            1 for fraud, 0 otherwise.

        Returns
        -------
        self
        """
        ids, M, names = _matrix(X)
        y = np.asarray(y, dtype=int)
        if len(y) != len(M):
            raise ValueError(f"X has {len(M)} rows but y has {len(y)}")
        if not set(np.unique(y)) <= {0, 1} or len(np.unique(y)) < 2:
            raise ValueError("y must contain both classes 0 and 1 (got "
                             f"{sorted(set(np.unique(y).tolist()))}); a scorer needs positives and negatives")
        empty = np.isnan(M).all(axis=0) if len(M) else np.ones(len(names), dtype=bool)
        # a column with no value at all (a table or field the data does not have) carries no signal and
        # breaks histogram binning; it is dropped and listed in dropped_features_
        self.dropped_features_ = [n for n, e in zip(names, empty) if e]
        names, M = [n for n, e in zip(names, empty) if not e], M[:, ~empty]
        if not names:
            raise MissingInputError("X has no numeric feature column with any value"
                                    + (f" (all empty: {', '.join(self.dropped_features_[:10])})"
                                       if self.dropped_features_ else ""))
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_training_, self.n_training_positive_ = int(len(y)), int(y.sum())
        rng = check_random_state(self.seed)
        self._seed_int = int(rng.integers(2**31 - 1))
        validate = self.threshold is None and self.contamination is None and self.target_precision is not None
        with self._threads():
            self._fit_validated(ids, M, y, rng, validate)
        return self

    def _fit_validated(self, ids, M, y, rng, validate):
        if validate:
            # the hold-out is drawn in key order: the same entities validate whatever order the rows come in
            # (DuckDB feature tables come back in a different row order run to run)
            key = _key_order(ids)
            tr, va = (key[np.sort(part)] for part in _stratified_holdout(y[key], self.validation_fraction, rng))
            self._fit_estimator(M[tr], y[tr])
            val_scores = self._proba(M[va])
            self.validation_threshold_ = _threshold_for_precision_bound(val_scores, y[va], self.target_precision,
                                                                        self.precision_confidence,
                                                                        label_frequency=self.label_frequency)
            hit = val_scores > self.validation_threshold_
            self.validation_precision_ = (min(1.0, float(y[va][hit].mean()) / self.label_frequency) if hit.any()
                                          else float("nan"))
            self.validation_recall_ = float(hit[y[va] == 1].mean())
            self.n_validation_ = int(len(va))
            self.validation_index_ = va
            self.validation_scores_ = val_scores
            self.validation_y_ = y[va]
        else:
            self._fit_estimator(M, y)
            self.validation_threshold_ = 0.5
        self._set_scores(ids, self._proba(M))

    def decision_function(self, X) -> np.ndarray:
        """Fraud probability of each row of ``X`` (columns matched by name)."""
        check_is_fitted(self, ("feature_names_in_",))
        _, M, _ = _matrix(X, self.feature_names_in_)
        with self._scoring_threads():
            return self._proba(M)

    def predict(self, X) -> np.ndarray:
        """1 where ``decision_function(X) > threshold_``."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def reasons(self, X, top=3) -> pd.DataFrame:
        """Top contributing features per row: ``entity_id, reason, contributions``.

        ``reason`` reads ``"feature=value (+0.83); ..."``; ``contributions`` is
        a list of (feature, contribution in log-odds) for the ``top`` largest
        positive contributions. How a contribution is measured depends on the
        scorer (see its docstring).
        """
        check_is_fitted(self, ("feature_names_in_",))
        ids, M, _ = _matrix(X, self.feature_names_in_)
        with self._scoring_threads():
            C = self._contributions(M)
        top = max(1, int(top))
        order = np.argsort(-C, axis=1, kind="stable")[:, :top]
        names = self.feature_names_in_
        reasons, contribs = [], []
        for i in range(len(M)):  # formatting only: `top` strings per row
            pairs = [(names[j], float(C[i, j])) for j in order[i] if C[i, j] > 0]
            contribs.append(pairs)
            reasons.append("; ".join(f"{n}={_fmt(M[i, j])} (+{c:.2f})" for (n, c), j in zip(pairs, order[i])))
        return pd.DataFrame({"entity_id": ids, "reason": reasons, "contributions": contribs})

    def _default_threshold(self):
        return float(self.validation_threshold_)


class LogisticScorer(_SupervisedScorer):
    """Logistic regression on standardised behaviour features, with readable weights.

    Each feature is transformed with ``sign(x) * log1p(|x|)`` (counts are
    heavy-tailed), missing values are filled with the training median, then
    standardised. ``coef_`` therefore reads "log-odds per standard deviation
    of the (log) feature". A row's contribution from a feature is
    ``weight * standardised value`` (relative to the average training row).

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 regularisation strength.
    class_weight : {"balanced", None}, default="balanced"
    max_iter : int, default=2000
    target_precision : float or None, default=0.9
        Precision the threshold must reach on validation rows.
    precision_confidence : float or None, default=0.9
        The threshold is the lowest whose one-sided Wilson *lower bound* on
        validation precision (at this confidence) reaches ``target_precision``.
        Picking the lowest threshold whose *observed* precision reaches the
        target (``None``) is optimistic: it selects on noise, and new data
        then falls short of the target.
    validation_fraction : float, default=0.25
    seed : int, Generator or None, default=None
    n_threads : int or None, default=1
        BLAS/OpenMP threads while fitting and scoring. One by default: on a
        shared, oversubscribed machine OpenMP barriers in the tree code slow
        down by 10-100x; raise it (or None for all cores) on a dedicated one.
    contamination, threshold
        See :class:`fraudkit.identification.base.BaseScorer`; either disables validation.

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per training row
        (its fraud probability; ``threshold_`` the validated threshold). ``reasons_`` is ``""``
        everywhere: explaining every row costs a prediction per feature, so ask :meth:`reasons` for
        the rows you flag.
    n_training_, n_training_positive_ : int
        Training rows, and of them positive (validation rows included).
    coef_ : pandas.DataFrame
        ``feature, weight, odds_ratio`` sorted by ``|weight|``.
    intercept_ : float

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"account_id": range(400), "speed": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> y = (X.speed + 0.3 * rng.normal(size=400) > 1).astype(int)
    >>> m = LogisticScorer(seed=0).fit(X, y)
    >>> m.coef_.feature.iloc[0]
    'speed'
    """

    def __init__(self, *, C=1.0, class_weight="balanced", max_iter=2000, target_precision=0.9,
                 precision_confidence=0.9, validation_fraction=0.25, seed=None, n_threads=1, contamination=None,
                 threshold=None, label_frequency=1.0):
        super().__init__(target_precision=target_precision, precision_confidence=precision_confidence,
                         validation_fraction=validation_fraction, seed=seed, n_threads=n_threads,
                         contamination=contamination, threshold=threshold, label_frequency=label_frequency)
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter

    def _fit_estimator(self, M, y):
        from sklearn.exceptions import ConvergenceWarning as SkConvergence
        from sklearn.linear_model import LogisticRegression

        Z = _slog(M)
        self.median_ = np.nan_to_num(np.nanmedian(Z, axis=0), nan=0.0) if len(Z) else np.zeros(Z.shape[1])
        Z = np.where(np.isnan(Z), self.median_, Z)
        self.mean_ = Z.mean(axis=0)
        sd = Z.std(axis=0)
        # a constant column has a rounding-error spread (1e-17: np.mean of n equal floats need not be that
        # float); dividing by it turns the next dataset's slightly different constant into a 1e8 z-score
        self.scale_ = np.where(sd > 1e-9 * (1.0 + np.abs(self.mean_)), sd, 1.0)
        est = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkConvergence)
            est.fit((Z - self.mean_) / self.scale_, y)
        if any(issubclass(w.category, SkConvergence) for w in caught):
            warnings.warn(f"LogisticScorer stopped at max_iter={self.max_iter} before converging; "
                          "raise max_iter or C", ConvergenceWarning, stacklevel=3)
        self.estimator_ = est
        w = est.coef_.ravel()
        self.coef_ = pd.DataFrame({"feature": self.feature_names_in_, "weight": w, "odds_ratio": np.exp(w)}).iloc[
            np.argsort(-np.abs(w), kind="stable")].reset_index(drop=True)
        self.intercept_ = float(est.intercept_[0])

    def _standardise(self, M):
        # in place on the one new matrix _slog makes: the same values as
        # (np.where(np.isnan(Z), median, Z) - mean) / scale, without three more copies of it
        Z = _slog(M)
        np.copyto(Z, np.broadcast_to(self.median_, Z.shape), where=np.isnan(Z))
        Z -= self.mean_
        Z /= self.scale_
        return Z

    def _proba(self, M):
        return self.estimator_.predict_proba(self._standardise(M))[:, 1]

    def _contributions(self, M):
        return self._standardise(M) * self.estimator_.coef_.ravel()


class BoostingScorer(_SupervisedScorer):
    """Gradient-boosted trees (scikit-learn ``HistGradientBoostingClassifier``).

    Missing values are handled natively. ``reasons`` uses *occlusion*: a
    feature's contribution to a row is how far the row's log-odds fall when
    that feature alone is replaced by its training median. It is cheap
    (one prediction per feature) and honest about what it is: not SHAP,
    interactions are not split between features, and contributions need not
    sum to the score. Use it on the flagged rows, not on millions.

    Parameters
    ----------
    max_iter : int, default=200
    learning_rate : float, default=0.1
    max_leaf_nodes : int, default=31
    l2_regularization : float, default=1.0
    class_weight : {"balanced", None}, default=None
    target_precision, precision_confidence, validation_fraction, seed, n_threads, contamination, threshold
        As in :class:`LogisticScorer`; ``n_threads`` holds while fitting.
    score_threads : int or None, default=None
        OpenMP threads while scoring a block of :data:`PARALLEL_ROWS` rows or more (``decision_function``,
        ``reasons``); None for all cores. Smaller calls run on one thread. Each row's prediction is the same
        whatever the count (trees are summed per row in one order); unlike fitting, scoring many rows is a few
        long parallel loops, so it gains from more cores (large's 1M accounts, 200 trees: 10.0 s on one core,
        5.2 s on two; the reasons of 20,000 of them 11.8 and 6.4 s).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        As in :class:`LogisticScorer`.
    estimator_ : sklearn.ensemble.HistGradientBoostingClassifier

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"account_id": range(400), "speed": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> y = (X.speed > 1).astype(int)
    >>> m = BoostingScorer(seed=0, max_iter=50).fit(X, y)
    >>> m.reasons(X.iloc[:1]).columns.tolist()
    ['entity_id', 'reason', 'contributions']
    """

    def __init__(self, *, max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0,
                 class_weight=None, target_precision=0.9, precision_confidence=0.9, validation_fraction=0.25,
                 seed=None, n_threads=1, contamination=None, threshold=None, label_frequency=1.0,
                 score_threads=None):
        super().__init__(target_precision=target_precision, precision_confidence=precision_confidence,
                         validation_fraction=validation_fraction, seed=seed, n_threads=n_threads,
                         contamination=contamination, threshold=threshold, label_frequency=label_frequency)
        self.score_threads = score_threads
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight

    def _fit_estimator(self, M, y):
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.estimator_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization, class_weight=self.class_weight, early_stopping=False,
            random_state=self._seed_int).fit(M, y)
        self.median_ = np.nan_to_num(np.nanmedian(M, axis=0), nan=0.0) if len(M) else np.zeros(M.shape[1])

    def _proba(self, M):
        from threadpoolctl import threadpool_limits

        # a block of rows at a time: each tree walks rows that stay in cache (large's 1M accounts: 5.4 -> 4.4 s).
        # A block of PARALLEL_ROWS or more is scored on score_threads (None: as the caller's limits stand, all
        # cores outside a fit; a model kept by an older version has no score_threads), a smaller one on one
        # thread: a tree's parallel loop over a few rows costs more than it saves, and far more when the cores
        # are shared (the test suite's two workers took 3-5x longer)
        out = np.empty(len(M))
        for a in range(0, len(M), _PREDICT_BLOCK):
            block = M[a:a + _PREDICT_BLOCK]
            threads = getattr(self, "score_threads", None) if len(block) >= PARALLEL_ROWS else 1
            with threadpool_limits(limits=threads):
                out[a:a + _PREDICT_BLOCK] = self.estimator_.predict_proba(block)[:, 1]
        return out

    def _scoring_threads(self):
        from contextlib import nullcontext

        return nullcontext()  # _proba sets the threads of each block of rows it predicts

    def _contributions(self, M):
        base = _logit(self._proba(M))
        C = np.empty_like(M, dtype=float)
        n, k = M.shape
        # one prediction per feature, the occluded copies of a few features stacked into one call of up to
        # _PREDICT_BLOCK rows: 20,000 flagged rows a call ran on one thread; three features' copies (60,000
        # rows) run on score_threads, as fast per row (large: 11.8 s on one thread, 6.4 s on two)
        per = max(1, _PREDICT_BLOCK // max(n, 1))
        for start in range(0, k, per):
            cols = range(start, min(start + per, k))
            block = np.tile(M, (len(cols), 1))
            for b, j in enumerate(cols):
                block[b * n:(b + 1) * n, j] = self.median_[j]
            p = _logit(self._proba(block))
            for b, j in enumerate(cols):
                C[:, j] = base - p[b * n:(b + 1) * n]
        return C


def union_thresholds(models, *, target_precision=0.9, confidence=0.9, label_frequency=1.0) -> dict:
    """Thresholds under which the *union* of several validated scorers still reaches ``target_precision``.

    Each scorer's ``threshold_`` is validated alone; a stage that flags where *any* of them flags is less
    precise than each (demo-small, trained on seed 1000: logistic 0.943 and boosting 0.938 on validation,
    their union 0.898). On the validation rows the scorers share (same seed, same labels: the same stratified
    hold-out), each score is put on a common scale, its log-odds above its own threshold,
    ``z_m = logit(s_m) - logit(threshold_m)``; the union flags where ``max_m z_m > 0``. The lowest shift
    ``delta >= 0`` whose flagged set ``max_m z_m > delta`` has a Wilson lower bound on precision (at
    ``confidence``) reaching the target is added to every scorer's log-odds threshold. A union that is
    already precise enough keeps the thresholds (``delta = 0``): this only ever tightens.

    Parameters
    ----------
    models : dict of str to fitted scorer
        Scorers fitted with validation (``validation_index_``, ``validation_scores_``, ``validation_y_``).
    target_precision : float, default=0.9
    confidence : float or None, default=0.9
        As in :class:`LogisticScorer` (``precision_confidence``).
    label_frequency : float, default=1.0
        Share of fraud that is labelled (positive-unlabelled labels below 1; see
        :func:`fraudkit.identification.base.threshold_for_precision`).

    Returns
    -------
    dict
        ``thresholds`` (name -> threshold), ``delta`` (log-odds shift; ``nan`` when not applicable: fewer
        than two validated scorers or different validation rows; ``inf`` when no shift reaches the target,
        thresholds then unchanged), ``precision_before`` and ``precision_after`` (observed union precision
        on the validation rows).

    Examples
    --------
    >>> import numpy as np
    >>> class M:  # two scorers that each miss different negatives
    ...     def __init__(self, s, t):
    ...         self.threshold_, self.validation_scores_ = t, np.asarray(s)
    ...         self.validation_index_, self.validation_y_ = np.arange(6), np.array([1, 1, 1, 0, 0, 0])
    >>> a, b = M([0.9, 0.8, 0.1, 0.6, 0.1, 0.1], 0.5), M([0.1, 0.9, 0.9, 0.1, 0.7, 0.1], 0.5)
    >>> out = union_thresholds({"a": a, "b": b}, target_precision=0.99, confidence=None)
    >>> round(out["precision_before"], 2), round(out["precision_after"], 2), out["thresholds"]["a"] > 0.6
    (0.6, 1.0, True)
    """
    names = list(models)
    thr = {n: float(models[n].threshold_) for n in names}
    out = {"thresholds": dict(thr), "delta": float("nan"), "precision_before": float("nan"),
           "precision_after": float("nan")}
    val = [n for n in names if getattr(models[n], "validation_index_", None) is not None]
    if len(val) < 2 or len(val) < len(names):
        return out
    idx = models[val[0]].validation_index_
    if not all(np.array_equal(models[n].validation_index_, idx) for n in val):
        return out
    y = np.asarray(models[val[0]].validation_y_, dtype=int)
    z = np.column_stack([_logit(models[n].validation_scores_) - _logit(thr[n]) if np.isfinite(thr[n])
                         else np.full(len(y), -np.inf) for n in val])
    u = z.max(axis=1)
    hit = u > 0
    c = float(label_frequency)
    out["precision_before"] = min(1.0, float(y[hit].mean()) / c) if hit.any() else float("nan")
    delta = _threshold_for_precision_bound(np.where(np.isfinite(u), u, -1e9), y, target_precision, confidence,
                                           label_frequency=c)
    if not np.isfinite(delta):
        out["delta"] = float("inf")
        return out
    delta = max(0.0, float(delta))
    out["delta"] = delta
    hit = u > delta
    out["precision_after"] = min(1.0, float(y[hit].mean()) / c) if hit.any() else float("nan")
    if delta == 0.0:
        return out
    out["thresholds"] = {n: (float(1 / (1 + np.exp(-(_logit(thr[n]) + delta)))) if np.isfinite(thr[n]) else thr[n])
                         for n in val}
    return out


@dataclass(frozen=True)
class TimeSplit:
    """An honest train/test split in time (see :func:`time_split`)."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    typology_test: pd.Series
    train_end: pd.Timestamp
    label_known_until: pd.Timestamp
    test_end: pd.Timestamp
    n_unknown_label: int


def labels_for(ids, labels: pd.DataFrame, *, positives=DEFAULT_POSITIVES, entity_type="account"):
    """Binary target and typology for entity ``ids`` from a labels table.

    Returns ``(y, typology)``: ``y`` is 1 where the entity carries one of
    ``positives``; ``typology`` is its first fraud typology, else its honest
    look-alike label, else ``"honest"``.

    Examples
    --------
    >>> import pandas as pd
    >>> lab = pd.DataFrame({"entity_type": ["account"], "entity_id": [2], "typology": ["device_farm"]})
    >>> y, t = labels_for([1, 2], lab)
    >>> y.tolist(), t.tolist()
    ([0, 1], ['honest', 'device_farm'])
    """
    lab = labels[labels.entity_type == entity_type]
    ids = pd.Series(np.asarray(ids))
    key = lab.entity_id.astype(str)
    pos = lab.typology.isin(positives)
    if tuple(positives) == DEFAULT_POSITIVES:
        pos = pos | lab.typology.astype("string").str.startswith(CUSTOM_FRAUD_PREFIX).fillna(False)
    first_pos = lab[pos].assign(k=key[pos]).drop_duplicates("k").set_index("k").typology
    first_any = lab.assign(k=key).drop_duplicates("k").set_index("k").typology
    k = ids.astype(str)
    typ = k.map(first_pos)
    typ = typ.where(typ.notna(), k.map(first_any))
    typ = typ.where(typ.notna(), "honest")
    return k.isin(first_pos.index).to_numpy().astype(int), pd.Series(typ.to_numpy(), name="typology")


def time_split(data, labels, *, train_days, label_delay_days=0, features=None, positives=DEFAULT_POSITIVES):
    """Train on earlier days, test on later ones; no account is in both.

    The data start ``t0`` is the first interaction's day. Training features
    are computed as of ``train_end = t0 + train_days``; labels are treated as
    known only for accounts first active before ``train_end - label_delay_days``
    (a label arrives that long after the behaviour). Test rows are the accounts
    first active in ``[train_end, test_end)``, with features as of the data's
    end. An account belongs to the side of its *first* event, so the same
    account is never in both; accounts first active inside the delay gap are in
    neither (``n_unknown_label``).

    Parameters
    ----------
    data : Dataset or dict of DataFrames
    labels : pandas.DataFrame
        The labels table (read here only: this is the supervised split).
    train_days : float
    label_delay_days : float, default=0
    features : callable(data, as_of=...) -> DataFrame, default=None
        Default :func:`fraudkit.capability.features.account_behaviour`.
    positives : tuple of str

    Examples
    --------
    >>> from fraudkit.identification.models import time_split
    >>> callable(time_split)
    True
    """

    features = account_behaviour if features is None else features
    with open_source(data) as src:
        first = first_activity(src)
        end = src.reference_time()
    if first.empty:
        raise MissingInputError("time_split: the dataset has no activity")
    t0 = first.first_ts.min().normalize()
    train_end = t0 + pd.Timedelta(days=float(train_days))
    known = train_end - pd.Timedelta(days=float(label_delay_days))
    if train_end >= end:
        raise ValueError(f"train_days={train_days} leaves no test period (data ends {end})")
    train_ids = first.account_id[first.first_ts < known]
    test_ids = first.account_id[first.first_ts >= train_end]
    X_train = features(data, as_of=train_end)
    X_train = X_train[X_train.account_id.isin(train_ids)].reset_index(drop=True)
    X_test = features(data, as_of=end)
    X_test = X_test[X_test.account_id.isin(test_ids)].reset_index(drop=True)
    y_train, _ = labels_for(X_train.account_id, labels, positives=positives)
    y_test, typ = labels_for(X_test.account_id, labels, positives=positives)
    return TimeSplit(X_train, y_train, X_test, y_test, typ, train_end, known, end,
                     int(((first.first_ts >= known) & (first.first_ts < train_end)).sum()))


# --- private ------------------------------------------------------------------


def _matrix(X, names=None):
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame with named feature columns, got {type(X).__name__}")
    keyed = bool(len(X.columns)) and X.columns[0] in ENTITY_KEYS
    ids = X.iloc[:, 0].to_numpy() if keyed else X.index.to_numpy()
    columns = X.columns[1:] if keyed else X.columns
    if names is None:
        names = [c for c in columns if X[c].dtype.kind in "biuf"]
    else:
        missing = [c for c in names if c not in set(columns)]
        if missing:
            raise MissingInputError(f"X lacks feature column(s) the scorer was fitted on: {', '.join(missing[:10])}"
                                    f"{' ...' if len(missing) > 10 else ''}; compute the same feature set")
    # column by column into one new matrix, in the column-major order X[names].to_numpy() gives (the same
    # products, sums and trees), infinities as NaN, rounded in place: one copy of the features, not four (large's
    # 1M accounts x 71 features: 0.57 GB each)
    position = {c: j for j, c in enumerate(X.columns)}
    M = np.empty((len(X), len(names)), order="F")
    for j, c in enumerate(names):
        M[:, j] = X.iloc[:, position[c]].to_numpy(dtype=float, na_value=np.nan)
    M[np.isinf(M)] = np.nan
    return ids, _quantise(M, out=M), list(names)


def _quantise(M, bits=30, *, out=None):
    """Round every value to ``bits`` bits of mantissa (~9 significant digits).

    Features aggregated in parallel (DuckDB) differ in their last bits run to run; gradient boosting bins
    on the exact values, so without this its trees, scores and validated threshold moved run to run
    (demo-small: threshold 0.160 vs 0.155, scores up to 0.05 apart). Rounded on the float's bits, the same
    values as ``np.ldexp(np.round(m * 2**bits) / 2**bits, e)`` of ``m, e = np.frexp(M)`` (large's 1M accounts x 91
    features: 5.0 -> 0.6 s).
    """
    M = np.asarray(M, dtype=np.float64)
    if not (M.flags.c_contiguous or M.flags.f_contiguous):
        M = np.ascontiguousarray(M)
    if out is None:
        out = np.empty_like(M)  # the same memory order: both flattened as they lie in memory, views
    elif out is not M:
        raise ValueError("_quantise: out is a new array (None) or M itself")
    src, res = M.ravel(order="K"), out.ravel(order="K")
    drop = np.uint64(53 - bits)  # low bits of the 52-bit fraction dropped, rounded half to even
    keep = ~((np.uint64(1) << drop) - np.uint64(1))
    below = (np.uint64(1) << (drop - np.uint64(1))) - np.uint64(1)
    for a in range(0, src.size, _QUANTISE_BLOCK):  # blocks that stay in cache
        u = src[a:a + _QUANTISE_BLOCK].view(np.uint64)
        exponent = (u >> np.uint64(52)) & np.uint64(0x7FF)
        up = ((u >> drop) & np.uint64(1)) + below + u
        up &= keep
        # normal numbers on their bits (a carry into the exponent is the rounding up to the next power of two);
        # zeros, infinities and NaN unchanged
        r = np.where((exponent != 0) & (exponent != 0x7FF), up, u).view(np.float64)
        tiny = (exponent == 0) & ((u << np.uint64(1)) != 0)
        if tiny.any():  # subnormals keep ``bits`` significant bits of their own, as frexp and ldexp round them
            m, e = np.frexp(r[tiny])
            r[tiny] = np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e)
        res[a:a + _QUANTISE_BLOCK] = r
    return out


def _key_order(ids):
    """Positions of ``ids`` in sorted key order (keys of mixed types sort as text)."""
    try:
        return np.argsort(np.asarray(ids), kind="stable")
    except TypeError:
        return np.argsort(pd.Series(ids).astype(str).to_numpy(), kind="stable")


def _stratified_holdout(y, fraction, rng):
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    va = []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        k = max(1, int(round(fraction * len(idx))))
        if k >= len(idx):
            raise ValueError(f"too few rows of class {cls} ({len(idx)}) to hold out a validation part")
        va.append(rng.choice(idx, size=k, replace=False))
    va = np.sort(np.concatenate(va))
    tr = np.setdiff1d(np.arange(len(y)), va)
    return tr, va


def _threshold_for_precision_bound(scores, y, precision, confidence, *, label_frequency=1.0):
    """Lowest threshold whose Wilson lower bound on precision (``score > t``) reaches ``precision``.

    ``confidence=None`` is :func:`fraudkit.identification.base.threshold_for_precision` (observed precision).
    With ``label_frequency`` ``c < 1`` the bound is that of the labelled share, divided by ``c`` (capped at 1).
    """
    if confidence is None:
        return threshold_for_precision(scores, y, precision, label_frequency=label_frequency)
    from scipy.stats import norm

    z = float(norm.ppf(confidence))
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], np.asarray(y, dtype=int)[order]
    k = np.arange(1, len(ss) + 1)
    p = np.cumsum(yy) / k
    lower = wilson_bounds(p, k, z=z)[0]
    lower = np.minimum(1.0, lower / float(label_frequency))
    last_of_run = np.r_[ss[1:] != ss[:-1], True]
    ok = np.flatnonzero(last_of_run & (lower >= precision))
    if len(ok) == 0:
        return float("inf")
    i = ok[-1]
    return float((ss[i] + ss[i + 1]) / 2) if i + 1 < len(ss) else float(np.nextafter(ss[i], -np.inf))


def _slog(M):
    """``np.sign(M) * np.log1p(np.abs(M))``, the same values, in one new array (and the signs') instead of four."""
    Z = np.abs(M)
    np.log1p(Z, out=Z)
    Z *= np.sign(M)  # a product of two floats is the same in either order
    return Z


def _logit(p):
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _fmt(v) -> str:
    return "nan" if np.isnan(v) else f"{v:.3g}"
