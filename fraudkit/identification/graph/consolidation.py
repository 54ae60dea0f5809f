"""The consolidation test as a detector: receipts aligned beyond what delivery delays explain.

Crowdsourced scalpers forward goods to a few consolidation points, so receipts of one item at one
endpoint align even when the orders do not. The test itself is a capability computed from the orders
table (:func:`fraudkit.capability.r_ab.consolidation_scores`, next to R(A,B), whose address
normalisation it shares); :class:`ConsolidationScorer` puts it on the scoring contract of
:class:`fraudkit.identification.base.BaseScorer`, one score per ordering account.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.capability.r_ab import consolidation_scores
from fraudkit.errors import MissingInputError
from fraudkit.identification.base import BaseScorer, inclusive_threshold

__all__ = ["ConsolidationScorer"]


class ConsolidationScorer(BaseScorer):
    """Accounts whose receipts align at a shared endpoint beyond chance (crowd-scalper forwarding).

    Parameters
    ----------
    window : timedelta-like, default="4h"
        Receipts within ``window / 2`` of each other count as aligned.
    alpha : float, default=0.01
        Family-wise error rate (Bonferroni over every order tested).
    min_accounts : int, default=3
        (endpoint, product) groups with fewer distinct accounts are not tested.
    max_group : int, default=2000
        Larger groups are not tested.
    chunk_pairs : int, default=20_000_000
        Order pairs expanded at once (memory bound; no effect on the result).
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float, default=inclusive_threshold(0.5)
        Flags scores of 0.5 (family-wise significance) and above (the graph stage's
        ``evidence_threshold``), stored as the largest float below 0.5.

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per account with an
        order (first-appearance order); accounts never tested score 0.
    table_ : pandas.DataFrame
        What :func:`fraudkit.capability.r_ab.consolidation_scores` returns (tested accounts only), with
        its ``attrs`` (``n_tests``, ``log10_threshold``, ``skipped_groups``).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2024-06-01")
    >>> o = pd.DataFrame({"account_id": list("abcdef"), "product_id": 1, "address": ["hub"] * 6,
    ...     "ts": [t + pd.Timedelta(hours=h) for h in (0, 5, 11, 17, 23, 29)],
    ...     "received_at": [t + pd.Timedelta(days=4, minutes=m) for m in (0, 20, 40, 60, 80, 100)]})
    >>> bg = pd.DataFrame({"account_id": [f"z{i}" for i in range(400)], "product_id": 2,
    ...     "address": [f"home{i}" for i in range(400)], "ts": t,
    ...     "received_at": [t + pd.Timedelta(hours=12 + i % 96) for i in range(400)]})
    >>> est = ConsolidationScorer().fit(pd.concat([o, bg]))
    >>> est.entity_ids_[est.labels_ == 1].tolist()
    ['a', 'b', 'c', 'd', 'e', 'f']
    """

    stage = "graph"

    def __init__(self, *, window="4h", alpha=0.01, min_accounts=3, max_group=2000, chunk_pairs=20_000_000,
                 contamination=None, threshold=inclusive_threshold(0.5)):
        super().__init__(contamination=contamination, threshold=threshold)
        self.window = window
        self.alpha = alpha
        self.min_accounts = min_accounts
        self.max_group = max_group
        self.chunk_pairs = chunk_pairs

    def fit(self, orders: pd.DataFrame, *, endpoints=None):
        """Run the consolidation test on ``orders`` and score every ordering account.

        Parameters
        ----------
        orders : pandas.DataFrame
            ``account_id``, ``product_id``, ``ts``, ``received_at`` and ``address`` and/or
            ``receiver_phone``.
        endpoints : fraudkit.capability.r_ab.OrderEndpoints, optional
            :func:`~fraudkit.capability.r_ab.order_endpoints` of ``orders``, from a caller that computed them.

        Returns
        -------
        self
        """
        if not isinstance(orders, pd.DataFrame) or "account_id" not in orders.columns:
            raise MissingInputError("ConsolidationScorer.fit: orders must be a DataFrame with account_id, "
                                    "product_id, ts, received_at and address or receiver_phone")
        table = consolidation_scores(orders, window=self.window, alpha=self.alpha, min_accounts=self.min_accounts,
                                     max_group=self.max_group, chunk_pairs=self.chunk_pairs, endpoints=endpoints)
        self.table_ = table
        ids = pd.unique(orders["account_id"].dropna().to_numpy())
        by_id = table.set_index("account_id")
        score = by_id["score"].reindex(ids).fillna(0.0).to_numpy(float)
        n = by_id["n_aligned"].reindex(ids).fillna(0).to_numpy(np.int64)
        lp = by_id["log10_p"].reindex(ids).fillna(0.0).to_numpy(float)
        reasons = np.full(len(ids), "", dtype=object)
        hit = score > 0
        reasons[hit] = [f"receipts aligned with {k} other accounts' at a shared endpoint (log10 p {p:.1f})"
                        for k, p in zip(n[hit], lp[hit])]  # formatting only, accounts with evidence
        return self._set_scores(ids, score, reasons)
