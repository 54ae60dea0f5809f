"""Positive-unlabelled labels: how much of the fraud the analyst's labels cover.

The analyst's own labels are mostly positive (bans, blacklists): an account without a label may still be
fraud. Under the usual assumption that the labelled fraud is a random part of all fraud ("selected
completely at random"), the probability that an account is labelled is ``c`` times the probability that it is
fraud, where ``c``, the **label frequency**, is the share of fraud that carries a label. Elkan and Noto (2008)
estimate it with a classifier ``g`` of labelled against unlabelled accounts: ``c = mean g(x)`` over the
labelled accounts (their estimator e1), each scored by a model that did not see it (cross-fitting here).

A threshold's precision is then ``min(1, labelled flagged / c / flagged)``
(:func:`fraudkit.identification.base.threshold_for_precision`). The estimate is rough with a handful of labels
and lower when fraud and honest accounts overlap; the analyst may state ``c`` instead
(``fraudkit score --labels L --label-coverage 0.05``), e.g. from a review's prevalence estimate.

References
----------
Elkan, C. and Noto, K. (2008). Learning classifiers from only positive and unlabeled data. KDD.
Bekker, J. and Davis, J. (2018). Estimating the class prior in positive and unlabeled data through decision
tree induction. AAAI.
"""

from __future__ import annotations

import numpy as np

from fraudkit.errors import FraudkitError
from fraudkit.identification.base import wilson_bounds
from fraudkit.identification.models import LogisticScorer
from fraudkit.randomness import check_random_state

__all__ = ["estimate_label_frequency"]


def estimate_label_frequency(X, y, *, seed=0, n_splits=5, min_region=20, confidence=0.9) -> float:
    """Share of the fraud that is labelled, from the purest region a cross-fitted ranking finds.

    Every account is scored by a model of "labelled fraud" fitted without its fold; along that ranking, the
    top ``k`` accounts hold ``m_k`` labelled ones. If the top ``k`` were all fraud, ``m_k / k`` would be the
    label frequency; they hold some honest accounts, so it is at most that. The estimate is the largest
    lower confidence bound (Wilson, at ``confidence``) of ``m_k / k`` over ``k >= min_region``: the region
    where labelled accounts are densest, discounted for how few they are (in the spirit of Bekker and
    Davis's TIcE). Elkan and Noto's mean of a calibrated ``g(x)`` over the labelled accounts collapses to the
    labelled share when labels are very few (13 of 6,000), so it is not used.

    Parameters
    ----------
    X : pandas.DataFrame
        Account features (key first, as for :class:`fraudkit.identification.models.LogisticScorer`).
    y : array-like of int
        1 for an account labelled fraud, 0 for every other account (unlabelled or honest).
    seed : int, default=0
    n_splits : int, default=5
        Folds of the cross-fitting.
    min_region : int, default=20
        Smallest top-``k`` region considered.
    confidence : float, default=0.9

    Returns
    -------
    float
        In ``(0, 1]``; NaN when no region holds labelled accounts at more than twice their overall share (the
        labels are too few, or too unlike each other, for a ranking to find where fraud is): the coverage
        cannot be told from the data.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> fraud = rng.random(4000) < 0.1
    >>> f = np.where(fraud, 4.0, 0.0) + rng.normal(size=4000)
    >>> y = (fraud & (rng.random(4000) < 0.3)).astype(int)   # 30 % of the fraud labelled
    >>> round(estimate_label_frequency(pd.DataFrame({"account_id": np.arange(4000), "f": f}), y, seed=0), 2)
    0.34
    """
    from scipy.stats import norm

    y = np.asarray(y, dtype=int)
    n_pos = int(y.sum())
    if n_pos < 2 or n_pos == len(y):
        raise FraudkitError(f"estimating the label frequency needs at least 2 labelled and some unlabelled "
                            f"accounts (got {n_pos} of {len(y)}); state it instead (--label-coverage)")
    rng = check_random_state(seed)
    k_folds = min(n_splits, n_pos)
    folds = np.empty(len(y), dtype=int)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        folds[idx] = rng.permutation(np.arange(len(idx)) % k_folds)
    g = np.empty(len(y))
    for k in range(k_folds):
        test = folds == k
        m = LogisticScorer(threshold=0.5, seed=int(rng.integers(2**31 - 1)))
        m.fit(X.iloc[np.flatnonzero(~test)], y[~test])
        g[test] = m.decision_function(X.iloc[np.flatnonzero(test)])
    order = np.argsort(-g, kind="stable")
    m_k = np.cumsum(y[order]).astype(float)
    k = np.arange(1, len(y) + 1, dtype=float)
    z = float(norm.ppf(confidence))
    p = m_k / k
    lower = wilson_bounds(p, k, z=z)[0]
    best = float(lower[int(min(min_region, len(y))) - 1:].max())
    if best <= 2 * n_pos / len(y):
        return float("nan")
    return float(min(best, 1.0))
