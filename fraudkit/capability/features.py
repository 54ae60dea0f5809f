"""Stage 1: per-entity behaviour features, point-in-time correct.

Every function takes a :class:`fraudkit.data.dataset.Dataset` or a dict of contract
DataFrames and returns a pandas DataFrame whose first column is the entity key.
The work is done in DuckDB SQL (window functions for sliding windows), so the
``large`` scenario runs in minutes. With ``as_of`` only events strictly before
it are read (and later-known fields such as ``received_at`` are hidden).

Counts are 0 when an entity has no events; ratios that are undefined (a gap CV
with fewer than three events, a share of zero orders) are NaN. Rules read NaN
as "condition false"; :class:`fraudkit.identification.models.LogisticScorer` imputes medians.

Feature columns (the names the default rule set is written against)
-----------------------------------------------------------------------
account_features (key ``account_id``)
    Identity: ``register_channel`` (str), ``account_age_days``, ``has_phone``,
    ``accounts_per_phone``, ``n_bindings``.
    Activity: ``n_actions``, ``n_active_days``, ``n_targets``,
    ``share_view``, ``share_like``, ``share_collect``, ``share_comment``,
    ``share_share``, ``share_follow``, ``like_view_ratio`` (likes+collects per
    view), ``max_actions_per_minute``, ``max_actions_per_hour``,
    ``max_actions_per_day`` (sliding windows ending at each event),
    ``age_at_first_action_days``, ``mean_age_at_action_days``.
    Rhythm: ``hour_entropy`` (bits, 0..log2 24), ``night_share`` (00:00-06:00),
    ``gap_median_s``, ``gap_cv``, ``same_gap_share`` (consecutive gaps within
    max(1 s, 2%) of each other).
    Targets: ``low_pop_target_share`` (engagements on notes in the bottom
    quartile of distinct viewers), ``mean_target_pop_pct``,
    ``top_target_share``.
    Environment: ``n_devices``, ``n_ips``, ``n_ip24``, ``null_device_share``,
    ``max_accounts_per_device``, ``max_accounts_per_ip``,
    ``max_accounts_per_ip24``, ``emulator_device_share``,
    ``rooted_device_share``, ``max_env_contradiction``,
    ``max_fingerprint_devices``, ``unknown_device_share``,
    ``min_device_reg_span_days`` (over the account's shared devices, the
    smallest spread of registration dates of the accounts on one device: a
    family registers years apart, a farm or a nurturing batch within weeks;
    NaN when no device is shared).
    Co-device targets (attackers on one device act on the same targets at
    the same time; family members sharing a tablet have their own tastes):
    over the accounts an account shares a device with (its co-device
    neighbours, see below), ``codevice_jaccard_max`` and
    ``codevice_jaccard_mean`` (Jaccard overlap of the two accounts' target
    sets: notes acted on, authors followed, products ordered) and
    ``codevice_sync_share`` (share of the account's targets that a
    co-device neighbour first acted on within :data:`CODEVICE_SYNC_WINDOW`
    of the account's own first action on it), NaN without a co-device
    neighbour (or without targets); ``n_codevice_sync_accounts`` (how many
    co-device neighbours share at least one target in sync with it, 0
    without any). Neighbours: on each device, accounts are
    ranked by ``account_id`` and each is paired with the
    :data:`CODEVICE_NEIGHBOURS` accounts before and after it, so a device
    with up to ``CODEVICE_NEIGHBOURS + 1`` accounts is compared in full and
    a hot device with ``n`` accounts costs ``2 n CODEVICE_NEIGHBOURS`` pairs,
    never ``n^2``.
    Commerce portrait: ``n_orders``, ``n_units``, ``n_products``,
    ``n_categories``, ``order_value``, ``discount_value`` (sum of list price x
    quantity - paid: the margin taken out of promotions, NetEase's gross-profit
    dimension signed so that higher is riskier), ``discount_share``,
    ``coupon_share``, ``promotion_share``, ``limited_stock_share``,
    ``max_orders_per_hour``, ``n_addresses``, ``n_receiver_phones``,
    ``received_share``, ``n_coupon_claims``.
    Lists: ``list_hits`` (active entries on the account), ``resource_list_hits``
    (its phone, devices, IPs and addresses that are listed).
    Rates (window-invariant versions of the counts above, which grow with the
    length of the data window: a 30-day dataset holds about twice the actions
    and sessions of a 14-day one): ``observed_days`` (the account's days
    inside the window, from the later of the data's first event and its
    registration to the reference time, at least one; see
    :func:`fraudkit.capability.accumulators.observed_days`),
    ``actions_per_day``, ``targets_per_day``, ``ips_per_day``,
    ``ip24_per_day``, ``orders_per_day``, ``units_per_day``,
    ``products_per_day``, ``order_value_per_day`` (count /
    ``observed_days``), ``active_day_share`` (active days / observed days,
    at most 1), ``actions_per_active_day`` (NaN without an active day),
    ``coupon_claims_per_promotion`` and ``discount_value_per_promotion``
    (coupons and promotional discounts come with promotions, not with days:
    per promotion running during the account's observed days, at least one;
    the count itself without a promotions table), and
    ``max_daily_accounts_per_ip`` / ``max_daily_accounts_per_ip24`` (over
    the account's IPs, the most accounts seen on one of them in one calendar
    day: a campus or carrier IP gathers more accounts the longer the window,
    its busiest day does not).

Which columns models use: :data:`WINDOW_COUNTS` lists the account and
sequence features that grow with the window's length; the behaviour stage
fits its models without them (their rates, shares and ratios stay), so a
model fitted on a 14-day window holds on a 30-day one. Rules read every
column, raw counts included (``n_actions >= 10`` as minimum evidence).
device_features (key ``device_id``)
    ``in_devices_table``, ``is_emulator``, ``is_rooted``,
    ``screen_model_share``, ``os_model_share``, ``env_contradiction``,
    ``fingerprint_devices``, ``fingerprint_accounts``, ``n_accounts``,
    ``n_events``, ``n_actions``, ``n_ips``, ``max_actions_per_hour``,
    ``new_account_share``.
ip_features (key ``ip``) and ip24_features (key ``ip24``, ``a.b.c.0/24``)
    ``n_accounts``, ``n_devices``, ``n_events``, ``n_actions``,
    ``null_device_share``, ``new_account_share``, ``actions_per_account``,
    ``n_orders``; ip24 adds ``n_ips``.
phone_features (key ``phone``)
    ``n_accounts``, ``n_orders``, ``n_order_accounts``, ``n_addresses``.
address_features (key ``address``)
    ``n_accounts``, ``n_orders``, ``n_units``, ``n_receiver_phones``,
    ``n_devices``, ``n_ips``, ``n_promotions``, ``n_products``,
    ``limited_stock_units``.
order_features (key ``order_id``)
    The order's own columns, ``category``, ``price``, ``discount``,
    ``limited_stock``, ``line_value``, ``discount_value``, ``has_coupon``,
    ``in_promotion``; the buyer's account features prefixed ``acct_``, the
    device's ``dev_``, the IP's ``ip_``, the address's ``addr_`` (entity
    features as of ``as_of``), and the default order accumulators ``acc_*``
    (exact at the order's time, see :mod:`fraudkit.capability.accumulators`).

An account's "new" means registered less than :data:`NEW_ACCOUNT_DAYS` days
before the reference time (``as_of`` or the end of the data).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from fraudkit.capability.accumulators import DEFAULT_ACCUMULATORS, compute, observed_days_sql, window_expr
from fraudkit.capability.ipranges import ip24_sql
from fraudkit.capability.sequences import (
    SEQUENCE_FEATURES,
    SEQUENCE_WINDOW_COUNTS,
    sequence_features_from_source,
)
from fraudkit.data.contract import EVENT_TABLES
from fraudkit.data.sqlsource import SqlSource, distinct_days, open_source

__all__ = [
    "account_features",
    "device_features",
    "ip_features",
    "ip24_features",
    "phone_features",
    "address_features",
    "order_features",
    "interaction_features",
    "entity_features",
    "drop_event_tables",
    "account_behaviour",
    "first_activity",
    "ACCOUNT_FEATURES",
    "WINDOW_COUNTS",
    "window_invariant",
    "NEW_ACCOUNT_DAYS",
    "CODEVICE_NEIGHBOURS",
    "CODEVICE_SYNC_WINDOW",
]

NEW_ACCOUNT_DAYS = 7
"""Accounts younger than this (days) count as new in ``new_account_share``."""

CODEVICE_NEIGHBOURS = 10
"""Co-device pairs per account and device: this many neighbours on each side in ``account_id`` order."""

CODEVICE_SYNC_WINDOW = "1 HOUR"
"""Two first actions on one target this close (DuckDB interval) count as synchronised."""

_ACTIONS = ("view", "like", "collect", "comment", "share", "follow")
_ENGAGE = "('like','collect','comment','share')"
_LOW_POP_PCT = 0.25

ACCOUNT_FEATURES = (
    "register_channel", "account_age_days", "has_phone", "accounts_per_phone", "n_bindings",
    "n_actions", "n_active_days", "n_targets", *(f"share_{a}" for a in _ACTIONS), "like_view_ratio",
    "max_actions_per_minute", "max_actions_per_hour", "max_actions_per_day",
    "age_at_first_action_days", "mean_age_at_action_days",
    "hour_entropy", "night_share", "gap_median_s", "gap_cv", "same_gap_share",
    "low_pop_target_share", "mean_target_pop_pct", "top_target_share",
    "n_devices", "n_ips", "n_ip24", "null_device_share", "max_accounts_per_device", "max_accounts_per_ip",
    "max_accounts_per_ip24", "emulator_device_share", "rooted_device_share", "max_env_contradiction",
    "max_fingerprint_devices", "unknown_device_share", "min_device_reg_span_days",
    "codevice_jaccard_max", "codevice_jaccard_mean", "codevice_sync_share", "n_codevice_sync_accounts",
    "n_orders", "n_units", "n_products", "n_categories", "order_value", "discount_value", "discount_share",
    "coupon_share", "promotion_share", "limited_stock_share", "max_orders_per_hour", "n_addresses",
    "n_receiver_phones", "received_share", "n_coupon_claims",
    "list_hits", "resource_list_hits",
    "observed_days", "actions_per_day", "active_day_share", "actions_per_active_day", "targets_per_day",
    "ips_per_day", "ip24_per_day", "max_daily_accounts_per_ip", "max_daily_accounts_per_ip24",
    "orders_per_day", "units_per_day", "products_per_day", "order_value_per_day",
    "coupon_claims_per_promotion", "discount_value_per_promotion",
)
"""Columns of :func:`account_features` after the key, in order."""

_PER_DAY = {"actions_per_day": "n_actions", "targets_per_day": "n_targets", "ips_per_day": "n_ips",
            "ip24_per_day": "n_ip24", "orders_per_day": "n_orders", "units_per_day": "n_units",
            "products_per_day": "n_products", "order_value_per_day": "order_value"}
_PER_PROMOTION = {"coupon_claims_per_promotion": "n_coupon_claims", "discount_value_per_promotion": "discount_value"}

WINDOW_COUNTS = (
    "observed_days", "n_actions", "n_active_days", "n_targets", "n_ips", "n_ip24", "max_accounts_per_ip",
    "max_accounts_per_ip24", "n_orders", "n_units", "n_products", "n_categories", "order_value", "discount_value",
    "n_coupon_claims", *SEQUENCE_WINDOW_COUNTS,
)
"""Account and sequence features that grow with the length of the data window (counts of events or of
things met over the whole window); models use their rates, shares and ratios instead (see
:func:`window_invariant`). Measured on ``demo-small`` seed 0 over 14 and 30 days: honest accounts' means
grow 1.5-2.9 times; the rates, shares and ratios kept move by less than a quarter."""

_BLOCKS = itertools.count()
_NO_FILL = ("max_env_contradiction", "max_fingerprint_devices")  # unknown without a devices table
_COUNT_PREFIXES = ("n_", "max_", "has_", "list_", "resource_list_", "accounts_per_", "in_devices",
                   "fingerprint_", "limited_stock_units")


def account_features(data, *, as_of=None) -> pd.DataFrame:
    """Behaviour, environment and commerce features of every account.

    Parameters
    ----------
    data : Dataset or dict of str to DataFrame
        Contract tables; ``accounts`` and ``interactions`` are required, the
        others (devices, logins, orders, products, coupon_claims, bindings,
        list_entries) add their features when present.
    as_of : timestamp-like, default=None
        Point-in-time cut: read only events strictly before it. Accounts
        registered at or after it are absent.

    Returns
    -------
    pandas.DataFrame
        One row per account: ``account_id`` then :data:`ACCOUNT_FEATURES`.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": [None, None]})
    >>> it = pd.DataFrame({"event_id": [1, 2, 3], "account_id": [1, 1, 2], "device_id": ["d", "d", None],
    ...                    "ip": ["1.2.3.4"] * 3, "action": ["view", "like", "like"], "target_id": [7, 7, 7],
    ...                    "ts": pd.to_datetime(["2024-01-02 10:00:00", "2024-01-02 10:00:30", "2024-01-03 00:00:00"])})
    >>> f = account_features({"accounts": acc, "interactions": it})
    >>> f.loc[f.account_id == 1, ["n_actions", "share_like", "max_actions_per_minute"]].values.tolist()
    [[2.0, 0.5, 2.0]]
    """
    with open_source(data, as_of=as_of) as src:
        return account_features_from_source(src)


def device_features(data, *, as_of=None) -> pd.DataFrame:
    """Environment and sharing features of every device seen (table or events).

    ``screen_model_share`` is the share of the model's distinct fingerprints
    that report this screen (``os_model_share`` likewise for the OS), with one
    pseudo-count: a model with a wrong screen or OS scores low without any
    catalogue, and clones (distinct keys, identical parameters) count once.
    ``env_contradiction`` is ``1 - min(screen_model_share, os_model_share)``.

    Examples
    --------
    >>> import pandas as pd
    >>> dev = pd.DataFrame({"device_id": list("abcd"), "model": "M1", "os": "ios", "os_version": "16",
    ...                     "screen": ["1x2", "1x2", "1x2", "9x9"], "app_version": "8",
    ...                     "is_emulator": False, "is_rooted": False, "fingerprint": list("pqrs"),
    ...                     "first_seen": pd.Timestamp("2024-01-01")})
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": [pd.Timestamp("2024-01-01")],
    ...                     "register_channel": ["app"], "phone": [None]})
    >>> it = pd.DataFrame(columns=["event_id", "ts", "account_id", "device_id", "ip", "action", "target_id"])
    >>> f = device_features({"devices": dev, "accounts": acc, "interactions": it})
    >>> f.set_index("device_id").screen_model_share.round(2).tolist()
    [0.8, 0.8, 0.8, 0.4]
    """
    with open_source(data, as_of=as_of) as src:
        return device_features_from_source(src)


def ip_features(data, *, as_of=None) -> pd.DataFrame:
    """Sharing features of every IPv4 address seen in events (key ``ip``).

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": [None, None]})
    >>> it = pd.DataFrame({"event_id": [1, 2], "account_id": [1, 2], "device_id": [None, None],
    ...                    "ip": ["1.2.3.4"] * 2, "action": "like", "target_id": 7,
    ...                    "ts": pd.to_datetime(["2024-01-02", "2024-01-03"])})
    >>> ip_features({"accounts": acc, "interactions": it})[["ip", "n_accounts"]].values.tolist()
    [['1.2.3.4', 2.0]]
    """
    with open_source(data, as_of=as_of) as src:
        return ip_features_from_source(src, level="ip")


def ip24_features(data, *, as_of=None) -> pd.DataFrame:
    """As :func:`ip_features`, per /24 network (key ``ip24`` = ``a.b.c.0/24``), plus ``n_ips``.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": [None, None]})
    >>> it = pd.DataFrame({"event_id": [1, 2], "account_id": [1, 2], "device_id": [None, None],
    ...                    "ip": ["1.2.3.4", "1.2.3.9"], "action": "like", "target_id": 7,
    ...                    "ts": pd.to_datetime(["2024-01-02", "2024-01-03"])})
    >>> ip24_features({"accounts": acc, "interactions": it})[["ip24", "n_ips"]].values.tolist()
    [['1.2.3.0/24', 2.0]]
    """
    with open_source(data, as_of=as_of) as src:
        return ip_features_from_source(src, level="ip24")


def phone_features(data, *, as_of=None) -> pd.DataFrame:
    """Phones bound to accounts and used as order receivers (key ``phone``).

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": ["13800000000"] * 2})
    >>> it = pd.DataFrame(columns=["event_id", "ts", "account_id", "device_id", "ip", "action", "target_id"])
    >>> phone_features({"accounts": acc, "interactions": it})[["phone", "n_accounts"]].values.tolist()
    [['13800000000', 2.0]]
    """
    with open_source(data, as_of=as_of) as src:
        return phone_features_from_source(src)


def address_features(data, *, as_of=None) -> pd.DataFrame:
    """Shipping addresses: accounts, orders, units, phones and devices behind each (key ``address``).

    Returns an empty frame (with the columns) when the dataset has no orders.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": [pd.Timestamp("2024-01-01")],
    ...                     "register_channel": ["app"], "phone": [None]})
    >>> it = pd.DataFrame(columns=["event_id", "ts", "account_id", "device_id", "ip", "action", "target_id"])
    >>> address_features({"accounts": acc, "interactions": it}).columns[0]
    'address'
    """
    with open_source(data, as_of=as_of) as src:
        return address_features_from_source(src)


def order_features(data, *, as_of=None, accumulators=None) -> pd.DataFrame:
    """One row per order: the order, its product, entity features and accumulators.

    Parameters
    ----------
    data : Dataset or dict of str to DataFrame
    as_of : timestamp-like, default=None
        Orders and entity features strictly before it.
    accumulators : sequence of Accumulator, default=None
        Order-table counters to attach (default:
        :data:`fraudkit.capability.accumulators.DEFAULT_ACCUMULATORS` on ``orders``).

    Returns
    -------
    pandas.DataFrame
        Key ``order_id`` first; empty (no rows, key column only) without orders.

    Examples
    --------
    >>> from fraudkit.capability.features import order_features
    >>> callable(order_features)
    True
    """
    with open_source(data, as_of=as_of) as src:
        return order_features_from_source(src, accumulators)


def interaction_features(data, *, as_of=None, columns=None) -> pd.DataFrame:
    """One row per interaction: the event, its device's flags and the interaction accumulators.

    Columns: ``event_id, ts, account_id, device_id, ip, action, target_id``,
    ``dev_is_emulator``, ``dev_is_rooted``, ``dev_n_accounts`` and the
    interaction-table accumulators of
    :data:`fraudkit.capability.accumulators.DEFAULT_ACCUMULATORS`
    (``acc_likes_per_device_1h``). With ``columns``, only ``event_id``,
    ``account_id`` and those columns are returned (a large table costs memory
    per column). String columns come back as pandas categoricals.

    Examples
    --------
    >>> import pandas as pd
    >>> it = pd.DataFrame({"event_id": [1, 2], "account_id": [1, 1], "device_id": ["d", "d"], "ip": None,
    ...     "action": ["like", "like"], "target_id": [7, 8], "ts": pd.to_datetime(["2024-01-02", "2024-01-02"])})
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": [pd.Timestamp("2024-01-01")],
    ...                     "register_channel": ["app"], "phone": [None]})
    >>> interaction_features({"interactions": it, "accounts": acc}).acc_likes_per_device_1h.tolist()
    [2.0, 2.0]
    """
    with open_source(data, as_of=as_of) as src:
        return interaction_features_from_source(src, columns)


def entity_features(data, *, as_of=None) -> dict:
    """Every feature table at once (one DuckDB session), as ``{entity: DataFrame}``.

    Keys: ``account``, ``device``, ``ip``, ``ip24``, ``phone``, ``address``,
    ``order``; tables whose inputs are missing are empty frames with the key.

    Examples
    --------
    >>> from fraudkit.capability.features import entity_features
    >>> callable(entity_features)
    True
    """
    with open_source(data, as_of=as_of) as src:
        return {
            "account": account_features_from_source(src),
            "device": device_features_from_source(src),
            "ip": ip_features_from_source(src, level="ip"),
            "ip24": ip_features_from_source(src, level="ip24"),
            "phone": phone_features_from_source(src),
            "address": address_features_from_source(src),
            "order": order_features_from_source(src, None),
        }


def account_behaviour(data, *, as_of=None, **sequence_params) -> pd.DataFrame:
    """Account features joined with sequence features: the stage-1 model matrix.

    ``account_id``, then :data:`ACCOUNT_FEATURES`, then
    :data:`fraudkit.capability.sequences.SEQUENCE_FEATURES` (``sequence_params`` go to
    :func:`fraudkit.capability.sequences.sequence_features`).

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": [pd.Timestamp("2024-01-01")],
    ...                     "register_channel": ["app"], "phone": [None]})
    >>> it = pd.DataFrame({"event_id": [1], "account_id": [1], "device_id": ["d"], "ip": ["1.2.3.4"],
    ...                    "action": ["like"], "target_id": [7], "ts": [pd.Timestamp("2024-01-02")]})
    >>> account_behaviour({"accounts": acc, "interactions": it})[["n_actions", "blind_engage_share"]].values.tolist()
    [[1.0, 1.0]]
    """

    params = dict(session_gap="30min", fast_seconds=3.0, min_script_events=4, max_script_accounts=500,
                  max_script_share=0.01)
    unknown = set(sequence_params) - set(params)
    if unknown:
        raise TypeError(f"unknown sequence parameter(s): {', '.join(sorted(unknown))}")
    params.update(sequence_params)
    with open_source(data, as_of=as_of) as src:
        acc = account_features_from_source(src)
        seq = sequence_features_from_source(src, **params)
    out = acc.merge(seq, on="account_id", how="left", validate="one_to_one")
    assert len(out) == len(acc)
    return out[["account_id", *ACCOUNT_FEATURES, *SEQUENCE_FEATURES]]


def window_invariant(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` without the columns of :data:`WINDOW_COUNTS`: the features a model fitted on one window length
    can score another with.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"account_id": [1], "n_actions": [28.0], "actions_per_day": [2.0], "share_like": [0.5]})
    >>> window_invariant(X).columns.tolist()
    ['account_id', 'actions_per_day', 'share_like']
    """
    return X.drop(columns=[c for c in WINDOW_COUNTS if c in X.columns])


