"""Entity resolution before scoring: one key per real address and phone, rows and order kept."""

import pandas as pd

from fraudkit.data.dataset import Dataset
from fraudkit.pipeline.resolution import resolve_entities, resolve_tables

T = pd.Timestamp("2024-06-01")

RING = ["上海市浦东新区张江路88号5号楼301室", "张江路88号5-301", "Rm 301 Bldg 5, 88 Zhangjiang Rd",
        "Building 5, Room 301, No. 88 Zhangjiang Road, Pudong, Shanghai", "张江路88号5栋301室(放门口)"]
OTHER = "上海市浦东新区张江路88号5号楼302室"  # the neighbour's flat: never merged


def _tables():
    n = len(RING) + 1
    accounts = pd.DataFrame({"account_id": range(1, n + 1), "registered_at": T, "register_channel": "app",
                             "phone": ["+86 138-0013-8000", "13800138000", None, "008613800138000",
                                       "139 0000 0001", "13900000002"]})
    orders = pd.DataFrame({"order_id": range(100, 100 + n), "ts": T + pd.to_timedelta(range(n), unit="h"),
                           "account_id": range(1, n + 1), "device_id": None, "ip": "10.0.0.1",
                           "product_id": 7, "quantity": 1, "paid_price": 10.0, "coupon_id": None,
                           "promotion_id": None, "address": RING + [OTHER],
                           "receiver_phone": ["+86 138-0013-8000", "13800138000", "008613800138000", "138 0013 8000",
                                              "13900000001", "13900000002"], "received_at": pd.NaT})
    interactions = pd.DataFrame({"event_id": [1], "ts": [T], "account_id": [1], "device_id": [None],
                                 "ip": ["10.0.0.1"], "action": ["like"], "target_id": [5]})
    lists = pd.DataFrame({"entry_id": [1], "list_type": "blacklist", "list_name": "scalper_addresses",
                          "entity_type": "address", "entity_id": ["张江路88号5号楼301"], "scope": "global",
                          "reason": "ring", "added_at": T, "expires_at": pd.NaT})
    return {"accounts": accounts, "interactions": interactions, "orders": orders, "list_entries": lists}


def test_a_ring_typed_five_ways_is_one_address_and_rows_keep_their_order():
    tables = _tables()
    ds = Dataset.from_tables(tables)
    notes = []
    r = resolve_entities(ds, notes=notes)
    o = r.to_pandas("orders")
    assert o["order_id"].tolist() == tables["orders"]["order_id"].tolist()
    assert o["address"].iloc[:5].nunique() == 1 and o["address"].iloc[5] == OTHER
    assert o["address"].iloc[0] in RING  # a spelling the rows use, not a technical key
    # the listed spelling is the ring's address too: a list hit on every order of the ring
    assert r.to_pandas("list_entries")["entity_id"].tolist() == [o["address"].iloc[0]]
    phones = r.to_pandas("accounts")["phone"].tolist()
    assert phones[:2] == ["13800138000"] * 2 and phones[2] is None and phones[3] == "13800138000"
    assert phones[4] != phones[5]
    assert o["receiver_phone"].tolist() == ["13800138000"] * 4 + ["13900000001", "13900000002"]
    assert notes == ["entity resolution: 7 distinct address strings -> 2 address keys",
                     "entity resolution: 7 distinct phone strings -> 3 phone keys"]
    # the pandas path gives the same keys
    t = resolve_tables(tables)
    assert t["orders"]["address"].tolist() == o["address"].tolist()
    assert t["accounts"]["phone"].tolist() == phones
    assert tables["orders"]["address"].tolist()[:5] == RING  # inputs are not modified


def test_each_entity_is_spelled_as_its_most_used_string_as_by_one_sort():
    """Keys of one row keep their own spelling, the others are sorted: the spelling one sort of every row gives
    (most rows, ties to the first in text order)."""
    import numpy as np

    from fraudkit.pipeline.resolution import _most_used_spelling

    rng = np.random.default_rng(3)
    m = 5000
    key = np.array([f"k{i}" for i in rng.integers(0, 3000, m)], dtype=object)
    spelling = np.array([f"s{i}" for i in rng.integers(0, 40, m)], dtype=object)
    n = rng.integers(1, 4, m)  # many ties
    want = (pd.DataFrame({"key": key, "v": spelling, "n": n})
            .sort_values(["key", "n", "v"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("key").set_index("key")["v"])
    got = _most_used_spelling(key, spelling, n)
    assert got.index.is_unique and len(got) == len(want) and (pd.Series(key).duplicated(keep=False)).any()
    assert got.sort_index().equals(want.sort_index().astype(object))
