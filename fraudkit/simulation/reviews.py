"""A reviews-only platform dataset: accounts, notes and comments, nothing else.

Real exports often reach the kit in this shape (a review site mapped to the platform contract): no
devices, IPs, phones, logins or orders, only who commented on what and when. Honest reviewers are
heavy-tailed and spread their comments over many notes; review spammers are many low-activity
accounts, most of them commenting on one or two promoted notes in bursts. The pipeline must run on
it (every stage degrades with a note) and its combined score must rank spammers above chance.

>>> t = generate_reviews(n_accounts=200, seed=0)
>>> sorted(t)
['accounts', 'interactions', 'labels', 'notes']
>>> set(t["interactions"]["action"])
{'comment'}
"""

from __future__ import annotations

__all__ = ["generate_reviews", "REVIEW_SPAM"]

import numpy as np
import pandas as pd

from fraudkit.randomness import check_random_state

REVIEW_SPAM = "fraud:review_spam"
"""The typology label of the spam accounts: a custom fraud typology declared in the labels
(``docs/data-contract.md``)."""

_START = pd.Timestamp("2024-01-01")


def generate_reviews(*, n_accounts: int = 600, spam_share: float = 0.15, n_notes: int = 120,
                     days: int = 60, seed=0) -> dict[str, pd.DataFrame]:
    """Tables of a reviews-only platform dataset, deterministic by ``seed``.

    Parameters
    ----------
    n_accounts : int, default=600
        Reviewer accounts (sellers who author the notes are added on top).
    spam_share : float, default=0.15
        Share of reviewers who are review spammers.
    n_notes : int, default=120
        Notes (the reviewed items).
    days : int, default=60
        Length of the observed period.
    seed : int, default=0

    Returns
    -------
    dict of DataFrame
        ``accounts`` (``phone`` all null), ``notes``, ``interactions`` (every action a ``comment``,
        ``device_id`` and ``ip`` all null, times to the second) and ``labels`` (spammers as
        ``fraud:review_spam``).
    """
    rng = check_random_state(seed)
    n_spam = int(round(spam_share * n_accounts))
    n_sellers = max(n_notes // 6, 1)
    ids = 10**9 + rng.choice(10**7, size=n_accounts + n_sellers, replace=False) * 97  # scattered, not ordered
    reviewers, sellers = ids[:n_accounts], ids[n_accounts:]
    spam = np.zeros(n_accounts, dtype=bool)
    spam[rng.choice(n_accounts, size=n_spam, replace=False)] = True

    reg_days = rng.uniform(-300, days - 1, size=n_accounts)
    reg_days[spam] = rng.uniform(0, days - 5, size=n_spam)  # spammers are registered in the window
    accounts = pd.DataFrame({
        "account_id": np.concatenate([reviewers, sellers]).astype(str),
        "registered_at": _START + pd.to_timedelta(np.concatenate([reg_days, rng.uniform(-400, -100, n_sellers)]),
                                                  unit="D").floor("s"),
        "register_channel": rng.choice(["app", "web", "mini_program"], size=n_accounts + n_sellers),
        "phone": pd.Series(pd.NA, index=range(n_accounts + n_sellers), dtype="string"),
    })
    note_ids = (10**11 + rng.choice(10**7, size=n_notes, replace=False) * 89).astype(str)
    notes = pd.DataFrame({
        "note_id": note_ids,
        "author_id": sellers[rng.integers(0, n_sellers, n_notes)].astype(str),
        "created_at": _START + pd.to_timedelta(rng.uniform(-200, days / 2, n_notes), unit="D").floor("s"),
        "category": rng.choice(["food", "beauty", "travel", "tech"], size=n_notes),
    })
    popularity = rng.pareto(1.2, n_notes) + 1
    popularity /= popularity.sum()
    promoted = rng.choice(n_notes, size=max(n_notes // 20, 2), replace=False)

    rows = []
    for i in range(n_accounts):
        start = max(reg_days[i], 0.0)
        if spam[i]:
            k = int(rng.integers(1, 4))
            targets = rng.choice(promoted, size=k, replace=True if rng.random() < 0.6 else False)
            burst = rng.uniform(start, days)
            when = burst + rng.exponential(0.05, k)
        else:
            k = int(min(rng.zipf(1.6), 80)) + 1
            targets = rng.choice(n_notes, size=k, p=popularity)
            when = rng.uniform(start, days, k)
        for t, w in zip(targets, np.minimum(when, days - 1e-6)):
            rows.append((reviewers[i], note_ids[t], w))
    it = pd.DataFrame(rows, columns=["account_id", "target_id", "day"])
    it = it.sort_values(["day", "account_id"], kind="stable").reset_index(drop=True)
    interactions = pd.DataFrame({
        "event_id": np.arange(1, len(it) + 1).astype(str),
        "ts": (_START + pd.to_timedelta(it["day"], unit="D")).dt.floor("s"),
        "account_id": it["account_id"].astype(str),
        "device_id": pd.Series(pd.NA, index=it.index, dtype="string"),
        "ip": pd.Series(pd.NA, index=it.index, dtype="string"),
        "action": "comment",
        "target_id": it["target_id"].astype(str),
    })
    labels = pd.DataFrame({"entity_type": "account", "entity_id": reviewers[spam].astype(str),
                           "typology": REVIEW_SPAM, "campaign_id": pd.Series(pd.NA, index=range(n_spam),
                                                                             dtype="string")})
    return {"accounts": accounts, "notes": notes, "interactions": interactions, "labels": labels}