def first_activity(data, *, as_of=None) -> pd.DataFrame:
    """``account_id, first_ts, last_ts``: each active account's first and last event (any table).

    Examples
    --------
    >>> import pandas as pd
    >>> it = pd.DataFrame({"event_id": [1, 2], "account_id": [1, 1], "device_id": None, "ip": None,
    ...                    "action": "like", "target_id": 7, "ts": pd.to_datetime(["2024-01-02", "2024-01-05"])})
    >>> first_activity({"interactions": it}).first_ts.dt.day.tolist()
    [2]
    """
    with open_source(data, as_of=as_of) as src:
        ev = _events(src)
        return src.df(f"SELECT account_id, min(ts) AS first_ts, max(ts) AS last_ts FROM {ev} "
                      "GROUP BY account_id ORDER BY account_id")


# --- private ------------------------------------------------------------------


def _memo(fn):
    """Compute an entity table once per source (the stage reuses account features for orders): a copy per call;
    ``fn.shared(src, ...)`` gives the source's own table, for a caller that only reads it or outlives the source
    (no copy: on ``large`` the account, device, IP and address tables are 1.3 GB)."""
    import functools

    def cached(src, *args, **kwargs):
        key = (fn.__name__, args, tuple(sorted(kwargs.items())))
        cache = getattr(src, "cache", None)
        if cache is None:
            return fn(src, *args, **kwargs), False
        if key not in cache:
            cache[key] = fn(src, *args, **kwargs)
        return cache[key], True

    @functools.wraps(fn)
    def wrapper(src, *args, **kwargs):
        table, shared = cached(src, *args, **kwargs)
        return table.copy() if shared else table

    wrapper.shared = lambda src, *args, **kwargs: cached(src, *args, **kwargs)[0]
    return wrapper


