r"""R(A,B): co-purchase relatedness of two buyers, the edge weight of the crowd-scalper graph.

Seeds 001/004 section 2.2 define the weight only by its arguments,
``R(A,B) = f(k, C_A, C_B, W_purchase, W_receive, time_window)``: ``k`` co-purchased
items, ``C_A``/``C_B`` the users' purchase counts, ``W_purchase``/``W_receive`` the
purchase and receipt similarity, a time window that adapts to promotions. fraudkit
makes it explicit:

.. math::

    R(A,B) = \frac{\sum_{i \in K_{AB}} w_i}{\sqrt{C_A\,C_B}}
             \,(1 + \alpha\,W_{purchase})\,(1 + \beta\,W_{receive})

* :math:`K_{AB}` — items both bought with purchase times within :math:`\tau` of each other, where
  :math:`\tau` = ``window_promo`` when the earlier order falls in a promotion and ``window_normal``
  otherwise. Promotions squeeze everyone's purchases into minutes, so a co-purchase must be much
  tighter to mean anything ("自适应变化 ... 是/非大促期间"). ``k = |K_AB|``.
* :math:`w_i = 1/\log(1 + d_i)`, :math:`d_i` the item's distinct buyers: co-buying a flash-sale item
  with 20k buyers says little, co-buying a niche item says a lot (the seeds' pre-processing
  "filtered abnormal data with large influence").
* :math:`\sqrt{C_A C_B}`, :math:`C` = distinct items a user bought: a cosine normalisation, so heavy
  shoppers are not related to everyone.
* :math:`W_{purchase} = \frac{1}{k}\sum_{i\in K_{AB}} e^{-|\Delta t_i|/\tau_i}` in (e^-1, 1]: how tightly
  aligned the co-purchases are — crowd workers receive a task and buy at once, item after item.
* :math:`W_{receive}` in [0, 1]: the strongest of: a shared receiver phone (1), the same normalised
  shipping address (1), the same building / compound (``receive_compound``, 0.5), receipts of a
  co-purchased item within ``receive_window`` of each other (``receive_time``, 0.25). Crowdsourced
  scalpers forward goods to the operator: different spellings of a few addresses and phones.
* :math:`\alpha` = 0.5, :math:`\beta` = 3 by default: receipt similarity is the hardest signal for a
  recruited real user to hide (the goods must reach the operator), so it weighs most; time alignment
  weighs less because honest flash-sale crowds show it too.

Hot items are capped as in :mod:`fraudkit.capability.graphs`: an item with more than ``max_degree`` buyers pairs
each order only with the next ``k_neighbors`` orders in time, so the pair count is linear. Capping by
time alone would let a crowd hide inside a flash-sale crowd, so candidate pairs also come from a second
blocking key: buyers of the same item who ship to the same address compound or receiver phone (capped
the same way). Both candidate sets are merged before the formula is applied.

:func:`r_ab_edges` computes the edges of pandas frames in memory; :func:`r_ab_edges_sql` computes the same
edges (bit for bit) with SQL on a dataset's engine, DuckDB or Spark, and is what the graph stage runs.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from fraudkit.capability.graphs import (group_sum, require_columns, sort_order, thread_map, time_pairs, to_seconds,
                                       unique_int, usable_cores)
from fraudkit.data.sqlsource import open_source
from fraudkit.errors import FraudkitError, MissingInputError

__all__ = ["RabParams", "r_ab_edges", "r_ab_edges_sql", "normalize_address", "in_promotion",
           "consolidation_scores", "ORDERS_ORDER", "OrderEndpoints", "order_endpoints"]


@dataclass(frozen=True)
class RabParams:
    """Parameters of R(A,B) (see the module docstring for the formula).

    Parameters
    ----------
    window_normal : str, default="2d"
        Co-purchase window outside promotions.
    window_promo : str, default="12h"
        Co-purchase window inside promotions.
    alpha : float, default=0.5
        Weight of purchase-time similarity ``W_purchase``.
    beta : float, default=3.0
        Weight of receipt similarity ``W_receive``.
    receive_compound : float, default=0.5
        ``W_receive`` for the same compound (address up to the building number) but not the same address.
    receive_time : float, default=0.25
        ``W_receive`` for receipts of a co-purchased item within ``receive_window``.
    receive_window : str, default="2h"
    max_degree : int, default=200
        Items with more buyers are capped to ``k_neighbors`` time-nearest partners per order.
    k_neighbors : int, default=20
    min_k : int, default=1
        Keep pairs with at least this many co-purchased items.
    """

    window_normal: str = "2d"
    window_promo: str = "12h"
    alpha: float = 0.5
    beta: float = 3.0
    receive_compound: float = 0.5
    receive_time: float = 0.25
    receive_window: str = "2h"
    max_degree: int = 200
    k_neighbors: int = 20
    min_k: int = 1


R_AB_COLUMNS = ("src", "dst", "r_ab", "k", "c_a", "c_b", "w_purchase", "w_receive")

ORDERS_ORDER = ("ts", "account_id", "device_id", "product_id", "address", "receiver_phone", "received_at",
                "promotion_id")
"""The canonical order of the orders rows (nulls last) that :func:`r_ab_edges_sql` reads them in: the order the
graph stage holds them in (:func:`fraudkit.data.dataset.canonical_sort_keys` of its orders columns). Ties between
buyers or items are broken by first appearance in this order, as :func:`r_ab_edges` breaks them by row order."""


@dataclass(frozen=True)
class OrderEndpoints:
    """Where each order of one orders table is received, as integer codes: what R(A,B)'s second blocking key and
    ``W_receive`` and the consolidation test compare, computed once for all three. R(A,B) and the consolidation
    test each normalised the addresses and hashed the endpoint strings again: on the large scenario's 2.37M
    orders the addresses, R(A,B) and the consolidation test took 48.1 s that way, 32.0 s with these codes.

    Attributes
    ----------
    address, compound, phone : numpy.ndarray of int64 or None
        Per order row: the normalised address, its compound (:func:`normalize_address`) and the receiver phone,
        equal codes exactly where the values are equal, -1 where the order has none; None without the column.
        Codes increase with the values' first appearance (not always consecutive).
    normalised : pandas.Series or None
        The normalised address indexed by the raw address text (as ``str``), each distinct text once: what
        :func:`fraudkit.identification.graph.communities.community_evidence` reads as ``addresses``.
    text_code : numpy.ndarray of int64 or None
        Per order row, the position of its raw address in ``normalised`` (-1 where it has none).
    n_orders : int
        The number of order rows described.
    """

    address: np.ndarray | None
    compound: np.ndarray | None
    phone: np.ndarray | None
    normalised: pd.Series | None
    text_code: np.ndarray | None
    n_orders: int

    def rows(self, keep) -> OrderEndpoints:
        """The endpoints of the rows where the boolean mask ``keep`` is true."""
        def cut(a):
            return None if a is None else a[keep]
        return OrderEndpoints(cut(self.address), cut(self.compound), cut(self.phone), self.normalised,
                              cut(self.text_code), int(np.count_nonzero(keep)))

    def normalised_rows(self) -> np.ndarray | None:
        """Per order row, its normalised address text (object array, NaN where it has no address)."""
        if self.text_code is None:
            return None
        norm = self.normalised.to_numpy(dtype=object)
        out = np.full(len(self.text_code), np.nan, dtype=object)
        ok = self.text_code >= 0
        out[ok] = norm[self.text_code[ok]]
        return out


def order_endpoints(orders) -> OrderEndpoints:
    """:class:`OrderEndpoints` of an orders frame (its ``address`` and ``receiver_phone`` columns, either may be
    missing); each distinct address text is normalised once.

    Examples
    --------
    >>> import pandas as pd
    >>> e = order_endpoints(pd.DataFrame({"address": ["X路1号2栋", None, "X路1号2幢", "X路1号9栋"],
    ...                                   "receiver_phone": ["1", "2", None, "1"]}))
    >>> e.address.tolist(), e.compound.tolist(), e.phone.tolist()
    ([0, -1, 0, 2], [0, -1, 0, 0], [0, 1, -1, 0])
    """
    address = compound = phone = normalised = text_code = None
    if "address" in orders.columns:
        raw = orders["address"]
        notna = raw.notna().to_numpy()
        # nulls are one text here, as normalize_address reads them, and get no code below
        code, uniq = pd.factorize(pd.Series(raw, dtype=object).astype(str), sort=False)
        code = code.astype(np.int64)
        na = normalize_address(uniq)
        normalised = pd.Series(na["address"].to_numpy(), index=uniq)
        # a normalised value first appears with the first of its raw texts, so these codes increase with the
        # rows' values' first appearance, as a factorize of the rows would (the null rows' text takes a number)
        a_code = pd.factorize(na["address"], sort=False)[0].astype(np.int64)
        c_code = pd.factorize(na["compound"], sort=False)[0].astype(np.int64)
        address = np.where(notna, a_code[code], -1)
        compound = np.where(notna, c_code[code], -1)
        text_code = np.where(notna, code, -1)
    if "receiver_phone" in orders.columns:
        phone = pd.factorize(pd.Series(orders["receiver_phone"].to_numpy(), dtype=object), sort=False)[0]
        phone = phone.astype(np.int64)
    return OrderEndpoints(address, compound, phone, normalised, text_code, len(orders))


def _endpoints_of(orders, keep, endpoints, caller):
    """``endpoints`` (of every row of ``orders``) cut to the rows ``keep``, or computed for those rows."""
    if endpoints is None:
        return order_endpoints(orders[keep])
    if endpoints.n_orders != len(orders):
        raise FraudkitError(f"{caller}: endpoints describe {endpoints.n_orders} orders, the orders frame has "
                            f"{len(orders)}; pass order_endpoints(orders) of the same frame")
    return endpoints.rows(np.asarray(keep, dtype=bool))


def r_ab_edges(orders, products=None, promotions=None, *, params=RabParams(), endpoints=None) -> pd.DataFrame:
    """Buyer-buyer edges weighted by R(A,B).

    Parameters
    ----------
    orders : pandas.DataFrame
        The ``orders`` contract table (``account_id``, ``product_id``, ``ts``; ``address``,
        ``receiver_phone``, ``received_at`` and ``promotion_id`` used when present).
    products : pandas.DataFrame, optional
        Unused by the formula itself; accepted so callers can pass the table set uniformly.
    promotions : pandas.DataFrame, optional
        ``starts_at``/``ends_at`` windows; an order inside one (or with a ``promotion_id``) uses
        ``window_promo``.
    params : RabParams
    endpoints : OrderEndpoints, optional
        :func:`order_endpoints` of ``orders`` (every row), from a caller that computed them already; computed
        here otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns ``src``, ``dst``, ``r_ab``, ``k``, ``c_a``, ``c_b``, ``w_purchase``, ``w_receive``;
        ``weight`` is a copy of ``r_ab`` so the frame feeds :func:`fraudkit.identification.graph.communities.detect_communities`.

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"account_id": ["a", "b", "a", "b", "c"], "product_id": [1, 1, 2, 2, 1],
    ...     "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:01", "2024-01-01 11:00",
    ...                           "2024-01-01 11:02", "2024-01-05 09:00"]),
    ...     "address": ["X路1号2栋", "X路1号2幢", "X路1号2栋", "X路1号2栋", "Y路9号"],
    ...     "receiver_phone": ["1", "2", "1", "2", "3"]})
    >>> e = r_ab_edges(o)
    >>> e[["src", "dst", "k", "c_a", "c_b", "w_receive"]].values.tolist()
    [['a', 'b', 2, 2, 2, 1.0]]
    """

    require_columns(orders, ["account_id", "product_id", "ts"], "r_ab_edges(orders)")
    p = params
    keep = (orders["account_id"].notna() & orders["product_id"].notna()).to_numpy()
    o = orders[keep]
    ends = _endpoints_of(orders, keep, endpoints, "r_ab_edges")
    acc, acc_keys = pd.factorize(o["account_id"], sort=False)
    item, _ = pd.factorize(o["product_id"], sort=False)
    acc, item = acc.astype(np.int64), item.astype(np.int64)
    t = to_seconds(o["ts"])
    n_acc = max(len(acc_keys), 1)
    # distinct buyers per item (d_i) and distinct items per buyer (C)
    ai = unique_int(acc * (int(item.max(initial=0)) + 1) + item)
    d_item = np.bincount(ai % (int(item.max(initial=0)) + 1), minlength=int(item.max(initial=-1)) + 1)
    c_user = np.bincount(ai // (int(item.max(initial=0)) + 1), minlength=n_acc)
    promo = in_promotion(o, promotions)
    w_norm = int(pd.Timedelta(p.window_normal).total_seconds())
    w_promo = int(pd.Timedelta(p.window_promo).total_seconds())
    row_win = np.where(promo, w_promo, w_norm)
    hot_item = d_item > p.max_degree
    # first receipt of each row's (buyer, item), NaT as int64 min: W_receive's receipt-time term is read off the
    # candidate rows themselves (a function of (pair, item) only), never looked up per pair afterwards
    rfirst = _first_receipt(o, acc, item)
    rw = int(pd.Timedelta(p.receive_window).total_seconds())

    def by_item():
        return list(_candidates(item, t, acc, row_win, hot_item, p.k_neighbors, n_acc, rfirst=rfirst,
                                receive_window=rw))

    def by_endpoint(kc):
        """Second blocking key: same item and same receiving compound / phone (integer codes, -1 where none)."""
        ok = kc >= 0
        blk, _ = pd.factorize(pd.Series(item[ok] * (int(kc.max(initial=0)) + 1) + kc[ok]), sort=False)
        blk = blk.astype(np.int64)
        d_blk = np.bincount(unique_int(blk * n_acc + acc[ok]) // n_acc, minlength=int(blk.max(initial=-1)) + 1)
        return list(_candidates(blk, t[ok], acc[ok], row_win[ok], d_blk > p.max_degree, p.k_neighbors, n_acc,
                                item_of_row=item[ok], rfirst=None if rfirst is None else rfirst[ok],
                                receive_window=rw))

    # the blocking passes are independent NumPy work: on threads beside each other, their candidates kept in
    # the passes' order (so every sum below adds in the same order)
    passes = [by_item] + [functools.partial(by_endpoint, kc) for kc in (ends.compound, ends.phone)
                          if kc is not None]
    parts = [c for found in thread_map(lambda run: run(), passes) for c in found]
    if not parts:
        return _empty(acc_keys)
    pc_all, it_all, s_all = (np.concatenate([c[i] for c in parts]) for i in range(3))
    rcv_all = None if rfirst is None else np.concatenate([c[3] for c in parts])
    del parts
    # one co-purchase per (pair, item): the best-aligned one; pairs in order, their items in order of
    # first appearance (so sums round exactly as the groupby they replace)
    pi_p, pi_item, pi_s, pi_rcv = _best_per_pair_item(pc_all, it_all, s_all, int(item.max(initial=0)) + 1,
                                                      rcv_all)
    del pc_all, it_all, s_all, rcv_all
    if not len(pi_p):
        return _empty(acc_keys)
    starts = np.r_[0, np.flatnonzero(np.diff(pi_p)) + 1]
    k = np.diff(np.r_[starts, len(pi_p)]).astype(np.int64)
    keep = k >= p.min_k
    sum_w = group_sum(1.0 / np.log1p(d_item[pi_item]), starts)[keep]
    del pi_item
    w_purchase = (group_sum(pi_s, starts) / k)[keep]
    del pi_s
    pc = pi_p[starts][keep]
    del pi_p
    rcv = None if pi_rcv is None else np.logical_or.reduceat(pi_rcv, starts)[keep]
    del pi_rcv, starts
    k = k[keep]
    a, b = pc // n_acc, pc % n_acc
    del pc
    w_recv = _receive_similarity(ends, acc, a, b, rcv, params=p)
    del rcv
    c_a, c_b = c_user[a].astype(np.int64), c_user[b].astype(np.int64)
    r = (sum_w / np.sqrt(c_a * c_b) * (1 + p.alpha * w_purchase) * (1 + p.beta * w_recv))
    del sum_w
    # the arrays become the frame's columns as they are (no copy into blocks: 16M edges on large)
    out = pd.DataFrame({"src": acc_keys[a], "dst": acc_keys[b], "r_ab": r, "k": k,
                        "c_a": c_a, "c_b": c_b, "w_purchase": w_purchase, "w_receive": w_recv,
                        "weight": r.copy()}, copy=False)
    out.attrs["params"] = asdict(p)
    return out


def r_ab_edges_sql(data, *, params=RabParams()) -> pd.DataFrame:
    """:func:`r_ab_edges` as SQL on the data's engine (embedded DuckDB, or Spark): the same edges.

    Candidate pairs (one per blocking key: the item; the item and receiving compound; the item and
    receiver phone), hot-block capping, the best-aligned co-purchase per (pair, item), ``k``, ``C_A``,
    ``C_B`` and the receipt-sharing tests are one set of DuckDB-dialect statements run through
    :class:`~fraudkit.data.sqlsource.SqlSource` (transpiled for Spark). The engines return integers and
    exactly rounded ratios only; the logarithms, exponentials and the formula are applied here, in numpy, in
    the order :func:`r_ab_edges` applies them, so both functions and both engines give the same bits.
    Rows are read in :data:`ORDERS_ORDER`; on orders in that order the result equals
    ``r_ab_edges(orders, promotions=promotions, params=params)`` row for row.

    Parameters
    ----------
    data : fraudkit.data.dataset.Dataset, dict of str to DataFrame or SqlSource
        Reads ``orders`` (``account_id``, ``product_id``, ``ts``; ``address``, ``receiver_phone``,
        ``received_at``, ``promotion_id`` when present) and ``promotions`` when present.
    params : RabParams

    Returns
    -------
    pandas.DataFrame
        As :func:`r_ab_edges`.

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"account_id": ["a", "b", "a", "b", "c"], "product_id": [1, 1, 2, 2, 1],
    ...     "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:01", "2024-01-01 11:00",
    ...                           "2024-01-01 11:02", "2024-01-05 09:00"]),
    ...     "address": ["X路1号2栋", "X路1号2幢", "X路1号2栋", "X路1号2栋", "Y路9号"],
    ...     "receiver_phone": ["1", "2", "1", "2", "3"]})
    >>> e = r_ab_edges_sql({"orders": o})
    >>> e[["src", "dst", "k", "c_a", "c_b", "w_receive"]].values.tolist()
    [['a', 'b', 2, 2, 2, 1.0]]
    """
    p = params
    with open_source(data) as src:
        orders = src.require("orders", "r_ab_edges_sql")
        absent = {"account_id", "product_id"} & set(src.missing_columns.get("orders", ()))
        if absent:
            raise MissingInputError(f"r_ab_edges_sql(orders): the orders table lacks {sorted(absent)}; see "
                                    "fraudkit.data.contract.TABLES['orders']")
        rows = src.temp_table("rab_rows", _rows_sql(src, orders, p))
        blocks = src.temp_table("rab_blocks", _blocks_sql(rows, p))
        pair_items = src.temp_table("rab_pair_items", _pair_items_sql(blocks, p))
        pairs = src.temp_table("rab_pairs", _pairs_sql(rows, pair_items, p))
        values = src.temp_table("rab_values", _values_sql(rows))
        pair_values = src.temp_table("rab_pair_values", f"SELECT p.x, p.y, v.code FROM {pairs} p "
                                                         f"JOIN {values} v ON v.ar = p.x WHERE p.wide")
        e = src.df(_edges_sql(pairs, pair_values, values))
        buyers = src.df(f"SELECT ar, min(acc) AS acc FROM {rows} GROUP BY ar ORDER BY ar")
        # pairs with three or more items: Kahan sums in the order r_ab_edges meets the items (rare)
        many = src.df(f"""
            SELECT pi.x, pi.y, pi.d, pi.ratio, pi.first_block
            FROM {pair_items} pi JOIN (SELECT x, y FROM {pairs} WHERE k >= 3) p ON pi.x = p.x AND pi.y = p.y""")
        for name in (pair_values, values, pairs, pair_items, blocks, rows):
            src.drop_table(name)
    if not len(e):
        return _empty(pd.Index(buyers["acc"].to_numpy()))
    x, y = e["x"].to_numpy(np.int64), e["y"].to_numpy(np.int64)
    if len(x) > 1 and not ((x[1:] > x[:-1]) | ((x[1:] == x[:-1]) & (y[1:] > y[:-1]))).all():
        e = e.iloc[sort_order(x, y)].reset_index(drop=True)  # an engine that lost the order (no copy otherwise)
    del x, y
    buyers = buyers.sort_values("ar")  # ranks to account keys (a few per cent of the pairs' rows)
    ranks, keys = buyers["ar"].to_numpy(np.int64), buyers["acc"].to_numpy()
    k = e["k"].to_numpy(np.int64)
    two = k == 2
    sum_w = 1.0 / np.log1p(e["d_lo"].to_numpy(np.int64)) + np.where(two, 1.0 / np.log1p(e["d_hi"].to_numpy(np.int64)),
                                                                    0.0)
    sum_s = np.exp(-e["r_lo"].to_numpy(float)) + np.where(two, np.exp(-e["r_hi"].to_numpy(float)), 0.0)
    if len(many):
        many = many.iloc[sort_order(many["x"].to_numpy(np.int64), many["y"].to_numpy(np.int64),
                                    many["first_block"].to_numpy(np.int64))]
        pair = many["x"].to_numpy(np.int64) * (int(e["y"].max()) + 1) + many["y"].to_numpy(np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(pair)) + 1]
        at = np.flatnonzero(k >= 3)  # pairs sorted as the detail rows' pairs
        sum_w[at] = group_sum(1.0 / np.log1p(many["d"].to_numpy(np.int64)), starts)
        sum_s[at] = group_sum(np.exp(-many["ratio"].to_numpy(float)), starts)
    w_purchase = sum_s / k
    w_recv = np.zeros(len(e))
    for flag, score in (("shared_full", 1.0), ("shared_compound", p.receive_compound), ("rcv", p.receive_time)):
        hit = e[flag].fillna(False).to_numpy(bool)
        w_recv[hit] = np.maximum(w_recv[hit], score)
    c_a, c_b = e["c_a"].to_numpy(np.int64), e["c_b"].to_numpy(np.int64)
    r = sum_w / np.sqrt(c_a * c_b) * (1 + p.alpha * w_purchase) * (1 + p.beta * w_recv)
    src_key = keys[np.searchsorted(ranks, e["x"].to_numpy(np.int64))]
    dst_key = keys[np.searchsorted(ranks, e["y"].to_numpy(np.int64))]
    out = pd.DataFrame({"src": src_key, "dst": dst_key, "r_ab": r, "k": k,
                        "c_a": c_a, "c_b": c_b, "w_purchase": w_purchase, "w_receive": w_recv})
    out["weight"] = out["r_ab"]
    out.attrs["params"] = asdict(p)
    return out


def normalize_address(addresses) -> pd.DataFrame:
    """Normalised shipping address and its compound (text up to the building number).

    Undoes the small variations scalpers type: spaces, notes in brackets, ``幢``/``栋``, ``号院``/``号``,
    ``-``/``单元``, a dropped ``室``, Chinese numerals before ``栋``.

    Returns
    -------
    pandas.DataFrame
        Columns ``address`` (normalised) and ``compound``.

    Examples
    --------
    >>> normalize_address(["上海市X路1号三栋2单元301室 (放门口)", "上海市X路1号院3幢2-301"])["address"].nunique()
    1
    """
    # normalise each distinct address once (orders repeat a few hundred thousand addresses millions of times)
    code, uniq = pd.factorize(pd.Series(addresses, dtype=object).astype(str), sort=False)
    s = pd.Series(np.asarray(uniq, dtype=object))
    s = s.str.replace(r"[\s　]+", "", regex=True).str.replace(r"[(（][^)）]*[)）]", "", regex=True)
    s = s.str.replace("幢", "栋", regex=False).str.replace("号院", "号", regex=False)
    s = s.str.replace("-", "单元", regex=False).str.replace("室", "", regex=False)
    for k, v in zip("一二三四五六七八九", "123456789"):
        s = s.str.replace(k + "栋", v + "栋", regex=False)
    compound = s.str.extract(r"^(.*?号)", expand=False).fillna(s)
    return pd.DataFrame({"address": s.to_numpy()[code], "compound": compound.to_numpy()[code]})


def in_promotion(orders, promotions=None) -> np.ndarray:
    """Boolean mask: order has a ``promotion_id`` or its ``ts`` falls in a promotion window.

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"])})
    >>> pr = pd.DataFrame({"starts_at": pd.to_datetime(["2024-01-01 09:00"]),
    ...                    "ends_at": pd.to_datetime(["2024-01-01 12:00"])})
    >>> in_promotion(o, pr).tolist()
    [True, False]
    """
    m = orders["promotion_id"].notna().to_numpy() if "promotion_id" in orders.columns else np.zeros(len(orders), bool)
    if promotions is not None and len(promotions):
        miss = [c for c in ("starts_at", "ends_at") if c not in promotions.columns]
        if miss:
            raise MissingInputError(f"promotions lacks {miss}; see fraudkit.data.contract.TABLES['promotions']")
        pr = promotions.sort_values("starts_at")
        starts = pd.to_datetime(pr["starts_at"], cache=False).to_numpy("datetime64[s]").astype(np.int64)
        ends = np.maximum.accumulate(pd.to_datetime(pr["ends_at"], cache=False).to_numpy("datetime64[s]").astype(np.int64))
        t = pd.to_datetime(orders["ts"], cache=False).to_numpy("datetime64[s]").astype(np.int64)
        pos = np.searchsorted(starts, t, side="right") - 1
        m = m | ((pos >= 0) & (ends[np.maximum(pos, 0)] >= t))
    return m


def consolidation_scores(orders, *, window="4h", alpha=0.01, min_accounts=3, max_group=2000,
                         chunk_pairs=20_000_000, endpoints=None) -> pd.DataFrame:
    """Receipts aligned beyond what order times and delivery delays explain (crowd-scalper forwarding).

    Crowdsourced scalpers ship to a few consolidation points and the operator collects in one trip, so
    receipts of one item at one endpoint (normalised address or receiver phone) align even when the
    orders do not. For every order ``i`` with a receipt, in its group (endpoint, product), let ``c_i`` be
    the number of other accounts' orders received within ``window/2`` of it and, under the null that each
    order ``j`` is received after an independent delay drawn from the platform's delivery delays
    (empirical CDF ``F`` of ``received_at - ts``),
    ``lambda_i = sum_j F(r_i + w/2 - t_j) - F(r_i - w/2 - t_j)``. ``p_i = P(Poisson(lambda_i) >= c_i)``;
    an account's p-value is its smallest, Bonferroni-corrected over every order tested. An honest
    flash-sale crowd orders within minutes but ships to its own homes; neighbours at a parcel station
    receive a popular item at random hours — both are what the null expects.

    Parameters
    ----------
    orders : pandas.DataFrame
        ``account_id``, ``product_id``, ``ts``, ``received_at`` and ``address`` and/or ``receiver_phone``.
    window : timedelta-like, default="4h"
    alpha : float, default=0.01
        Family-wise error rate.
    min_accounts : int, default=3
        Groups with fewer distinct accounts are not tested.
    max_group : int, default=2000
        Larger groups (a mega-station's best seller) are not tested; counted in ``attrs["skipped_groups"]``.
    endpoints : OrderEndpoints, optional
        :func:`order_endpoints` of ``orders`` (every row), from a caller that computed them already; computed
        here otherwise.

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``log10_p`` (its best order), ``n_aligned`` (other accounts aligned with it there),
        ``score`` = ``min(1, log10_p / (2 * log10(alpha / n_tests)))`` — 0.5 is family-wise significance,
        1 its square; ``attrs``: ``n_tests``, ``log10_threshold``, ``skipped_groups``.

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
    >>> s = consolidation_scores(pd.concat([o, bg]))
    >>> s.loc[s["score"] >= 0.5, "account_id"].tolist()
    ['a', 'b', 'c', 'd', 'e', 'f']
    """
    from scipy.stats import poisson


    require_columns(orders, ["account_id", "product_id", "ts", "received_at"], "consolidation_scores(orders)")
    keep = (orders["received_at"].notna() & orders["account_id"].notna() & orders["product_id"].notna()).to_numpy()
    o = orders[keep]
    empty = pd.DataFrame({"account_id": orders["account_id"].to_numpy()[:0], "log10_p": np.array([], float),
                          "n_aligned": np.array([], np.int64), "score": np.array([], float)})
    empty.attrs.update({"n_tests": 0, "log10_threshold": np.nan, "skipped_groups": 0})
    if not len(o):
        return empty
    acc, acc_keys = pd.factorize(o["account_id"], sort=False)
    item, _ = pd.factorize(o["product_id"], sort=False)
    t, r = to_seconds(o["ts"]), to_seconds(o["received_at"])
    delays = np.sort(r - t)
    half = int(pd.Timedelta(window).total_seconds()) // 2
    ends = _endpoints_of(orders, keep, endpoints, "consolidation_scores")
    codes = [c for c in (ends.address, ends.phone) if c is not None]  # integer codes, -1 where none
    if not codes:
        raise MissingInputError("consolidation_scores: orders need address or receiver_phone")
    best = np.zeros(len(o))          # most negative log10 p per order
    aligned = np.zeros(len(o), np.int64)
    n_tests, skipped = 0, 0
    for ec in codes:
        ok = np.flatnonzero(ec >= 0)
        g, _ = pd.factorize(pd.Series(ec[ok].astype(np.int64) * (int(item.max()) + 1) + item[ok]), sort=False)
        n_acc_g = np.bincount(unique_int(g.astype(np.int64) * len(acc_keys) + acc[ok]) // len(acc_keys),
                              minlength=int(g.max(initial=-1)) + 1)
        size_g = np.bincount(g, minlength=len(n_acc_g))
        test = (n_acc_g[g] >= min_accounts) & (size_g[g] <= max_group)
        skipped += int(((size_g > max_group) & (n_acc_g >= min_accounts)).sum())
        rows, gg = ok[test], g[test]
        if not len(rows):
            continue
        order = np.argsort(gg, kind="stable")
        rows, gg = rows[order], gg[order]
        starts = np.r_[0, np.flatnonzero(np.diff(gg)) + 1]
        sizes = np.diff(np.r_[starts, len(gg)])
        per_row = np.repeat(sizes, sizes)
        first = np.repeat(starts, sizes)
        lam = np.zeros(len(rows))
        cnt = np.zeros(len(rows))
        for lo, hi in _chunk_bounds(np.cumsum(per_row), chunk_pairs):
            reps = per_row[lo:hi]
            i = np.repeat(np.arange(lo, hi), reps)
            j = first[i] + (np.arange(len(i)) - np.repeat(np.cumsum(reps) - reps, reps))
            other = acc[rows[i]] != acc[rows[j]]
            ri, tj, rj = r[rows[i]], t[rows[j]], r[rows[j]]
            pj = (np.searchsorted(delays, ri + half - tj, side="right")
                  - np.searchsorted(delays, ri - half - tj, side="left")) / len(delays)
            lam[lo:hi] = np.bincount(i - lo, weights=np.where(other, pj, 0.0), minlength=hi - lo)
            cnt[lo:hi] = np.bincount(i - lo, weights=(other & (np.abs(rj - ri) <= half)).astype(float),
                                     minlength=hi - lo)
        log10_p = poisson.logsf(cnt - 1, np.maximum(lam, 1e-12)) / np.log(10)
        n_tests += len(rows)
        better = log10_p < best[rows]
        best[rows[better]] = log10_p[better]
        aligned[rows] = np.maximum(aligned[rows], cnt.astype(np.int64))
    if not n_tests:
        return empty
    thr = float(np.log10(alpha / n_tests))
    f = pd.DataFrame({"a": acc, "lp": best, "n": aligned}).groupby("a").agg(lp=("lp", "min"), n=("n", "max"))
    out = pd.DataFrame({"account_id": acc_keys[f.index.to_numpy()], "log10_p": f["lp"].to_numpy(),
                        "n_aligned": f["n"].to_numpy(np.int64),
                        "score": np.clip(f["lp"].to_numpy() / (2 * thr), 0, 1)})
    out.attrs.update({"n_tests": int(n_tests), "log10_threshold": thr, "skipped_groups": skipped})
    return out


# --- private helpers ----------------------------------------------------------


def _candidates(ent, t, acc, row_win, hot, k_neighbors, n_acc, item_of_row=None, rfirst=None, receive_window=0):
    """Yield (pair code, item, time alignment s, receipts aligned rcv) arrays for co-purchases of one blocking key;
    ``rcv`` (None without ``rfirst``): both buyers' first receipts of the item within ``receive_window``."""

    item_of_row = ent if item_of_row is None else item_of_row
    order = sort_order(ent, t, acc)
    s_ent, s_t, s_acc, s_win, s_item = ent[order], t[order], acc[order], row_win[order], item_of_row[order]
    s_r = None if rfirst is None else rfirst[order]
    nat = np.iinfo(np.int64).min
    for i, j in time_pairs(s_ent, s_t, s_win, hot[s_ent], k_neighbors):
        a, b = s_acc[i], s_acc[j]
        ok = (a != b) & (s_t[j] - s_t[i] <= s_win[i])
        i, j, a, b = i[ok], j[ok], a[ok], b[ok]
        s = np.exp(-(s_t[j] - s_t[i]) / np.maximum(s_win[i], 1))
        rcv = None
        if s_r is not None:
            ri, rj = s_r[i], s_r[j]
            rcv = (ri != nat) & (rj != nat) & (np.abs(ri - rj) <= receive_window)
        yield np.minimum(a, b) * n_acc + np.maximum(a, b), s_item[i], s, rcv


_BLOCK = 2 ** 40  # first_block = part * _BLOCK + first row of the block: rows number fewer than 2^40


def _rows_sql(src, orders, p) -> str:
    """Orders with an account and a product, one row each: its rank ``rid`` in :data:`ORDERS_ORDER`, the buyer's
    rank ``ar`` (first appearance), the item's distinct buyers ``d``, seconds ``t``, co-purchase window ``win``,
    integer codes of the receiver phone, normalised address and compound, and ``rfirst``, the buyer's first
    receipt of the item (seconds)."""
    order = ", ".join(f"{c} NULLS LAST" for c in ORDERS_ORDER)
    w_norm = int(pd.Timedelta(p.window_normal).total_seconds())
    w_promo = int(pd.Timedelta(p.window_promo).total_seconds())
    raw = src.df(f"SELECT DISTINCT address FROM {orders} WHERE address IS NOT NULL")["address"]
    if len(raw):
        # each distinct text normalised once; the normalised address and compound coded as integers
        na = normalize_address(raw.to_numpy(dtype=object))
        addr = src.register("rab_addresses", pd.DataFrame({
            "raw": raw.astype(str).to_numpy(dtype=object),
            "address_id": pd.factorize(na["address"], sort=False)[0].astype(np.int64),
            "compound_id": pd.factorize(na["compound"], sort=False)[0].astype(np.int64)}))
    else:
        addr = ("(SELECT CAST(NULL AS VARCHAR) AS raw, CAST(NULL AS BIGINT) AS address_id, "
                "CAST(NULL AS BIGINT) AS compound_id WHERE 1 = 0)")
    promo = ""
    if src.has("promotions"):
        # the promotion windows' seconds, as in_promotion compares them
        promo = f"""LEFT JOIN (
                SELECT DISTINCT o.rid FROM o JOIN (
                    SELECT CAST(floor(epoch(starts_at)) AS BIGINT) AS s, CAST(floor(epoch(ends_at)) AS BIGINT) AS e
                    FROM {src.t.promotions}) pr ON o.t >= pr.s AND o.t <= pr.e) pr ON pr.rid = o.rid"""
    in_promo = "o.promotion_id IS NOT NULL" + (" OR pr.rid IS NOT NULL" if promo else "")
    return f"""
        WITH phones AS (
            SELECT phone, row_number() OVER (ORDER BY phone) AS phone_id FROM (
                SELECT DISTINCT CAST(receiver_phone AS VARCHAR) AS phone FROM {orders}
                WHERE receiver_phone IS NOT NULL) u),
        o AS (
            SELECT account_id AS acc, product_id AS item, CAST(address AS VARCHAR) AS raw_address,
                   CAST(receiver_phone AS VARCHAR) AS phone, promotion_id,
                   CAST(floor(epoch(ts)) AS BIGINT) AS t, CAST(floor(epoch(received_at)) AS BIGINT) AS received,
                   row_number() OVER (ORDER BY {order}) AS rid
            FROM {orders} WHERE account_id IS NOT NULL AND product_id IS NOT NULL)
        SELECT o.rid, o.acc, o.item, o.t, ph.phone_id, a.address_id, a.compound_id,
               CASE WHEN {in_promo} THEN {w_promo} ELSE {w_norm} END AS win,
               min(o.rid) OVER (PARTITION BY o.acc) AS ar, d.d,
               min(o.received) OVER (PARTITION BY o.acc, o.item) AS rfirst
        FROM o {promo} LEFT JOIN {addr} a ON a.raw = o.raw_address LEFT JOIN phones ph ON ph.phone = o.phone
             JOIN (SELECT item, count(DISTINCT acc) AS d FROM o GROUP BY item) d ON d.item = o.item"""


def _blocks_sql(rows, p) -> str:
    """The rows of each blocking key (``part`` 0: item; 1: item and compound; 2: item and receiver phone) that two
    or more buyers share, a block named by its first row ``blk``, its rows numbered ``rn`` in time (then buyer,
    then row) and ``hot`` when more than ``max_degree`` buyers share it. Blocks of one buyer pair nothing and
    are left out (most compound and phone blocks)."""
    parts = " UNION ALL ".join(
        f"SELECT {i} AS part, item, d, {key} AS bkey, rid, ar, t, win, rfirst FROM {rows} WHERE d >= 2{where}"
        for i, key, where in ((0, "CAST(NULL AS BIGINT)", ""), (1, "compound_id", " AND compound_id IS NOT NULL"),
                              (2, "phone_id", " AND phone_id IS NOT NULL")))
    return f"""
        WITH b AS (SELECT *, min(rid) OVER (PARTITION BY part, item, bkey) AS blk FROM ({parts}) u),
        h AS (SELECT part, blk, count(DISTINCT ar) > {int(p.max_degree)} AS hot FROM b GROUP BY part, blk
              HAVING count(DISTINCT ar) >= 2)
        SELECT b.part, b.blk, b.item, b.d, b.ar, b.t, b.win, b.rfirst, h.hot,
               row_number() OVER (PARTITION BY b.part, b.blk ORDER BY b.t, b.ar, b.rid) AS rn
        FROM b JOIN h ON h.part = b.part AND h.blk = b.blk"""


def _pair_items_sql(blocks, p) -> str:
    """One row per (pair, item): buyers ``x < y`` (ranks), the item's buyers ``d``, the smallest time offset over
    window ``ratio`` (the best-aligned co-purchase), ``rcv`` (first receipts within ``receive_window``) and
    ``first_block``, where :func:`r_ab_edges` first meets the (pair, item). A hot block's row pairs only with its next
    ``k_neighbors`` rows."""
    rw = int(pd.Timedelta(p.receive_window).total_seconds())
    offsets = ", ".join(f"({i})" for i in range(1, int(p.k_neighbors) + 1)) or "(0)"
    cand = f"""
        SELECT a.part, a.blk, a.item, a.d, a.ar AS a_ar, b.ar AS b_ar, a.t AS a_t, b.t AS b_t, a.win,
               a.rfirst AS a_r, b.rfirst AS b_r
        FROM (SELECT * FROM {blocks} WHERE NOT hot) a JOIN (SELECT * FROM {blocks} WHERE NOT hot) b
             ON a.part = b.part AND a.blk = b.blk AND b.rn > a.rn AND b.t <= a.t + a.win
        WHERE a.ar <> b.ar
        UNION ALL
        SELECT a.part, a.blk, a.item, a.d, a.ar, b.ar, a.t, b.t, a.win, a.rfirst, b.rfirst
        FROM (SELECT h.*, h.rn + n.k AS next_rn FROM {blocks} h CROSS JOIN (VALUES {offsets}) n(k)
              WHERE h.hot AND n.k > 0) a
             JOIN (SELECT * FROM {blocks} WHERE hot) b ON a.part = b.part AND a.blk = b.blk AND b.rn = a.next_rn
        WHERE b.t <= a.t + a.win AND a.ar <> b.ar"""
    return f"""
        SELECT least(a_ar, b_ar) AS x, greatest(a_ar, b_ar) AS y, item, min(d) AS d,
               min(CAST(b_t - a_t AS DOUBLE) / CAST(greatest(win, 1) AS DOUBLE)) AS ratio,
               bool_or(a_r IS NOT NULL AND b_r IS NOT NULL AND abs(a_r - b_r) <= {rw}) AS rcv,
               min(part * {_BLOCK} + blk) AS first_block
        FROM ({cand}) c GROUP BY least(a_ar, b_ar), greatest(a_ar, b_ar), item"""


def _pairs_sql(rows, pair_items, p) -> str:
    """Per pair (buyer ranks ``x``, ``y``) with at least ``min_k`` items: ``k``, ``C_A``/``C_B``, the item
    degrees and ratios of pairs with one or two items, ``rcv``, and the receipt-sharing flags (a shared receiver
    phone or normalised address: ``shared_full``; a shared compound: ``shared_compound``) of the kinds where
    both buyers have at most two values, compared directly (most buyers); ``wide`` marks the pairs where a
    buyer has more, completed by :func:`_edges_sql` (W_receive's lookups only where they can matter)."""
    def two(k):  # at most two values each: their min and max are all of them
        eq = " OR ".join(f"ax.{k}{i} = ay.{k}{j}" for i in (1, 2) for j in (1, 2))
        return f"coalesce(ax.n_{k} <= 2 AND ay.n_{k} <= 2 AND ({eq}), false)"

    counts = ", ".join(f"count(DISTINCT {c}_id) AS n_{k}, min({c}_id) AS {k}1, max({c}_id) AS {k}2"
                       for c, k in (("phone", "p"), ("address", "a"), ("compound", "c")))
    return f"""
        WITH acc AS (SELECT ar, count(DISTINCT item) AS c, {counts} FROM {rows} GROUP BY ar)
        SELECT p.x, p.y, p.k, ax.c AS c_a, ay.c AS c_b, p.d_lo, p.d_hi, p.r_lo, p.r_hi, p.rcv,
               {two("p")} OR {two("a")} AS shared_full, {two("c")} AS shared_compound,
               greatest(ax.n_p, ax.n_a, ax.n_c, ay.n_p, ay.n_a, ay.n_c) > 2 AS wide
        FROM (SELECT x, y, count(*) AS k, min(d) AS d_lo, max(d) AS d_hi, min(ratio) AS r_lo, max(ratio) AS r_hi,
                     bool_or(rcv) AS rcv
              FROM {pair_items} GROUP BY x, y HAVING count(*) >= {int(p.min_k)}) p
             JOIN acc ax ON ax.ar = p.x JOIN acc ay ON ay.ar = p.y"""


def _values_sql(rows) -> str:
    """Each buyer's distinct receiving values, one integer ``code`` each: ``_BLOCK * kind + id``, kind 0 a receiver
    phone, 1 a normalised address, 2 a compound."""
    return " UNION ALL ".join(f"SELECT DISTINCT ar, {i * _BLOCK} + {c}_id AS code FROM {rows} WHERE {c}_id IS NOT NULL"
                              for i, c in enumerate(("phone", "address", "compound")))


def _edges_sql(pairs, pair_values, values) -> str:
    """:func:`_pairs_sql`'s rows, the receipt-sharing flags of the ``wide`` pairs completed by lookups.

    ``pair_values`` holds each wide pair with every value of ``x``; looking each up among ``y``'s values is a
    join of two relations, so no engine can start from the buyers who share a value (a compound shared by
    thousands)."""
    return f"""
        WITH shared AS (
            SELECT pv.x, pv.y, bool_or(pv.code < {2 * _BLOCK}) AS shared_full,
                   bool_or(pv.code >= {2 * _BLOCK}) AS shared_compound
            FROM {pair_values} pv JOIN {values} v ON v.ar = pv.y AND v.code = pv.code
            GROUP BY pv.x, pv.y)
        SELECT p.x, p.y, p.k, p.c_a, p.c_b, p.d_lo, p.d_hi, p.r_lo, p.r_hi, p.rcv,
               p.shared_full OR coalesce(s.shared_full, false) AS shared_full,
               p.shared_compound OR coalesce(s.shared_compound, false) AS shared_compound
        FROM {pairs} p LEFT JOIN shared s ON s.x = p.x AND s.y = p.y
        ORDER BY p.x, p.y"""


def _first_receipt(o, acc, item):
    """Per order row: the first ``received_at`` (int64 seconds) of its (buyer, item), int64 min where none;
    None without a ``received_at`` column."""
    if "received_at" not in o.columns:
        return None
    nat = np.iinfo(np.int64).min
    rt = pd.to_datetime(o["received_at"], cache=False)
    ok = rt.notna().to_numpy()
    r = np.full(len(o), nat, dtype=np.int64)
    if not ok.any():
        return r
    r[ok] = rt[ok].to_numpy("datetime64[s]").astype(np.int64)
    code = acc.astype(np.int64) * (int(item.max(initial=0)) + 1) + item
    order = np.argsort(code, kind="stable")
    sc = code[order]
    st = np.r_[0, np.flatnonzero(np.diff(sc)) + 1]
    big = np.iinfo(np.int64).max
    lo = np.minimum.reduceat(np.where(r[order] == nat, big, r[order]), st)
    lo = np.where(lo == big, nat, lo)
    out = np.empty(len(o), dtype=np.int64)
    out[order] = np.repeat(lo, np.diff(np.r_[st, len(sc)]))
    return out


def _empty(acc_keys):
    out = pd.DataFrame({"src": acc_keys[:0], "dst": acc_keys[:0], "r_ab": np.array([], float),
                        "k": np.array([], np.int64), "c_a": np.array([], np.int64), "c_b": np.array([], np.int64),
                        "w_purchase": np.array([], float), "w_receive": np.array([], float)})
    out["weight"] = out["r_ab"]
    return out


def _receive_similarity(ends, acc, a, b, receipts_aligned, *, params):
    """W_receive for pairs (a, b) (account codes), by sorted-code lookups (no merges of pair tables); ``ends``
    the rows' :class:`OrderEndpoints`.

    ``receipts_aligned`` (or None): per pair, whether a co-purchased item's first receipts by the two buyers
    are within ``receive_window`` (gathered while the pairs were generated). Each sharing test runs only on
    the pairs whose W_receive its score could still raise.
    """
    w = np.zeros(len(a))
    if not len(a):
        return w
    n_acc_all = int(acc.max(initial=-1)) + 1

    def shared(codes, score):
        need = np.flatnonzero(w < score)  # a pair already at or above this score keeps its W_receive
        if codes is None or not len(need):
            return
        ok = codes >= 0
        n_v = int(codes.max(initial=-1)) + 1
        av = unique_int(acc[ok].astype(np.int64) * max(n_v, 1) + codes[ok])  # sorted (account, value)
        hit = _pairs_share(a[need], b[need], av // max(n_v, 1), av % max(n_v, 1), n_acc_all, max(n_v, 1))
        w[need[hit]] = score

    shared(ends.phone, 1.0)
    shared(ends.address, 1.0)
    shared(ends.compound, params.receive_compound)
    if receipts_aligned is not None:
        w[receipts_aligned] = np.maximum(w[receipts_aligned], params.receive_time)
    return w


def _pairs_share(a, b, av_acc, av_val, n_acc, n_v, chunk=4_000_000, min_parts=1_000_000):
    """Whether accounts ``a[i]`` and ``b[i]`` share a value; ``(av_acc, av_val)`` distinct, sorted by account.

    Each pair is expanded by the values of whichever account has fewer, and each is looked up among the
    other account's; memory stays bounded by processing pairs in chunks of about ``chunk`` expansions. Each
    pair's answer is its own, so from ``min_parts`` pairs on they are cut in one contiguous part per core, the
    parts on threads.
    """
    lo_idx = np.searchsorted(av_acc, np.arange(n_acc + 1))
    cnt = np.diff(lo_idx)
    if not len(av_val):
        return np.zeros(len(a), bool)
    # most buyers have one or two values: compare those pairs directly (the first two values of each buyer,
    # padded with -1 on one side and -2 on the other); a pair with a value-less buyer shares none
    top = max(len(av_val) - 1, 0)
    v1 = av_val[np.minimum(lo_idx[:-1], top)]
    v2 = np.where(cnt >= 2, av_val[np.minimum(lo_idx[:-1] + 1, top)], -1)
    # the distinct codes hashed once (a lookup of the unsorted expansions by binary search took 3.6 s on large),
    # the hash table built before the threads read it
    known = pd.Index(av_acc * n_v + av_val)
    known.get_indexer(known[:1])

    def part(bounds):
        lo, hi = bounds
        return _share_part(a[lo:hi], b[lo:hi], lo_idx, cnt, v1, v2, av_val, known, n_v, chunk)

    cut = np.linspace(0, len(a), usable_cores() + 1).astype(np.int64) if len(a) >= min_parts else np.r_[0, len(a)]
    return np.concatenate(thread_map(part, list(zip(cut[:-1], cut[1:]))))


def _share_part(a, b, lo_idx, cnt, v1, v2, av_val, known, n_v, chunk):
    """:func:`_pairs_share` of one part of the pairs."""
    out = np.zeros(len(a), bool)
    ca, cb = cnt[a], cnt[b]
    small = np.flatnonzero((ca > 0) & (cb > 0) & (ca <= 2) & (cb <= 2))
    xa, xb = a[small], b[small]
    a1, a2, b1 = v1[xa], v2[xa], v1[xb]
    b2 = np.where(cnt[xb] >= 2, v2[xb], -2)
    out[small] = (a1 == b1) | (a1 == b2) | (a2 == b1) | (a2 == b2)
    del small, xa, xb, a1, a2, b1, b2
    rest = np.flatnonzero((ca > 0) & (cb > 0) & ((ca > 2) | (cb > 2)))
    del ca, cb
    if not len(rest):
        return out
    a, b = a[rest], b[rest]
    x = np.where(cnt[a] <= cnt[b], a, b)
    y = np.where(cnt[a] <= cnt[b], b, a)
    del a, b
    reps = cnt[x]
    for start, stop in _chunk_bounds(np.cumsum(reps), chunk):
        r = reps[start:stop]
        row = np.repeat(np.arange(start, stop), r)
        k = np.arange(len(row)) - np.repeat(np.cumsum(r) - r, r)
        v = av_val[lo_idx[x[row]] + k]
        found = known.get_indexer(y[row] * n_v + v) >= 0
        out[rest[row[found]]] = True
    return out


def _chunk_bounds(csum, chunk):
    """``(lo, hi)`` row ranges whose expansions (``csum`` = running total of per-row sizes) sum to about ``chunk``.

    Every range holds at least one row, so a row larger than ``chunk`` gets a range of its own.

    Examples
    --------
    >>> list(_chunk_bounds(np.cumsum([2, 2, 5, 1]), 4))
    [(0, 2), (2, 3), (3, 4)]
    """
    lo, n = 0, len(csum)
    while lo < n:
        base = csum[lo - 1] if lo else 0
        hi = min(max(int(np.searchsorted(csum, base + chunk, side="right")), lo + 1), n)
        yield lo, hi
        lo = hi


def _best_per_pair_item(pc, item, s, n_item, rcv=None):
    """Distinct (pair, item) with the largest ``s`` (and ``rcv``, the same on every row of a (pair, item));
    pairs sorted, items of a pair in order of first row."""
    code = pc * n_item + item
    if not len(code):
        return code, code.copy(), np.zeros(0), None if rcv is None else np.zeros(0, bool)
    order = np.argsort(code)  # ties in any order: first row and best s are reductions
    code = code[order]
    st = np.r_[0, np.flatnonzero(np.diff(code)) + 1]
    first_row = np.minimum.reduceat(order, st)
    smax = np.maximum.reduceat(s[order], st)
    r = None if rcv is None else rcv[order[st]]
    code = code[st]
    pair = code // n_item
    pair_rank = np.r_[0, np.cumsum(pair[1:] != pair[:-1])]
    by = np.argsort(pair_rank * len(order) + first_row)  # pairs in order, items by first appearance
    code, smax = code[by], smax[by]
    return code // n_item, code % n_item, smax, None if r is None else r[by]
