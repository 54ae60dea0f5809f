"""Point-in-time slices of a dataset's tables: what was known at a moment.

The closed loop scores each window on the data known at its end; the own-labels path trains on the data's
earlier part (``fraudkit score --labels --train-until``). Both cut the tables here, one way.
"""

from __future__ import annotations

import pandas as pd

from fraudkit.data.contract import LABEL_TABLE, TABLES

__all__ = ["slice_tables"]


def slice_tables(tables: dict, end, *, list_store=None) -> dict:
    """The point-in-time view of the data at ``end``: every timed row strictly before it.

    Rows are cut on each table's time column (``fraudkit.data.contract``); orders received after
    ``end`` lose ``received_at`` (not yet known then); untimed tables (products, merchants) are
    kept whole; the labels table is left out. ``list_store`` entries added before ``end`` are
    appended to ``list_entries`` (ids as text), so features, rules and decisions see the loop's lists.
    A row another kept row points to (a device used a little before its ``first_seen``) is
    kept, so the slice stays referentially whole.

    Examples
    --------
    >>> import pandas as pd
    >>> t = {"orders": pd.DataFrame({"order_id": [1, 2], "ts": pd.to_datetime(["2024-06-01", "2024-06-03"]),
    ...                              "received_at": pd.to_datetime(["2024-06-04", None])})}
    >>> s = slice_tables(t, "2024-06-02")["orders"]
    >>> s["order_id"].tolist(), s["received_at"].isna().tolist()
    ([1], [True])
    """
    end = pd.Timestamp(end)
    out = {}
    for name, t in tables.items():
        if name == LABEL_TABLE.name or t is None:
            continue
        spec = TABLES.get(name)
        col = spec.time_column if spec is not None else None
        if col is None or col not in t.columns:
            out[name] = t
            continue
        s = t[pd.to_datetime(t[col], cache=False) < end]
        if name == "orders" and "received_at" in s.columns:
            s = s.assign(received_at=s["received_at"].where(pd.to_datetime(s["received_at"], cache=False) < end))
        out[name] = s.reset_index(drop=True)
    _keep_referenced(out, tables)
    if list_store is not None and len(list_store.entries):
        e = list_store.entries
        e = e[(e["added_at"] < end) & e["removed_at"].isna()][list(TABLES["list_entries"].column_names)]
        if len(e):
            base = out.get("list_entries")
            base = base.assign(entry_id=base["entry_id"].astype(str)) if base is not None else None
            both = pd.concat([base, e.assign(entry_id="loop-" + e["entry_id"].astype(str))], ignore_index=True) \
                if base is not None else e.assign(entry_id="loop-" + e["entry_id"].astype(str))
            out["list_entries"] = both.reset_index(drop=True)
    return out


# --- private helpers ----------------------------------------------------------------------------


def _keep_referenced(out, tables):
    """Add back rows of referenced tables (accounts, devices, promotions) that kept rows point to."""
    for name, t in list(out.items()):
        spec = TABLES.get(name)
        if spec is None:
            continue
        for c in spec.columns:
            if not c.references or c.name not in t.columns:
                continue
            ref_table, ref_col = c.references.split(".")
            if ref_table not in out or ref_table == name:
                continue
            have = out[ref_table]
            need = pd.Index(t[c.name].dropna().unique()).difference(pd.Index(have[ref_col]))
            if len(need):
                full = tables[ref_table]
                out[ref_table] = pd.concat([have, full[full[ref_col].isin(need)]], ignore_index=True)