_CODE = {"device_id": "dk", "ip": "ik", "ip24": "nk"}
"""Integer code of each wide text key in the events table (:func:`_events`); :func:`_keys` decodes them."""


def _events(src: SqlSource) -> str:
    """Every (account, device, ip, ts) touch: interactions, logins, orders, coupon claims, keys encoded.

    Columns ``account_id, dk, ik, nk, ts, is_action``: the device, the IP and its /24 as integer codes of
    :func:`_keys` (null where the key is null), so the feature queries group and count integers; the /24 is
    computed once per distinct IP, not per event.
    """
    cached = src.name("events")
    if _exists(src, cached):
        return cached
    dev, ip, _ = _keys(src)
    parts = [f"SELECT account_id, CAST(device_id AS VARCHAR) AS device_id, ip, ts, {is_action} AS is_action "
             f"FROM {getattr(src.t, name)}" for name, is_action in _EVENT_TABLES if src.has(name)]
    return src.temp_table("events", f"""SELECT e.account_id, d.dk, i.ik, i.nk, e.ts, e.is_action
        FROM ({" UNION ALL ".join(parts)}) e LEFT JOIN {dev} d ON d.device_id = e.device_id
        LEFT JOIN {ip} i ON i.ip = e.ip""")


_EVENT_TABLES = tuple((name, int(name == "interactions")) for name in EVENT_TABLES)  # (table, is an action)


