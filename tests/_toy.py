"""A tiny seeded platform for stage-1 tests: honest users, a device farm, a scalper ring.

Small (a few thousand rows) so each test file runs in seconds; built with numpy
from a seed so results are exact. Labels are returned separately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-03-01")


def toy_tables(seed: int = 0, *, n_honest: int = 120, n_farm: int = 24, n_scalper: int = 12) -> dict:
    rng = np.random.default_rng(seed)
    n = n_honest + n_farm + n_scalper
    ids = np.arange(1, n + 1)
    farm = ids[n_honest:n_honest + n_farm]
    scal = ids[n_honest + n_farm:]
    reg = T0 - pd.to_timedelta(rng.integers(30, 400, n), unit="D")
    reg = np.where(np.isin(ids, farm), T0 - pd.Timedelta(days=2), reg)
    accounts = pd.DataFrame({"account_id": ids, "registered_at": pd.to_datetime(reg),
                             "register_channel": np.where(np.isin(ids, farm), "third_party", "app"),
                             "phone": [f"138{rng.integers(10**7, 10**8)}" for _ in ids]})
    accounts.loc[accounts.account_id.isin(scal), "phone"] = "13900000000"

    # devices: honest own one each (model M1 with screen 1170x2532 or M2); farm: 3 clones with a wrong screen
    dev_rows = []
    for i, a in enumerate(ids[:n_honest]):
        model = "M1" if i % 2 == 0 else "M2"
        dev_rows.append((f"h{a}", model, "ios", f"16.{i % 3}", "1170x2532" if model == "M1" else "1080x2400",
                         "8.1", False, False, f"fp{model}{i % 3}"))
    for k in range(3):
        dev_rows.append((f"f{k}", "M1", "ios", "16.0", "750x1334", "8.1", False, k == 0, "fpFARM"))
    for a in scal:
        dev_rows.append((f"s{a}", "M2", "android", "13", "1080x2400", "8.1", bool(a % 2), False, f"fps{a}"))
    devices = pd.DataFrame(dev_rows, columns=["device_id", "model", "os", "os_version", "screen", "app_version",
                                              "is_emulator", "is_rooted", "fingerprint"])
    devices["first_seen"] = T0 - pd.Timedelta(days=3)

    notes = pd.DataFrame({"note_id": np.arange(1000, 1060), "author_id": rng.choice(ids[:n_honest], 60),
                          "created_at": T0 - pd.Timedelta(days=10), "category": rng.choice(["food", "travel"], 60)})
    pop = np.linspace(3, 0.1, 50)
    pop /= pop.sum()
    rows = []
    for a in ids[:n_honest]:
        t = T0 + pd.Timedelta(hours=float(rng.uniform(8, 20)))
        for _ in range(int(rng.integers(5, 30))):
            note = int(rng.choice(np.arange(1000, 1050), p=pop))
            rows.append((t, a, f"h{a}", f"10.0.{a % 7}.{a}", "view", note))
            if rng.random() < 0.3:
                rows.append((t + pd.Timedelta(seconds=float(rng.uniform(5, 90))), a, f"h{a}", f"10.0.{a % 7}.{a}",
                             "like", note))
            t += pd.Timedelta(minutes=float(rng.exponential(40)))
    # farm: scripted like+collect on the 10 unpopular notes, fixed 2 s gaps, at night, 3 shared devices
    for j, a in enumerate(farm):
        t = T0 + pd.Timedelta(days=1, hours=2, seconds=int(rng.integers(0, 600)))
        for note in range(1050, 1060):
            rows.append((t, a, f"f{j % 3}", "172.16.0.9", "like", note))
            rows.append((t + pd.Timedelta(seconds=2), a, f"f{j % 3}", "172.16.0.9", "collect", note))
            t += pd.Timedelta(seconds=4)
    interactions = pd.DataFrame(rows, columns=["ts", "account_id", "device_id", "ip", "action", "target_id"])
    interactions = interactions.sort_values(["ts", "account_id"], kind="stable").reset_index(drop=True)
    interactions.insert(0, "event_id", np.arange(len(interactions)))

    products = pd.DataFrame({"product_id": [1, 2, 3], "merchant_id": [1, 1, 2], "category": ["shoe", "bag", "food"],
                             "price": [100.0, 50.0, 10.0], "discount": [0.5, 0.0, 0.1],
                             "limited_stock": [True, False, False]})
    promotions = pd.DataFrame({"promotion_id": [7], "name": ["d11"], "starts_at": [T0],
                               "ends_at": [T0 + pd.Timedelta(days=5)]})
    orows = []
    for a in ids[: n_honest // 3]:
        p = int(rng.integers(1, 4))
        orows.append((T0 + pd.Timedelta(hours=float(rng.uniform(0, 96))), a, f"h{a}", f"10.0.{a % 7}.{a}", p, 1,
                      [50.0, 50.0, 9.0][p - 1], None, 7 if p == 1 else None, f"addr{a}", f"p{a}"))
    for k, a in enumerate(scal):
        for r in range(3):
            orows.append((T0 + pd.Timedelta(days=2, minutes=5 * r + k), a, f"s{a}", "192.168.1.1", 1, 2, 100.0,
                          f"c{a}", 7, "warehouse 1", "13900000000"))
    orders = pd.DataFrame(orows, columns=["ts", "account_id", "device_id", "ip", "product_id", "quantity",
                                          "paid_price", "coupon_id", "promotion_id", "address", "receiver_phone"])
    orders = orders.sort_values("ts", kind="stable").reset_index(drop=True)
    orders.insert(0, "order_id", np.arange(len(orders)) + 1)
    orders["received_at"] = orders.ts + pd.Timedelta(days=2)
    claims = pd.DataFrame({"claim_id": np.arange(len(scal)), "ts": T0 + pd.Timedelta(days=1), "account_id": scal,
                           "device_id": [f"s{scal[0]}"] * len(scal), "ip": "192.168.1.1", "promotion_id": 7,
                           "coupon_id": [f"c{a}" for a in scal]})
    lists = pd.DataFrame({"entry_id": [1, 2], "list_type": ["blacklist", "graylist"],
                          "list_name": ["proxy_ips", "bad_accounts"], "entity_type": ["ip", "account"],
                          "entity_id": ["192.168.1.1", str(scal[0])], "scope": "global", "reason": "test",
                          "added_at": T0 - pd.Timedelta(days=1), "expires_at": pd.NaT})
    labels = pd.DataFrame({"entity_type": "account", "entity_id": np.r_[farm, scal],
                           "typology": ["device_farm"] * n_farm + ["group_scalper"] * n_scalper,
                           "campaign_id": [1] * n_farm + [2] * n_scalper})
    return {"accounts": accounts, "devices": devices, "notes": notes, "interactions": interactions,
            "products": products, "promotions": promotions, "orders": orders, "coupon_claims": claims,
            "list_entries": lists, "labels": labels}
