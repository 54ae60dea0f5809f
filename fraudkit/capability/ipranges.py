"""IP ranges: the /24 network of an IPv4 address, one key format in Python and in SQL.

The key of a /24 is ``"a.b.c.0/24"`` (CIDR notation) everywhere: the ``ip24``
features (:mod:`fraudkit.capability.features`, computed in DuckDB with
:func:`ip24_sql`), the ``ip24`` nodes of the heterogeneous graph
(:mod:`fraudkit.capability.graphs`, pandas or DuckDB), and the group detectors
(:func:`ip24_array`). Anything that is not a dotted-quad IPv4 address (IPv6,
text) has no /24: null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["IP24_PATTERN", "ip24", "ip24_array", "ip24_sql"]

IP24_PATTERN = r"^([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+$"
"""The IPv4 address and its first three octets (group 1); the same regular expression in Python and DuckDB."""

_SUFFIX = ".0/24"


def ip24(ips) -> pd.Series:
    """The /24 network (``a.b.c.0/24``) of IPv4 address strings; null and non-IPv4 give null.

    Parameters
    ----------
    ips : array-like of str
        Not modified.

    Returns
    -------
    pandas.Series of object
        Positional index (0..n-1).

    Examples
    --------
    >>> ip24(["10.1.2.3", None, "2001:db8::1"]).tolist()
    ['10.1.2.0/24', None, None]
    """
    return pd.Series(ip24_array(ips), dtype=object)


def ip24_array(ips) -> np.ndarray:
    """:func:`ip24` as an object array, computed once per distinct address.

    Examples
    --------
    >>> ip24_array(["10.1.2.3", "10.1.2.200", "x"]).tolist()
    ['10.1.2.0/24', '10.1.2.0/24', None]
    """
    codes, uniq = pd.factorize(pd.Series(np.asarray(ips, dtype=object), dtype=object))
    if len(uniq) == 0:
        return np.full(len(codes), None, dtype=object)
    head = pd.Series(np.asarray(uniq, dtype=object)).astype(str).str.extract(IP24_PATTERN, expand=False)
    net = np.where(head.notna().to_numpy(), (head + _SUFFIX).to_numpy(dtype=object), None)
    return np.where(codes >= 0, net[np.maximum(codes, 0)], None)


def ip24_sql(column: str) -> str:
    """DuckDB expression of the /24 network of ``column``; the same keys as :func:`ip24` (null when not IPv4).

    Examples
    --------
    >>> import duckdb
    >>> duckdb.sql("SELECT " + ip24_sql("ip") + " AS n FROM (VALUES ('10.1.2.3'), ('x')) t(ip)").fetchall()
    [('10.1.2.0/24',), (None,)]
    """
    return f"NULLIF(regexp_extract({column}, '{IP24_PATTERN}', 1) || '{_SUFFIX}', '{_SUFFIX}')"