def _keys(src: SqlSource) -> tuple:
    """Dictionaries of the events' wide keys, built once per source: ``(devices, ips, networks)`` tables.

    ``devices``: ``device_id`` (text) and its code ``dk``; ``ips``: ``ip``, ``ik``, its /24 ``ip24``
    (:func:`fraudkit.capability.ipranges.ip24_sql`, on the distinct addresses) and the /24's code ``nk``;
    ``networks``: ``ip24`` and ``nk``. Every non-null key of the event tables is in them.
    """
    names = tuple(src.name(n) for n in ("keys_device", "keys_ip", "keys_ip24"))
    if _exists(src, names[2]):
        return names
    tables = [getattr(src.t, n) for n, _ in _EVENT_TABLES if src.has(n)]
    devs = " UNION ".join(f"SELECT DISTINCT CAST(device_id AS VARCHAR) AS device_id FROM {t} "
                          "WHERE device_id IS NOT NULL" for t in tables)
    ips = " UNION ".join(f"SELECT DISTINCT ip FROM {t} WHERE ip IS NOT NULL" for t in tables)
    dev = src.temp_table("keys_device", f"SELECT device_id, CAST(row_number() OVER (ORDER BY device_id) AS INTEGER) "
                                        f"AS dk FROM ({devs})")
    ip = src.temp_table("keys_ip", f"""SELECT ip, CAST(row_number() OVER (ORDER BY ip) AS INTEGER) AS ik, ip24,
        CAST(CASE WHEN ip24 IS NOT NULL THEN dense_rank() OVER (ORDER BY ip24) END AS INTEGER) AS nk
        FROM (SELECT ip, {ip24_sql('ip')} AS ip24 FROM ({ips}))""")
    net = src.temp_table("keys_ip24", f"SELECT DISTINCT ip24, nk FROM {ip} WHERE ip24 IS NOT NULL")
    return dev, ip, net


def _decode(src: SqlSource, key: str, sql: str) -> str:
    """SQL: ``sql`` (keyed by the code of ``key``) with the code replaced by the text key, first."""
    dev, ip, net = _keys(src)
    table = {"device_id": dev, "ip": ip, "ip24": net}[key]
    code = _CODE[key]
    return f"SELECT k.{key}, b.* EXCLUDE ({code}) FROM ({sql}) b JOIN {table} k USING ({code})"


def _account_pairs(src: SqlSource, key: str) -> str:
    """Temp table of the distinct ``(account_id, code of key)`` pairs of the events (``key`` not null), cached."""
    name = src.name(f"pairs_{key}")
    if _exists(src, name):
        return name
    code = _CODE[key]
    return src.temp_table(f"pairs_{key}", f"SELECT DISTINCT account_id, {code} FROM {_touches(src)} "
                                          f"WHERE {code} IS NOT NULL")


def _touches(src: SqlSource) -> str:
    """Temp table of the events (:func:`_events`) counted per distinct ``(account_id, dk, ik, nk)``: ``n`` events,
    ``n_actions`` of them interactions, cached.

    The per-device and per-IP counts, the account pairs and the null-device shares read it instead of every
    event: on ``large`` 7.2M rows against 38.0M, and the pairs with the device, IP and /24 tables 22.9-23.3 s
    (the touch table's 2.4 s included) against 34.8-34.9 s, the same tables (``benchmarks/touches.md``). Only what needs the time of each event (daily counts, sliding windows, the first
    and last event) reads :func:`_events`.
    """
    name = src.name("touches")
    if _exists(src, name):
        return name
    return src.temp_table("touches", f"SELECT account_id, dk, ik, nk, count(*) AS n, sum(is_action) AS n_actions "
                                     f"FROM {_events(src)} GROUP BY account_id, dk, ik, nk")


def _event_share(condition: str) -> str:
    """SQL over :func:`_touches`: the share of the events where ``condition`` holds, as ``avg(CAST(condition AS
    DOUBLE))`` over the events gives it (events where it is null left out; null when it is null for all)."""
    return (f"sum(n * CAST({condition} AS DOUBLE)) / sum(CASE WHEN ({condition}) IS NOT NULL THEN n END)")


def drop_event_tables(src: SqlSource) -> None:
    """Drop the cached tables read from every event (:func:`_events`, on ``large`` 38 M rows, and the account
    pairs, account counts and co-device tables made from it) once the entity tables are built: the order
    features read those tables and the orders, not the events; a later reader would build them again."""
    for name in [src.name("events"), src.name("touches"), *src.tables_named("pairs_"), *src.tables_named("acc_per_"),
                 *src.tables_named("codev_")]:
        if src.has_table(name):
            src.drop_table(name)


def _exists(src, name) -> bool:
    return src.has_table(name)


def _ref(src) -> str:
    return f"TIMESTAMP '{src.reference_time().strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _device_env(src: SqlSource) -> str | None:
    """Per device in the devices table: emulator/root flags and learned screen/OS consistency."""
    if not src.has("devices"):
        return None
    cached = src.name("devenv")
    if _exists(src, cached):
        return cached
    d = src.t.devices
    sql = f"""
    WITH fp AS (SELECT DISTINCT model, os, screen, fingerprint FROM {d}),
    m AS (SELECT model, count(*) AS n_m FROM fp GROUP BY model),
    ms AS (SELECT model, screen, count(*) AS n_ms FROM fp GROUP BY model, screen),
    mo AS (SELECT model, os, count(*) AS n_mo FROM fp GROUP BY model, os),
    fpd AS (SELECT fingerprint, count(*) AS fingerprint_devices FROM {d} GROUP BY fingerprint)
    SELECT CAST(d.device_id AS VARCHAR) AS device_id,
           CAST(d.is_emulator AS DOUBLE) AS is_emulator, CAST(d.is_rooted AS DOUBLE) AS is_rooted,
           (ms.n_ms + 1.0) / (m.n_m + 1.0) AS screen_model_share,
           (mo.n_mo + 1.0) / (m.n_m + 1.0) AS os_model_share,
           1.0 - least((ms.n_ms + 1.0) / (m.n_m + 1.0), (mo.n_mo + 1.0) / (m.n_m + 1.0)) AS env_contradiction,
           d.fingerprint, CAST(fpd.fingerprint_devices AS DOUBLE) AS fingerprint_devices
    FROM {d} d JOIN m USING (model) JOIN ms USING (model, screen) JOIN mo USING (model, os)
    JOIN fpd USING (fingerprint)"""
    return src.temp_table("devenv", sql)


def _sliding_max(table: str, key: str, windows: dict, where: str = "TRUE") -> str:
    """SQL: per key, the max count of rows in a trailing window ending at each row."""
    cols = ",\n".join(
        f"count(*) OVER (PARTITION BY {key} ORDER BY ts RANGE BETWEEN INTERVAL {w} PRECEDING AND CURRENT ROW) AS c_{n}"
        for n, w in windows.items())
    maxes = ", ".join(f"CAST(max(c_{n}) AS DOUBLE) AS {n}" for n in windows)
    return (f"SELECT {key}, {maxes} FROM (SELECT {key}, {cols} FROM {table} "
            f"WHERE {where} AND {key} IS NOT NULL) GROUP BY {key}")


@_memo
def account_features_from_source(src: SqlSource) -> pd.DataFrame:
    acc = src.require("accounts", "account_features")
    it = src.require("interactions", "account_features")
    ref = _ref(src)
    ev = _events(src)
    blocks = []  # (sql, columns) joined on account_id

    shares = ", ".join(f"avg(CAST(action = '{a}' AS DOUBLE)) AS share_{a}" for a in _ACTIONS)
    blocks.append(f"""
    SELECT i.account_id, CAST(count(*) AS DOUBLE) AS n_actions,
           CAST({distinct_days("i.ts", src.day_range(it, "ts"))} AS DOUBLE) AS n_active_days,
           CAST(count(DISTINCT i.target_id) AS DOUBLE) AS n_targets, {shares},
           sum(CAST(action IN ('like', 'collect') AS DOUBLE)) / greatest(sum(CAST(action = 'view' AS DOUBLE)), 1)
               AS like_view_ratio,
           epoch(min(i.ts) - min(a.registered_at)) / 86400.0 AS age_at_first_action_days,
           -- a mean of integer microseconds (DuckDB sums them exactly): a mean of doubles depends on the
           -- threads' order
           avg(CAST(round(epoch(i.ts - a.registered_at) * 1000000.0) AS BIGINT)) / 86400000000.0
               AS mean_age_at_action_days,
           avg(CAST(hour(i.ts) < 6 AS DOUBLE)) AS night_share
    FROM {it} i JOIN {acc} a USING (account_id) GROUP BY i.account_id""")
    blocks.append(_sliding_max(it, "account_id", {"max_actions_per_minute": "60 SECONDS",
                                                  "max_actions_per_hour": "1 HOUR", "max_actions_per_day": "1 DAY"}))
    blocks.append(f"""
    SELECT account_id, -sum(p * log2(p)) AS hour_entropy FROM (
        SELECT account_id, count(*) / sum(count(*)) OVER (PARTITION BY account_id) AS p
        FROM {it} GROUP BY account_id, hour(ts)) GROUP BY account_id""")
    # events at the same time are taken in event_id order: a gap's previous gap is then the same in every run (by
    # time alone, two events of one second could meet their gaps in either order); the previous gap from the two
    # events before, in the same window (a second window over the gaps sorted the 23.7M interactions of large
    # again: 5.0 s against 4.0 s)
    blocks.append(f"""
    WITH gg AS (SELECT account_id, epoch(ts - lag(ts) OVER w) AS gap, epoch(lag(ts) OVER w - lag(ts, 2) OVER w) AS prev
                FROM {it} WINDOW w AS (PARTITION BY account_id ORDER BY ts, event_id))
    SELECT account_id, median(gap) AS gap_median_s,
           CASE WHEN count(gap) >= 2 AND avg(gap) > 0 THEN stddev_pop(gap) / avg(gap) END AS gap_cv,
           avg(CASE WHEN prev IS NOT NULL THEN CAST(abs(gap - prev) <= greatest(1.0, 0.02 * gap) AS DOUBLE) END)
               AS same_gap_share
    FROM gg GROUP BY account_id""")
    blocks.append(f"""
    WITH pop AS (SELECT target_id, count(DISTINCT account_id) FILTER (WHERE action = 'view') AS viewers
                 FROM {it} WHERE action <> 'follow' GROUP BY target_id),
    pct AS (SELECT target_id, percent_rank() OVER (ORDER BY viewers) AS pop_pct FROM pop),
    e AS (SELECT i.account_id, i.target_id, p.pop_pct FROM {it} i JOIN pct p USING (target_id)
          WHERE i.action IN {_ENGAGE}),
    top AS (SELECT account_id, max(n) AS top_n FROM (SELECT account_id, target_id, count(*) AS n FROM e
            GROUP BY ALL) GROUP BY account_id)
    SELECT account_id, avg(CAST(pop_pct <= {_LOW_POP_PCT} AS DOUBLE)) AS low_pop_target_share,
           avg(pop_pct) AS mean_target_pop_pct, any_value(top.top_n) / count(*) AS top_target_share
    FROM e JOIN top USING (account_id) GROUP BY account_id""")

    # environment: devices / IPs per account and their sharing
    dev_env = _device_env(src)
    # one distinct (account, medium) table per medium, reused by every sharing block below (each used
    # to re-scan the 38M-row events table of the large scenario with its own DISTINCT)
    pairs = {key: _account_pairs(src, key) for key in ("device_id", "ip", "ip24")}
    per = {key: src.temp_table(f"acc_per_{key}", f"SELECT {_CODE[key]}, count(*) AS n FROM {pairs[key]} "
                                                 f"GROUP BY {_CODE[key]}") for key in pairs}
    dev_keys, ip_keys, _ = _keys(src)
    blocks.append(f"""
    SELECT account_id, {_event_share("dk IS NULL")} AS null_device_share
    FROM {_touches(src)} GROUP BY account_id""")
    for key, col in (("device_id", "n_devices"), ("ip", "n_ips"), ("ip24", "n_ip24")):
        blocks.append(f"SELECT account_id, CAST(count(*) AS DOUBLE) AS {col} FROM {pairs[key]} GROUP BY account_id")
    for key, col in (("device_id", "max_accounts_per_device"), ("ip", "max_accounts_per_ip"),
                     ("ip24", "max_accounts_per_ip24")):
        blocks.append(f"""SELECT account_id, CAST(max(t.n) AS DOUBLE) AS {col} FROM {pairs[key]} e
            JOIN {per[key]} t USING ({_CODE[key]}) GROUP BY account_id""")
    for key, col in (("ip", "max_daily_accounts_per_ip"), ("ip24", "max_daily_accounts_per_ip24")):
        code = _CODE[key]
        blocks.append(f"""
        WITH d AS (SELECT {code}, max(n) AS n FROM (SELECT {code}, CAST(ts AS DATE), count(DISTINCT account_id) AS n
                   FROM {ev} WHERE {code} IS NOT NULL GROUP BY ALL) GROUP BY {code})
        SELECT account_id, CAST(max(d.n) AS DOUBLE) AS {col} FROM {pairs[key]} JOIN d USING ({code})
        GROUP BY account_id""")
    blocks.append(f"""
    WITH dv AS (SELECT dk, epoch(max(a.registered_at) - min(a.registered_at)) / 86400.0 AS span
                FROM {pairs["device_id"]} JOIN {acc} a USING (account_id) GROUP BY dk HAVING count(*) >= 2)
    SELECT account_id, min(span) AS min_device_reg_span_days FROM {pairs["device_id"]} JOIN dv USING (dk)
    GROUP BY account_id""")
    blocks.append(_codevice_block(src, pairs["device_id"], per["device_id"]))
    if dev_env is not None:
        blocks.append(f"""
        SELECT account_id, avg(coalesce(d.is_emulator, 0)) AS emulator_device_share,
               avg(coalesce(d.is_rooted, 0)) AS rooted_device_share,
               max(d.env_contradiction) AS max_env_contradiction,
               max(d.fingerprint_devices) AS max_fingerprint_devices,
               avg(CAST(d.device_id IS NULL AS DOUBLE)) AS unknown_device_share
        FROM {pairs["device_id"]} e JOIN {dev_keys} k USING (dk) LEFT JOIN {dev_env} d USING (device_id)
        GROUP BY account_id""")

    if src.has("orders"):
        o = src.t.orders
        prod = (f"LEFT JOIN {src.t.products} p USING (product_id)" if src.has("products") else
                "LEFT JOIN (SELECT NULL AS product_id, NULL AS category, NULL::DOUBLE AS price, "
                "NULL::BOOLEAN AS limited_stock) p USING (product_id)")
        blocks.append(f"""
        SELECT o.account_id, CAST(count(*) AS DOUBLE) AS n_orders, CAST(sum(quantity) AS DOUBLE) AS n_units,
               CAST(count(DISTINCT o.product_id) AS DOUBLE) AS n_products,
               CAST(count(DISTINCT p.category) AS DOUBLE) AS n_categories,
               sum(paid_price) AS order_value,
               sum(greatest(p.price * quantity - paid_price, 0)) AS discount_value,
               avg(CAST(paid_price < 0.999 * p.price * quantity AS DOUBLE)) AS discount_share,
               avg(CAST(coupon_id IS NOT NULL AS DOUBLE)) AS coupon_share,
               avg(CAST(promotion_id IS NOT NULL AS DOUBLE)) AS promotion_share,
               avg(CAST(p.limited_stock AS DOUBLE)) AS limited_stock_share,
               CAST(count(DISTINCT address) AS DOUBLE) AS n_addresses,
               CAST(count(DISTINCT receiver_phone) AS DOUBLE) AS n_receiver_phones,
               avg(CAST(received_at IS NOT NULL AS DOUBLE)) AS received_share
        FROM {o} o {prod} GROUP BY o.account_id""")
        blocks.append(_sliding_max(o, "account_id", {"max_orders_per_hour": "1 HOUR"}))
    if src.has("coupon_claims"):
        blocks.append(f"SELECT account_id, CAST(count(*) AS DOUBLE) AS n_coupon_claims "
                      f"FROM {src.t.coupon_claims} GROUP BY account_id")
    if src.has("bindings"):
        blocks.append(f"SELECT account_id, CAST(count(*) AS DOUBLE) AS n_bindings FROM {src.t.bindings} "
                      "GROUP BY account_id")
    if src.has("list_entries"):
        le = src.temp_table("active_lists", f"""SELECT DISTINCT entity_type, CAST(entity_id AS VARCHAR) AS entity_id
            FROM {src.t.list_entries} WHERE added_at < {ref} AND (expires_at IS NULL OR expires_at > {ref})""")
        # each medium semi-joined to the (small) active lists before the union: no DISTINCT over all events
        res = [f"SELECT account_id, 'device' AS et, device_id AS eid FROM {pairs['device_id']} JOIN "
               f"(SELECT dk, device_id FROM {dev_keys} WHERE device_id IN "
               f"(SELECT entity_id FROM {le} WHERE entity_type = 'device')) USING (dk)",
               f"SELECT account_id, 'ip', ip FROM {pairs['ip']} JOIN "
               f"(SELECT ik, ip FROM {ip_keys} WHERE ip IN (SELECT entity_id FROM {le} WHERE entity_type = 'ip')) "
               "USING (ik)",
               f"SELECT account_id, 'phone', CAST(phone AS VARCHAR) FROM {acc} WHERE phone IS NOT NULL "
               f"AND CAST(phone AS VARCHAR) IN (SELECT entity_id FROM {le} WHERE entity_type = 'phone')"]
        if src.has("orders"):
            res.append(f"SELECT DISTINCT account_id, 'address', address FROM {src.t.orders} "
                       f"WHERE address IN (SELECT entity_id FROM {le} WHERE entity_type = 'address')")
        blocks.append(f"""SELECT account_id, CAST(count(*) AS DOUBLE) AS resource_list_hits FROM
            ({' UNION '.join(res)}) r GROUP BY account_id""")
        blocks.append(f"""SELECT a.account_id, CAST(count(*) AS DOUBLE) AS list_hits FROM {acc} a JOIN
            {src.t.list_entries} l ON l.entity_type = 'account'
                AND CAST(l.entity_id AS VARCHAR) = CAST(a.account_id AS VARCHAR)
            WHERE l.added_at < {ref} AND (l.expires_at IS NULL OR l.expires_at > {ref}) GROUP BY a.account_id""")

    blocks.append(observed_days_sql(src))

    base = f"""SELECT account_id, register_channel, epoch({ref} - registered_at) / 86400.0 AS account_age_days,
        CAST(phone IS NOT NULL AS DOUBLE) AS has_phone,
        CAST(CASE WHEN phone IS NOT NULL THEN count(*) OVER (PARTITION BY phone) END AS DOUBLE) AS accounts_per_phone
        FROM {acc}"""
    out = _join_blocks(src, base, "account_id", blocks, ACCOUNT_FEATURES)
    # rates from the joined counts (0 for an account without events, not NaN)
    days = out["observed_days"].to_numpy()
    for rate, count in _PER_DAY.items():
        out[rate] = out[count].to_numpy() / days
    out["active_day_share"] = np.minimum(out["n_active_days"].to_numpy() / days, 1.0)
    out["actions_per_active_day"] = out["n_actions"] / out["n_active_days"].where(out["n_active_days"] > 0)
    promotions = _promotions_observed(src, days)
    for rate, count in _PER_PROMOTION.items():
        out[rate] = out[count].to_numpy() / promotions
    return out


def _promotions_observed(src: SqlSource, days) -> np.ndarray:
    """Per account (``days``: its observed days), the promotions running while it was observed, at least 1."""
    if not src.has("promotions"):
        return np.ones(len(days))
    ref = src.reference_time()
    pr = src.df(f"SELECT starts_at, ends_at FROM {src.t.promotions} WHERE starts_at < {_ref(src)}")
    since = (ref - pd.to_timedelta(np.asarray(days, dtype=float), unit="D")).to_numpy()
    n = np.zeros(len(since))
    for end in pr["ends_at"].to_numpy():  # promotions are few: one vectorised pass each
        n += end > since
    return np.maximum(n, 1.0)


def _codevice_block(src: SqlSource, pairs: str, per: str) -> str:
    """SQL block: target overlap of each account with its co-device neighbours (see the module docstring).

    Pairs: on every device with two or more accounts, account ``r`` (rank by
    ``account_id``) meets ranks ``r + 1 .. r + CODEVICE_NEIGHBOURS`` through an
    equi-join on ``(device_id, rank)`` with a fixed offset list, so the join is
    linear in the device's accounts; both directions are kept. Targets: each
    paired account's distinct ``(kind, target)`` with its first time (kind 0:
    a note action, 1: a follow, 2: an ordered product), read only for paired
    accounts (a semi-join: families and farms are a small part of the events).
    """
    it = src.t.interactions
    parts = [f"SELECT account_id, CAST(action = 'follow' AS TINYINT) AS kind, target_id AS target, ts FROM {it} "
             "WHERE target_id IS NOT NULL"]
    if src.has("orders"):
        parts.append(f"SELECT account_id, CAST(2 AS TINYINT), product_id, ts FROM {src.t.orders} "
                     "WHERE product_id IS NOT NULL")
    rk = src.temp_table("codev_rank", f"""SELECT dk, account_id,
        row_number() OVER (PARTITION BY dk ORDER BY account_id) AS r
        FROM {pairs} JOIN {per} USING (dk) WHERE n >= 2""")
    cp = src.temp_table("codev_pairs", f"""WITH fwd AS (
        SELECT DISTINCT x.account_id AS a, y.account_id AS b
        FROM {rk} x CROSS JOIN (VALUES {', '.join(f'({k})' for k in range(1, CODEVICE_NEIGHBOURS + 1))}) o(off)
        JOIN {rk} y ON y.dk = x.dk AND y.r = x.r + o.off)
        SELECT a, b FROM fwd UNION SELECT b, a FROM fwd""")
    tg = src.temp_table("codev_targets", f"""SELECT account_id, kind, target, min(ts) AS first_ts
        FROM ({' UNION ALL '.join(parts)}) e WHERE account_id IN (SELECT a FROM {cp}) GROUP BY ALL""")
    return f"""
    WITH cnt AS (SELECT account_id, count(*) AS n FROM {tg} GROUP BY account_id),
    m AS (SELECT p.a, p.b, ta.kind, ta.target,
                 abs(epoch(ta.first_ts) - epoch(tb.first_ts)) <= epoch(INTERVAL {CODEVICE_SYNC_WINDOW}) AS sync
          FROM {cp} p JOIN {tg} ta ON ta.account_id = p.a
          JOIN {tg} tb ON tb.account_id = p.b AND tb.kind = ta.kind AND tb.target = ta.target),
    pj AS (SELECT p.a, coalesce(i.inter, 0)
                  / NULLIF(coalesce(na.n, 0) + coalesce(nb.n, 0) - coalesce(i.inter, 0), 0) AS jac
           FROM {cp} p LEFT JOIN (SELECT a, b, count(*) AS inter FROM m GROUP BY a, b) i USING (a, b)
           LEFT JOIN cnt na ON na.account_id = p.a LEFT JOIN cnt nb ON nb.account_id = p.b),
    sy AS (SELECT a, count(DISTINCT (kind, target)) AS n_sync, count(DISTINCT b) AS n_sync_accounts
           FROM m WHERE sync GROUP BY a)
    SELECT pj.a AS account_id, max(jac) AS codevice_jaccard_max, avg(jac) AS codevice_jaccard_mean,
           any_value(coalesce(sy.n_sync, 0) / NULLIF(cnt.n, 0)) AS codevice_sync_share,
           CAST(any_value(coalesce(sy.n_sync_accounts, 0)) AS DOUBLE) AS n_codevice_sync_accounts
    FROM pj LEFT JOIN sy USING (a) LEFT JOIN cnt ON cnt.account_id = pj.a GROUP BY pj.a"""


def _join_blocks(src, base: str, key: str, blocks: list, columns) -> pd.DataFrame:
    # each block is materialised on its own, then joined: DuckDB plans one 17-way join of windowed
    # sub-queries worse than the blocks one by one (measured 10 s against 7 s on 2M interactions)
    stem = f"blk{next(_BLOCKS)}"
    names = [src.temp_table(f"{stem}_{k}", b) for k, b in enumerate([base, *blocks])]
    sql = f"SELECT * FROM {names[0]} b0"
    for k, name in enumerate(names[1:], 1):
        sql += f" LEFT JOIN {name} b{k} USING ({key})"
    df = src.df(sql + f" ORDER BY {key}")
    for name in names:
        src.drop_table(name)
    for c in columns:
        if c not in df.columns:
            df[c] = np.nan
    out = df[[key, *columns]].copy()
    for c in columns:
        if c.startswith(_COUNT_PREFIXES) and c not in _NO_FILL and out[c].dtype.kind == "f":
            out[c] = out[c].fillna(0.0)
    return out


DEVICE_FEATURES = ("in_devices_table", "is_emulator", "is_rooted", "screen_model_share", "os_model_share",
                   "env_contradiction", "fingerprint_devices", "fingerprint_accounts", "n_accounts", "n_events",
                   "n_actions", "n_ips", "max_actions_per_hour", "new_account_share")


@_memo
def device_features_from_source(src: SqlSource) -> pd.DataFrame:
    acc = src.require("accounts", "device_features")
    ev = _events(src)
    ref = _ref(src)
    env = _device_env(src)
    dev_keys = _keys(src)[0]
    keys = f"SELECT device_id FROM {dev_keys}"
    if env is not None:
        keys = f"SELECT device_id FROM {env} UNION {keys}"
    blocks = [_decode(src, "device_id", f"""
    SELECT e.dk, CAST(count(DISTINCT e.account_id) AS DOUBLE) AS n_accounts,
           CAST(sum(n) AS DOUBLE) AS n_events, CAST(sum(n_actions) AS DOUBLE) AS n_actions,
           CAST(count(DISTINCT ik) AS DOUBLE) AS n_ips,
           {_event_share(f"a.registered_at > {ref} - INTERVAL {NEW_ACCOUNT_DAYS} DAY")} AS new_account_share
    FROM {_touches(src)} e JOIN {acc} a USING (account_id) WHERE e.dk IS NOT NULL GROUP BY e.dk"""),
              _decode(src, "device_id", _sliding_max(ev, "dk", {"max_actions_per_hour": "1 HOUR"},
                                                     where="is_action = 1"))]
    if env is not None:
        blocks.append(f"""SELECT device_id, 1.0 AS in_devices_table, is_emulator, is_rooted, screen_model_share,
            os_model_share, env_contradiction, fingerprint_devices FROM {env}""")
        blocks.append(f"""SELECT d.device_id, CAST(f.n AS DOUBLE) AS fingerprint_accounts FROM {env} d JOIN
            (SELECT fingerprint, count(DISTINCT e.account_id) AS n FROM {_account_pairs(src, "device_id")} e
             JOIN {dev_keys} USING (dk) JOIN {env} USING (device_id)
             GROUP BY fingerprint) f USING (fingerprint)""")
    return _join_blocks(src, keys, "device_id", blocks, DEVICE_FEATURES)


IP_FEATURES = ("n_accounts", "n_devices", "n_events", "n_actions", "null_device_share", "new_account_share",
               "actions_per_account", "n_orders")


@_memo
def ip_features_from_source(src: SqlSource, *, level: str) -> pd.DataFrame:
    acc = src.require("accounts", f"{level}_features")
    ref = _ref(src)
    code = _CODE[level]
    pairs = _account_pairs(src, level)
    n_ips = ", CAST(count(DISTINCT e.ik) AS DOUBLE) AS n_ips" if level == "ip24" else ""
    blocks = [_decode(src, level, f"""
    SELECT e.{code}, CAST(count(DISTINCT e.account_id) AS DOUBLE) AS n_accounts,
           CAST(count(DISTINCT e.dk) AS DOUBLE) AS n_devices, CAST(sum(n) AS DOUBLE) AS n_events,
           CAST(sum(n_actions) AS DOUBLE) AS n_actions, {_event_share("e.dk IS NULL")} AS null_device_share,
           sum(n_actions) / count(DISTINCT e.account_id) AS actions_per_account {n_ips}
    FROM {_touches(src)} e WHERE e.{code} IS NOT NULL GROUP BY e.{code}"""),
              _decode(src, level, f"""SELECT {code},
                  avg(CAST(a.registered_at > {ref} - INTERVAL {NEW_ACCOUNT_DAYS} DAY AS DOUBLE)) AS new_account_share
                  FROM {pairs} JOIN {acc} a USING (account_id) GROUP BY {code}""")]
    ip_keys = _keys(src)[1]
    if src.has("orders"):
        blocks.append(f"SELECT k.{level}, CAST(count(*) AS DOUBLE) AS n_orders FROM {src.t.orders} o "
                      f"JOIN {ip_keys} k USING (ip) WHERE k.{level} IS NOT NULL GROUP BY ALL")
    cols = IP_FEATURES + (("n_ips",) if level == "ip24" else ())
    keys = f"SELECT ip FROM {ip_keys}" if level == "ip" else f"SELECT ip24 FROM {_keys(src)[2]}"
    return _join_blocks(src, keys, level, blocks, cols)


PHONE_FEATURES = ("n_accounts", "n_orders", "n_order_accounts", "n_addresses")


def phone_features_from_source(src: SqlSource) -> pd.DataFrame:
    acc = src.require("accounts", "phone_features")
    keys = f"SELECT DISTINCT CAST(phone AS VARCHAR) AS phone FROM {acc} WHERE phone IS NOT NULL"
    blocks = [f"SELECT CAST(phone AS VARCHAR) AS phone, CAST(count(*) AS DOUBLE) AS n_accounts FROM {acc} "
              "WHERE phone IS NOT NULL GROUP BY ALL"]
    if src.has("orders"):
        o = src.t.orders
        keys += f" UNION SELECT DISTINCT CAST(receiver_phone AS VARCHAR) FROM {o} WHERE receiver_phone IS NOT NULL"
        blocks.append(f"""SELECT CAST(receiver_phone AS VARCHAR) AS phone, CAST(count(*) AS DOUBLE) AS n_orders,
            CAST(count(DISTINCT account_id) AS DOUBLE) AS n_order_accounts,
            CAST(count(DISTINCT address) AS DOUBLE) AS n_addresses FROM {o} GROUP BY ALL""")
    return _join_blocks(src, keys, "phone", blocks, PHONE_FEATURES)


ADDRESS_FEATURES = ("n_accounts", "n_orders", "n_units", "n_receiver_phones", "n_devices", "n_ips",
                    "n_promotions", "n_products", "limited_stock_units")


@_memo
def address_features_from_source(src: SqlSource) -> pd.DataFrame:
    if not src.has("orders"):
        return pd.DataFrame({"address": pd.Series(dtype=object), **{c: pd.Series(dtype=float)
                                                                       for c in ADDRESS_FEATURES}})
    o = src.t.orders
    ls = ("sum(CASE WHEN p.limited_stock THEN quantity ELSE 0 END)" if src.has("products") else "NULL")
    join = f"LEFT JOIN {src.t.products} p USING (product_id)" if src.has("products") else ""
    block = f"""SELECT address, CAST(count(DISTINCT account_id) AS DOUBLE) AS n_accounts,
        CAST(count(*) AS DOUBLE) AS n_orders, CAST(sum(quantity) AS DOUBLE) AS n_units,
        CAST(count(DISTINCT receiver_phone) AS DOUBLE) AS n_receiver_phones,
        CAST(count(DISTINCT device_id) AS DOUBLE) AS n_devices, CAST(count(DISTINCT ip) AS DOUBLE) AS n_ips,
        CAST(count(DISTINCT promotion_id) AS DOUBLE) AS n_promotions,
        CAST(count(DISTINCT o.product_id) AS DOUBLE) AS n_products, CAST({ls} AS DOUBLE) AS limited_stock_units
        FROM {o} o {join} GROUP BY address"""
    return _join_blocks(src, f"SELECT DISTINCT address FROM {o}", "address", [block], ADDRESS_FEATURES)


def interaction_features_from_source(src: SqlSource, columns) -> pd.DataFrame:

    it = src.require("interactions", "interaction_features")
    accs = [a for a in DEFAULT_ACCUMULATORS if a.table == "interactions"]
    env = _device_env(src)
    dev_cols = ("CAST(d.is_emulator AS DOUBLE) AS dev_is_emulator, CAST(d.is_rooted AS DOUBLE) AS dev_is_rooted"
                if env is not None else "NULL::DOUBLE AS dev_is_emulator, NULL::DOUBLE AS dev_is_rooted")
    env_join = f"LEFT JOIN {env} d ON d.device_id = CAST(i.device_id AS VARCHAR)" if env is not None else ""
    acc_cols = ", ".join(window_expr(a, "ts") for a in accs)
    base = f"""SELECT i.event_id, i.ts, i.account_id, CAST(i.device_id AS VARCHAR) AS device_id, i.ip, i.action,
        i.target_id, {dev_cols}, CAST(n.n AS DOUBLE) AS dev_n_accounts FROM {it} i {env_join}
        LEFT JOIN ({_decode(src, "device_id", f"SELECT dk, count(*) AS n FROM {_account_pairs(src, 'device_id')} GROUP BY dk")}
                   ) n ON n.device_id = CAST(i.device_id AS VARCHAR)"""
    sql = f"SELECT *{', ' + acc_cols if acc_cols else ''} FROM ({base})"
    if columns is not None:
        keep = ["event_id", "account_id", *[c for c in columns if c not in ("event_id", "account_id")]]
        sql = f"SELECT {', '.join(keep)} FROM ({sql})"
    # strings straight to categoricals (no Python string per row): 20M interactions fit in memory
    return src.arrow(sql + " ORDER BY event_id").to_pandas(strings_to_categorical=True)


_ORDER_ACCOUNT_COLS = ("account_age_days", "n_actions", "n_devices", "n_ips", "null_device_share",
                       "max_accounts_per_device", "max_accounts_per_ip", "emulator_device_share",
                       "max_env_contradiction", "max_fingerprint_devices", "n_orders", "n_units", "n_categories",
                       "discount_value", "discount_share", "coupon_share", "limited_stock_share",
                       "max_orders_per_hour", "n_addresses", "n_receiver_phones", "n_coupon_claims",
                       "list_hits", "resource_list_hits")
_ORDER_DEVICE_COLS = ("n_accounts", "is_emulator", "is_rooted", "env_contradiction", "fingerprint_devices")
_ORDER_IP_COLS = ("n_accounts", "new_account_share", "n_orders")
_ORDER_ADDRESS_COLS = ("n_accounts", "n_orders", "n_units", "n_receiver_phones", "n_devices")


def order_features_from_source(src: SqlSource, accumulators) -> pd.DataFrame:
    if not src.has("orders"):
        return pd.DataFrame({"order_id": pd.Series(dtype=object)})

    o = src.t.orders
    prod = (f"LEFT JOIN {src.t.products} p USING (product_id)" if src.has("products") else
            "LEFT JOIN (SELECT NULL AS product_id, NULL AS category, NULL::DOUBLE AS price, NULL::DOUBLE AS discount,"
            " NULL::BOOLEAN AS limited_stock) p USING (product_id)")
    orders = src.df(f"""SELECT o.order_id, o.ts, o.account_id, CAST(o.device_id AS VARCHAR) AS device_id, o.ip,
        o.product_id, o.quantity, o.paid_price, o.coupon_id, o.promotion_id, o.address, o.receiver_phone,
        p.category, p.price, p.discount, CAST(p.limited_stock AS DOUBLE) AS limited_stock,
        p.price * o.quantity AS line_value, greatest(p.price * o.quantity - o.paid_price, 0) AS discount_value,
        CAST(o.coupon_id IS NOT NULL AS DOUBLE) AS has_coupon,
        CAST(o.promotion_id IS NOT NULL AS DOUBLE) AS in_promotion
        FROM {o} o {prod} ORDER BY o.order_id""")
    n = len(orders)
    for prefix, key, frame, cols in (
            ("acct_", "account_id", account_features_from_source.shared(src), _ORDER_ACCOUNT_COLS),
            ("dev_", "device_id", device_features_from_source.shared(src), _ORDER_DEVICE_COLS),
            ("ip_", "ip", ip_features_from_source.shared(src, level="ip"), _ORDER_IP_COLS),
            ("addr_", "address", address_features_from_source.shared(src), _ORDER_ADDRESS_COLS)):
        # (entity tables are memoised on the source: computed once per session, read here without a copy; their
        # keys are unique, from GROUP BY, so a positional lookup replaces a validated merge)
        pos = pd.Index(frame[key]).get_indexer(orders[key])
        hit = pos >= 0
        for c in cols:
            v = frame[c].to_numpy()
            col = np.full(n, np.nan) if v.dtype.kind in "fiub" else np.full(n, None, dtype=object)
            col[hit] = v[pos[hit]]
            orders[prefix + c] = col
    accs = [a for a in (DEFAULT_ACCUMULATORS if accumulators is None else accumulators) if a.table == "orders"]
    if accs:
        acc = compute(accs, src).drop(columns="ts")
        pos = pd.Index(acc["order_id"]).get_indexer(orders["order_id"])
        if acc["order_id"].is_unique and (pos >= 0).all():
            # every order has its accumulators: placed by position, not merged (a merge copied the whole frame,
            # 2 GB on large)
            for c in acc.columns.drop("order_id"):
                orders[c] = acc[c].to_numpy()[pos]
        else:
            orders = orders.merge(acc, on="order_id", how="left", validate="one_to_one")
    assert len(orders) == n, "order feature joins must keep one row per order"
    return orders
